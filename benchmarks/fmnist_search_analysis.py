"""Is a channel search's ranking above its seed noise? Reads a search folder's ``trials.csv``.

Usage:
    python benchmarks/fmnist_search_analysis.py benchmarks/results/fmnist/search [--bootstrap 2000]

Prints (and writes ``analysis.json`` / ``analysis.md`` next to ``trials.csv``):

* the seed noise: the mean over trials of the standard deviation of a trial's seed accuracies, and
  the standard error of a trial's mean (that std / sqrt(seeds));
* the top / middle / bottom 10 % groups (by mean accuracy): their mean accuracy, the gaps between
  them, and whether each gap exceeds the seed std (the issue's bar);
* Spearman's rho between each trial's linearity (R² of its channels against the block index) and
  its accuracy, with a percentile bootstrap 95 % CI over trials.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import statistics
from pathlib import Path

import numpy as np

from rexnet.search.report import linear_r2, spearman, split_groups


def load_trials(folder: Path) -> list[dict]:
    rows = []
    with (folder / "trials.csv").open() as f:
        for r in csv.DictReader(f):
            if r["state"] != "COMPLETE" or not r["accuracy"] or not r["seed_accuracies"]:
                continue
            ch = [int(c) for c in r["channels"].split("-")]
            opt = {
                k: float(r[k]) if r.get(k) else None
                for k in ("test_accuracy", "nuclear_norm", "nuclear_norm_normalized")
            }
            rows.append(
                dict(
                    number=int(r["number"]),
                    accuracy=float(r["accuracy"]),
                    channels=ch,
                    seeds=json.loads(r["seed_accuracies"]),
                    r2=linear_r2(ch),
                    rule=r["rule"] or None,
                    macs=float(r["macs"]),
                    params=float(r["params"]),
                    **opt,
                )
            )
    return rows


def analyse(rows: list[dict], n_boot: int = 2000, seed: int = 0) -> dict:
    n_seeds = min(len(r["seeds"]) for r in rows)
    seed_std = statistics.fmean(statistics.stdev(r["seeds"]) for r in rows) if n_seeds > 1 else float("nan")
    groups = split_groups(rows, key=lambda r: r["accuracy"])
    means = {g: statistics.fmean(r["accuracy"] for r in v) for g, v in groups.items()}
    test_means = {
        g: statistics.fmean(r["test_accuracy"] for r in v) if all(r["test_accuracy"] is not None for r in v) else None
        for g, v in groups.items()
    }
    names = list(groups)
    gaps = {f"{a} - {b}": means[a] - means[b] for a, b in zip(names, names[1:])}
    rho = spearman([r["r2"] for r in rows], [r["accuracy"] for r in rows])
    rng = np.random.default_rng(seed)
    boots = []
    for _ in range(n_boot):
        idx = rng.integers(0, len(rows), len(rows))
        b = spearman([rows[i]["r2"] for i in idx], [rows[i]["accuracy"] for i in idx])
        if not math.isnan(b):
            boots.append(b)
    lo, hi = (float(np.percentile(boots, 2.5)), float(np.percentile(boots, 97.5))) if boots else (math.nan,) * 2
    return dict(
        trials=len(rows),
        seeds_per_trial=n_seeds,
        seed_std=seed_std,
        seed_sem=seed_std / math.sqrt(n_seeds),
        group_size=len(groups[names[0]]),
        group_mean_accuracy=means,
        group_mean_test_accuracy=test_means,
        group_mean_r2={g: float(linear_r2(np.mean([r["channels"] for r in v], axis=0))) for g, v in groups.items()},
        gaps=gaps,
        gaps_exceed_seed_std={k: v > seed_std for k, v in gaps.items()},
        spearman_r2_accuracy=rho,
        spearman_ci95=[lo, hi],
        bootstrap=len(boots),
        accuracy_range=[min(r["accuracy"] for r in rows), max(r["accuracy"] for r in rows)],
        seeded_rules={
            r["rule"]: dict(
                accuracy=r["accuracy"],
                rank=1 + sorted((x["accuracy"] for x in rows), reverse=True).index(r["accuracy"]),
            )
            for r in rows
            if r["rule"] in ("mobilenetv2_staircase", "rexnet_linear")
        },
    )


def to_markdown(a: dict) -> str:
    lines = [
        f"{a['trials']} finished trials x {a['seeds_per_trial']} seeds; seed std {a['seed_std']:.2f} pt "
        f"(standard error of a trial's mean {a['seed_sem']:.2f} pt); groups of {a['group_size']}.",
        "",
        "| group (ranked on validation) | mean val top-1 | mean test top-1 | R² of the mean channel curve |",
        "|---|---|---|---|",
    ]
    for g, m in a["group_mean_accuracy"].items():
        t = a["group_mean_test_accuracy"].get(g)
        lines.append(f"| {g} | {m:.2f} | {'–' if t is None else f'{t:.2f}'} | {a['group_mean_r2'][g]:.3f} |")
    lines.append("")
    for k, v in a["gaps"].items():
        lines.append(f"- {k}: {v:.2f} pt ({'above' if a['gaps_exceed_seed_std'][k] else 'NOT above'} the seed std)")
    lo, hi = a["spearman_ci95"]
    lines.append(
        f"- Spearman(linearity R², accuracy) = {a['spearman_r2_accuracy']:.2f}, bootstrap 95 % CI "
        f"[{lo:.2f}, {hi:.2f}] ({a['bootstrap']} resamples)"
    )
    for rule, v in a["seeded_rules"].items():
        lines.append(f"- {rule}: {v['accuracy']:.2f} (rank {v['rank']} of {a['trials']})")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("folder", type=Path)
    ap.add_argument("--bootstrap", type=int, default=2000)
    args = ap.parse_args()
    rows = load_trials(args.folder)
    if len(rows) < 3:
        raise SystemExit(f"{args.folder}: {len(rows)} finished trials; need at least 3")
    a = analyse(rows, args.bootstrap)
    (args.folder / "analysis.json").write_text(json.dumps(a, indent=1) + "\n")
    md = to_markdown(a)
    (args.folder / "analysis.md").write_text(md)
    print(md)


if __name__ == "__main__":
    main()
