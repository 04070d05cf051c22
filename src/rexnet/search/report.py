"""``rexnet.search.report``: the paper's Table 3 and Figure 2 for our own search, plus a CSV.

* ``trials.csv`` - every trial of the study, any state.
* ``table3.md`` - top / middle / bottom 10 % of the finished trials by accuracy: mean ± std of
  accuracy, params and MACs, best and worst channel lists, the R² of each group's mean channel
  curve fitted to a line, and the rank correlation between a trial's own linearity and its accuracy
  (the paper's finding "the best configurations are linear in the block index", tested).
* ``figure2.png`` - each group's mean channel curve against the block index with a 1σ band.
* ``pareto.png``, ``pareto.md`` - for a latency study: accuracy against measured latency
  (:mod:`rexnet.search.pareto`).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import optuna
from optuna.trial import FrozenTrial, TrialState

from .._files import atomic_write, write_csv, write_figure
from ..errors import InputError
from ..run import Run
from .pareto import pareto_report
from .shapes import linear_r2, shape_class
from .study import DEFAULT_STUDY, database_url, default_storage

__all__ = ["GROUPS", "linear_r2", "report", "resolve_study", "split_groups", "spearman", "write_search_report"]

#: Group names, colours as in the paper's Figure 2.
GROUPS = (("Top-10%", "tab:red"), ("Mid-10%", "tab:blue"), ("Bot-10%", "tab:green"))
CSV_COLUMNS = (
    "number",
    "state",
    "slot",
    "rule",
    "accuracy",
    "macs",
    "params",
    "utilisation",
    "channels",
    "a",
    "b",
    "ratio",
    "breaks",
    "rises",
    "linear_r2",
    "shape",
    "macs_fraction",
    "latency_ms",
    "latency_iqr_ms",
    "latency_cpu",
    "seed_accuracies",
    "test_accuracy",
    "nuclear_norm",
    "nuclear_norm_normalized",
    "seed_stats",
    "retry_of",
    "worker",
    "duration_s",
    "error",
)


def spearman(x: Sequence[float], y: Sequence[float]) -> float:
    """Spearman rank correlation (average ranks for ties); NaN for fewer than 3 pairs or constant input."""
    if len(x) < 3:
        return math.nan

    def ranks(v: Sequence[float]) -> np.ndarray:
        a = np.asarray(v, dtype=float)
        order = a.argsort(kind="stable")
        r = np.empty(len(a))
        r[order] = np.arange(len(a), dtype=float)
        for val in np.unique(a):  # average ties
            r[a == val] = r[a == val].mean()
        return r

    rx, ry = ranks(x), ranks(y)
    if rx.std() == 0 or ry.std() == 0:
        return math.nan
    return float(np.corrcoef(rx, ry)[0, 1])


def split_groups(trials: Sequence[Any], key: Any) -> dict[str, list[Any]]:
    """Top, middle and bottom ``max(1, round(10 %))`` of ``trials`` sorted by ``key`` (descending)."""
    ranked = sorted(trials, key=key, reverse=True)
    n = len(ranked)
    g = max(1, round(n / 10))
    mid = (n - g) // 2
    return dict(zip((name for name, _ in GROUPS), (ranked[:g], ranked[mid : mid + g], ranked[n - g :])))


def _row(t: FrozenTrial) -> dict[str, Any]:
    u = t.user_attrs
    ch = u.get("channels")
    return {
        "number": t.number,
        "state": t.state.name,
        "slot": u.get("slot"),
        "rule": u.get("rule"),
        "accuracy": t.values[0] if t.values else None,
        "macs": u.get("macs"),
        "params": u.get("params"),
        "utilisation": u.get("utilisation"),
        "channels": "-".join(map(str, ch)) if ch else None,
        "a": u.get("a"),
        "b": u.get("b"),
        "ratio": u.get("ratio"),
        "breaks": json.dumps(u["breaks"]) if "breaks" in u else None,
        "rises": json.dumps(u["rises"]) if "rises" in u else None,
        "linear_r2": linear_r2(ch) if ch else None,
        "shape": shape_class(ch, u.get("rule")) if ch else None,
        "macs_fraction": u.get("macs_fraction"),
        "latency_ms": u.get("latency_ms"),
        "latency_iqr_ms": u.get("latency_iqr_ms"),
        "latency_cpu": u.get("latency_cpu"),
        "seed_accuracies": json.dumps(u["seed_accuracies"]) if "seed_accuracies" in u else None,
        # the final features' statistics, mean over seeds (the paper's nuclear norm vs accuracy)
        "test_accuracy": _seed_mean(u, "test_accuracy"),
        "nuclear_norm": _seed_mean(u, "nuclear_norm"),
        "nuclear_norm_normalized": _seed_mean(u, "nuclear_norm_normalized"),
        "seed_stats": json.dumps(u["seed_stats"]) if "seed_stats" in u else None,
        "retry_of": t.system_attrs.get("failed_trial"),
        "worker": u.get("worker"),
        "duration_s": u.get("duration_s"),
        "error": u.get("error") or u.get("infeasible"),
    }


def _seed_mean(attrs: dict[str, Any], key: str) -> float | None:
    values = attrs.get("seed_stats", {}).get(key)
    return float(np.mean(values)) if values else None


def _fmt(values: Sequence[float], scale: float = 1.0, digits: int = 1) -> str:
    a = np.asarray(values, dtype=float) / scale
    return f"{a.mean():.{digits}f} ± {a.std():.{digits}f}"


def resolve_study(url: str, study: str | None) -> str:
    """The study to report in ``url``: ``study`` (checked), else the only one, else the default name."""
    try:
        names = optuna.get_all_study_names(storage=url)
    except ImportError as e:
        raise InputError(f"storage {url!r}: database driver missing ({e})") from None
    except Exception as e:  # noqa: BLE001 - SQLAlchemy's connection errors have many types
        reason = str(getattr(e, "orig", None) or e).strip().splitlines()[0]
        raise InputError(f"cannot open storage {url!r}: {reason}") from None
    if study is not None:
        if study not in names:
            raise InputError(f"no study {study!r} in {url}; studies there: {', '.join(names) or '(none)'}")
        return study
    if len(names) == 1:
        return names[0]
    if DEFAULT_STUDY in names:
        return DEFAULT_STUDY
    raise InputError(f"{url} holds {len(names)} studies; pick one with study=...: {', '.join(names) or '(none)'}")


def _axes() -> tuple[Any, Any]:
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt.subplots(figsize=(5.5, 4), dpi=120)


def _save(fig: Any, ax: Any, path: Path, title: str) -> None:
    import matplotlib.pyplot as plt

    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    try:
        write_figure(fig, path, dpi=120)
    finally:
        plt.close(fig)


def _rank_figure(path: Path, nuclear_norms: Sequence[float], accuracies: Sequence[float], title: str) -> None:
    fig, ax = _axes()
    ax.scatter(nuclear_norms, accuracies, s=14)
    ax.set_xlabel("nuclear norm of the final features")
    ax.set_ylabel("accuracy (%)")
    _save(fig, ax, path, title)


def _figure(path: Path, curves: dict[str, np.ndarray], title: str) -> None:
    fig, ax = _axes()
    for name, colour in GROUPS:
        c = curves.get(name)
        if c is None or not len(c):
            continue
        x = np.arange(1, c.shape[1] + 1)
        mean, std = c.mean(axis=0), c.std(axis=0)
        ax.plot(x, mean, color=colour, marker="o", label=f"{name} (n={len(c)})")
        ax.fill_between(x, mean - std, mean + std, color=colour, alpha=0.2)
        ax.set_xticks(x)
    ax.set_xlabel("block index")
    ax.set_ylabel("output channels")
    ax.legend()
    _save(fig, ax, path, title)


def report(out: str | Path, *, storage: str | None = None, study: str | None = None) -> dict[str, str]:
    """Write ``trials.csv``, ``table3.md`` and ``figure2.png`` (and, for a latency study, ``pareto.png``
    and ``pareto.md``) for a study into ``out``, taking the search folder's shared lock.

    Args:
        out: Folder to write into (also where the default SQLite storage lives).
        storage: SQLAlchemy URL; ``None`` means ``sqlite:///OUT/search.db``.
        study: Study name; ``None`` picks the only study (or the default name).

    Returns:
        Paths of the written files by kind (``csv``, ``table``, ``figure``).

    Raises:
        InputError: No such storage/study, or no finished trial yet.

    Example:
        >>> paths = report("runs/s5")  # doctest: +SKIP
        >>> sorted(paths)  # doctest: +SKIP
        ['csv', 'figure', 'table']
    """
    out = Path(out)
    if storage is None and not (out / "search.db").exists():
        raise InputError(f"no search database in {out} (expected {out / 'search.db'}); pass storage=...")
    # the report's files belong to the search folder: its lock (shared with running workers) lets them be rewritten
    with Run(out, "search", shared=True).open(resume=True):
        return write_search_report(out, storage=storage, study=study)


def write_search_report(out: str | Path, *, storage: str | None = None, study: str | None = None) -> dict[str, str]:
    """:func:`report`'s work, for a caller that already holds the search folder (``rexnet.search.run``)."""
    out = Path(out)
    url = database_url(storage or default_storage(out))
    if storage is None and not (out / "search.db").exists():
        raise InputError(f"no search database in {out} (expected {out / 'search.db'}); pass storage=...")
    name = resolve_study(url, study)
    st = optuna.load_study(study_name=name, storage=url)
    trials = st.get_trials(deepcopy=False)
    out.mkdir(parents=True, exist_ok=True)
    csv_path = out / "trials.csv"
    _write_csv(csv_path, trials)
    done = [t for t in trials if t.state == TrialState.COMPLETE and t.values and "channels" in t.user_attrs]
    if not done:
        raise InputError(f"study {name!r} has no finished trial yet ({len(trials)} trials); wrote {csv_path} only")
    attrs, groups = st.user_attrs, split_groups(done, key=lambda t: t.values[0])
    sp = attrs.get("space", {})
    title = (
        f"{sp.get('blocks')} IBs, {sp.get('budget_macs', 0) / 1e6:g} M MACs at {sp.get('image_size')}px, "
        f"{len(done)} trials ({attrs.get('data')})"
    )
    curves = {g: np.array([t.user_attrs["channels"] for t in groups[g]], dtype=float) for g, _ in GROUPS}
    nuc = [(n, t.values[0]) for t in done if (n := _seed_mean(t.user_attrs, "nuclear_norm")) is not None]
    lines = [
        *_header(name, attrs, trials, done, groups),
        *_group_rows(groups, curves),
        *_findings(done, groups, nuc),
        "",
        "![Figure 2](figure2.png)",
        "",
    ]
    table_path, fig_path = out / "table3.md", out / "figure2.png"
    atomic_write(table_path, "\n".join(lines))
    _figure(fig_path, curves, title)
    paths = {"csv": str(csv_path), "table": str(table_path), "figure": str(fig_path)}
    if attrs.get("latency"):
        paths.update(pareto_report(out, attrs, done))
    if len(nuc) >= 3:
        rank_path = out / "rank_vs_accuracy.png"
        norms, accs = zip(*nuc)
        _rank_figure(rank_path, norms, accs, f"{title}; Spearman {spearman(norms, accs):.2f}")
        paths["rank_figure"] = str(rank_path)
    return paths


