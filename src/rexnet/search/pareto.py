"""The latency report of a search: accuracy against measured latency, its Pareto front and the references.

* ``pareto.png`` - every finished candidate at (median latency, accuracy), marked linear / staircase /
  other (:func:`shape_class`), the Pareto front (no other candidate both faster and more accurate),
  the latency budget, and the reference models (ReXNet widths, ReXNet-lite, MobileNetV2) as vertical
  lines at their latency measured in the same study on the same runtime (not trained here: no accuracy).
* ``pareto.md`` - the front as a table, the references' latencies, the CPU(s) that timed them.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from optuna.trial import FrozenTrial

from .._files import atomic_write, write_figure
from .shapes import shape_class

__all__ = ["SHAPE_CLASSES", "pareto_front", "pareto_report"]

#: Shape classes and their markers in the figure.
SHAPE_CLASSES = {"linear": ("o", "tab:red"), "staircase": ("s", "tab:blue"), "other": ("^", "tab:gray")}


def pareto_front(points: Sequence[tuple[float, float]]) -> list[int]:
    """Indices of the points ``(latency, accuracy)`` no other point dominates (as fast or faster and as
    accurate or more, better in one), sorted by latency.

    Example:
        >>> pareto_front([(1.0, 80.0), (2.0, 85.0), (2.0, 70.0), (0.5, 60.0)])
        [3, 0, 1]
    """
    front = []
    for i, (lat, acc) in enumerate(points):
        dominated = any(
            (lo <= lat and ao >= acc) and (lo < lat or ao > acc) for j, (lo, ao) in enumerate(points) if j != i
        )
        if not dominated:
            front.append(i)
    return sorted(front, key=lambda i: points[i])


def _latency_trials(trials: Sequence[FrozenTrial]) -> list[FrozenTrial]:
    return [t for t in trials if t.values and "latency_ms" in t.user_attrs and "channels" in t.user_attrs]


def _figure(path: Path, done: list[FrozenTrial], front: list[int], refs: dict[str, Any], info: dict[str, Any]) -> None:
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 4.5), dpi=120)
    for cls, (marker, colour) in SHAPE_CLASSES.items():
        pts = [
            (t.user_attrs["latency_ms"], t.values[0])
            for t in done
            if shape_class(t.user_attrs["channels"], t.user_attrs.get("rule")) == cls
        ]
        if pts:
            ax.scatter(*zip(*pts), marker=marker, color=colour, s=22, alpha=0.8, label=f"{cls} (n={len(pts)})")
    if front:
        fx = [done[i].user_attrs["latency_ms"] for i in front]
        fy = [done[i].values[0] for i in front]
        ax.step(fx, fy, where="post", color="black", lw=1, label="Pareto front")
    for name, lat in sorted(refs.items(), key=lambda kv: kv[1]["median_ms"]):
        ax.axvline(lat["median_ms"], color="tab:green", ls=":", lw=1)
        ax.text(
            lat["median_ms"], 1.0, f" {name}", rotation=90, va="top", fontsize=7, transform=ax.get_xaxis_transform()
        )
    if info.get("budget_ms"):
        ax.axvline(info["budget_ms"], color="tab:red", ls="--", lw=1, label=f"budget {info['budget_ms']:g} ms")
    ax.set_xlabel(
        f"median latency (ms), {info.get('runtime')} {info.get('precision')}, "
        f"{info.get('image_size')} px, batch {info.get('batch')}"
    )
    ax.set_ylabel("accuracy (%)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    ax.set_title("accuracy vs measured latency (references: latency only)", fontsize=9)
    fig.tight_layout()
    try:
        write_figure(fig, path)
    finally:
        plt.close(fig)


def _table(done: list[FrozenTrial], front: list[int], refs: dict[str, Any], cpus: list[str], info: Any) -> str:
    lines = [
        "# Accuracy vs measured latency",
        "",
        f"Runtime {info.get('runtime')} {info.get('precision')}, {info.get('image_size')} px, batch {info.get('batch')}"
        + (f", budget {info['budget_ms']:g} ms" if info.get("budget_ms") else "")
        + f". Timed in each worker, before training, on its own CPU: {'; '.join(cpus) or 'unknown'}.",
        "",
        "## Pareto front",
        "",
        "| trial | shape | channels | accuracy | latency ms (IQR) | MACs (M) |",
        "|---|---|---|---|---|---|",
    ]
    for i in front:
        t = done[i]
        u = t.user_attrs
        lines.append(
            f"| {t.number} | {shape_class(u['channels'], u.get('rule'))} | {'-'.join(map(str, u['channels']))} | "
            f"{t.values[0]:.2f} | {u['latency_ms']:.3f} ({u.get('latency_iqr_ms', 0):.3f}) | {u['macs'] / 1e6:.2f} |"
        )
    if refs:
        lines += ["", "## References (same runtime, same study; latency only)", "", "| model | latency ms (IQR) |"]
        lines.append("|---|---|")
        for name, lat in sorted(refs.items(), key=lambda kv: kv[1]["median_ms"]):
            lines.append(f"| {name} | {lat['median_ms']:.3f} ({lat.get('iqr_ms', 0):.3f}) |")
    return "\n".join([*lines, "", "![Pareto](pareto.png)", ""])


def pareto_report(out: Path, attrs: dict[str, Any], trials: Sequence[FrozenTrial]) -> dict[str, str]:
    """Write ``pareto.png`` and ``pareto.md`` for a latency study (``{}`` when it has no timed candidate)."""
    info = attrs.get("latency") or {}
    done = _latency_trials(trials)
    if not done:
        return {}
    front = pareto_front([(t.user_attrs["latency_ms"], t.values[0]) for t in done])
    by_cpu = attrs.get("reference_latency") or {}
    cpus = sorted({t.user_attrs.get("latency_cpu") or "unknown" for t in done})
    # the references timed on the CPU that timed most candidates
    main_cpu = max(cpus, key=lambda c: sum(t.user_attrs.get("latency_cpu") == c for t in done))
    refs = by_cpu.get(main_cpu) or (next(iter(by_cpu.values())) if by_cpu else {})
    fig_path, md_path = out / "pareto.png", out / "pareto.md"
    _figure(fig_path, done, front, refs, info)
    atomic_write(md_path, _table(done, front, refs, cpus, info))
    return {"pareto_figure": str(fig_path), "pareto_table": str(md_path)}