def _write_csv(path: Path, trials: Sequence[FrozenTrial]) -> None:
    rows = [_row(t) for t in trials]
    write_csv([CSV_COLUMNS, *([r[c] for c in CSV_COLUMNS] for r in rows)], path)


def _header(
    name: str,
    attrs: dict[str, Any],
    trials: Sequence[FrozenTrial],
    done: Sequence[FrozenTrial],
    groups: dict[str, list[FrozenTrial]],
) -> list[str]:
    """Title, the study's settings, the trial counts and the table's head."""
    sp = attrs.get("space", {})
    return [
        f"# Table 3 for study `{name}`",
        "",
        f"{sp.get('blocks')} inverted bottlenecks, budget {sp.get('budget_macs', 0) / 1e6:.1f} M MACs"
        + (f" / {sp['budget_params'] / 1e6:.3f} M params" if sp.get("budget_params") else "")
        + f" (tolerance {sp.get('tolerance', 0):.0%}) at {sp.get('image_size')}x{sp.get('image_size')}; "
        f"proxy `{attrs.get('data')}`, {attrs.get('epochs')} epoch(s) x {attrs.get('seeds')} seed(s); "
        f"sampler {attrs.get('sampler')}.",
        f"{len(done)} finished trials (of {len(trials)}: "
        + ", ".join(
            f"{s.name.lower()} {sum(t.state == s for t in trials)}"
            for s in TrialState
            if any(t.state == s for t in trials)
        )
        + "); "
        f"groups of {len(groups['Top-10%'])}.",
        "",
        "| group | accuracy | params (M) | MACs (M) | R² of mean curve vs. line | mean channels |",
        "|---|---|---|---|---|---|",
    ]


def _group_rows(groups: dict[str, list[FrozenTrial]], curves: dict[str, np.ndarray]) -> list[str]:
    """One table row per group: accuracy, size, and the linearity of its mean channel curve."""
    lines = []
    for gname, _ in GROUPS:
        g, mean_curve = groups[gname], curves[gname].mean(axis=0)
        lines.append(
            f"| {gname} | {_fmt([t.values[0] for t in g], digits=2)} | "
            f"{_fmt([t.user_attrs['params'] for t in g], 1e6, 3)} | {_fmt([t.user_attrs['macs'] for t in g], 1e6)} | "
            f"{linear_r2(mean_curve):.3f} | {'-'.join(f'{v:.0f}' for v in mean_curve)} |"
        )
    return lines


def _findings(
    done: Sequence[FrozenTrial], groups: dict[str, list[FrozenTrial]], nuc: Sequence[tuple[float, float]]
) -> list[str]:
    """Best and worst trials, the seeded rules' ranks, and the two rank correlations."""
    best, worst = groups["Top-10%"][0], groups["Bot-10%"][-1]
    lines = [
        "",
        f"- Best: {'-'.join(map(str, best.user_attrs['channels']))} ({best.values[0]:.2f}, trial {best.number})",
        f"- Worst: {'-'.join(map(str, worst.user_attrs['channels']))} ({worst.values[0]:.2f}, trial {worst.number})",
    ]
    ranked = sorted(done, key=lambda t: t.values[0], reverse=True)
    for t in ranked:
        if t.user_attrs.get("rule") in ("mobilenetv2_staircase", "rexnet_linear"):
            lines.append(
                f"- Seeded {t.user_attrs['rule']}: {'-'.join(map(str, t.user_attrs['channels']))} "
                f"({t.values[0]:.2f}, rank {ranked.index(t) + 1} of {len(ranked)})"
            )
    rho = spearman([linear_r2(t.user_attrs["channels"]) for t in done], [t.values[0] for t in done])
    lines.append(
        f"- Linearity vs. accuracy: Spearman rho = {rho:.2f} over {len(done)} trials between each trial's R² "
        "(its channels against the block index, fitted to a line) and its accuracy "
        "(positive: more linear configurations score higher)."
    )
    if len(nuc) >= 3:
        lines.append(
            f"- Rank vs. accuracy (the paper's nuclear-norm scatter): Spearman rho = "
            f"{spearman(*zip(*nuc)):.2f} over {len(nuc)} trials between the nuclear norm of a trained "
            "candidate's final features (mean over seeds) and its accuracy; see rank_vs_accuracy.png."
        )
    return lines
