"""Rank vs accuracy on Fashion-MNIST: the final features' nuclear norm against test top-1 over trained models.

Usage:
    python benchmarks/fmnist_rank_accuracy.py [--results benchmarks/results/fmnist] [--bootstrap 2000]

The paper (§3, Table 2 and its scatter over searched models) reads a network's expressiveness off
the nuclear norm of its final features and reports that it correlates positively with accuracy.
This script gathers every trained Fashion-MNIST model whose statistics the experiment scripts
stored, all measured the same way (pooled final features of the first 512 validation images,
eval mode):

* ``search/trials.csv``: every finished search candidate (mean over its seeds), one architecture
  family at one budget, as in the paper's scatter;
* ``controlled.json``, every ``compare.json`` below ``--results`` (the comparison, its LR check, the best-effort
  runs) and ``table2.json``: every single run of those experiments.

It writes ``rank_accuracy.png`` (left: the search candidates, raw nuclear norm as the paper plots
it; right: all runs of the other experiments, nuclear norm divided by the largest singular value so
that networks of different widths share an axis) and ``rank_accuracy.json`` / ``.md`` with
Spearman's rho per group and a percentile bootstrap 95 % CI.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from rexnet.search.report import spearman  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from fmnist_search_analysis import load_trials  # noqa: E402


def gather(results: Path) -> dict[str, list[dict]]:
    """Group -> points ``{label, nuc, nucn, test}``."""
    groups: dict[str, list[dict]] = {}
    if (results / "search" / "trials.csv").is_file():
        groups["search candidates"] = [
            dict(
                label=f"trial {r['number']}",
                nuc=r["nuclear_norm"],
                nucn=r["nuclear_norm_normalized"],
                test=r["test_accuracy"],
            )
            for r in load_trials(results / "search")
            if r["nuclear_norm"] is not None and r["test_accuracy"] is not None
        ]
    if (results / "controlled.json").is_file():
        for name, s in json.loads((results / "controlled.json").read_text())["shapes"].items():
            groups.setdefault("controlled (search protocol)", []).extend(
                dict(
                    label=f"{name} s{r['seed']}",
                    nuc=r["nuclear_norm"],
                    nucn=r["nuclear_norm_normalized"],
                    test=r["test_accuracy"],
                )
                for r in s["runs"]
            )
    for path in sorted(results.glob("**/compare.json")):  # the comparison, its LR check, the best-effort runs
        for name, m in json.loads(path.read_text())["models"].items():
            groups.setdefault("ReXNet vs MobileNetV2", []).extend(
                dict(
                    label=f"{name} s{r['seed']} ({path.parent.name})",
                    nuc=r["nuclear_norm"],
                    nucn=r["nuclear_norm_normalized"],
                    test=r["test_top1"],
                )
                for r in m["runs"]
                if "nuclear_norm" in r
            )
    if (results / "table2.json").is_file():
        for row in json.loads((results / "table2.json").read_text())["rows"]:
            groups.setdefault("Table 2 proxies", []).extend(
                dict(
                    label=f"{row['variant']} s{r['seed']}",
                    nuc=r["nuclear_norm"],
                    nucn=r["nuclear_norm_normalized"],
                    test=r["test_top1"],
                )
                for r in row["runs"]
            )
    return {g: pts for g, pts in groups.items() if pts}


def rho_ci(x: list[float], y: list[float], n_boot: int, seed: int = 0) -> tuple[float, float, float]:
    rho = spearman(x, y)
    rng = np.random.default_rng(seed)
    boots = []
    for _ in range(n_boot):
        i = rng.integers(0, len(x), len(x))
        b = spearman([x[k] for k in i], [y[k] for k in i])
        if not math.isnan(b):
            boots.append(b)
    if not boots:
        return rho, math.nan, math.nan
    return rho, float(np.percentile(boots, 2.5)), float(np.percentile(boots, 97.5))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--results", type=Path, default=Path("benchmarks/results/fmnist"))
    ap.add_argument("--bootstrap", type=int, default=2000)
    args = ap.parse_args()
    groups = gather(args.results)
    if not groups:
        raise SystemExit(f"{args.results}: no trained model with feature statistics yet")
    stats = {}
    for g, pts in groups.items():
        key = "nuc" if g == "search candidates" else "nucn"
        if len(pts) >= 3:
            rho, lo, hi = rho_ci([p[key] for p in pts], [p["test"] for p in pts], args.bootstrap)
        else:
            rho = lo = hi = math.nan
        stats[g] = dict(
            points=len(pts), x=("nuclear norm" if key == "nuc" else "nuclear norm / s_max"), spearman=rho, ci95=[lo, hi]
        )

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    search = groups.get("search candidates", [])
    ax = axes[0]
    if search:
        ax.scatter([p["nuc"] for p in search], [p["test"] for p in search], s=14, c="tab:blue")
        s = stats["search candidates"]
        ax.set_title(
            f"search candidates (n={len(search)}): Spearman {s['spearman']:.2f} "
            f"[{s['ci95'][0]:.2f}, {s['ci95'][1]:.2f}]",
            fontsize=9,
        )
    else:
        ax.set_title("search candidates: none with statistics yet", fontsize=9)
    ax.set_xlabel("nuclear norm of the final features")
    ax.set_ylabel("test top-1 (%)")
    ax = axes[1]
    for (g, pts), color in zip(
        ((g, p) for g, p in groups.items() if g != "search candidates"), ("tab:red", "tab:green", "tab:purple")
    ):
        s = stats[g]
        ax.scatter(
            [p["nucn"] for p in pts],
            [p["test"] for p in pts],
            s=16,
            c=color,
            label=f"{g} (n={len(pts)}, ρ={s['spearman']:.2f})",
        )
    ax.set_xlabel("nuclear norm / largest singular value")
    ax.set_ylabel("test top-1 (%)")
    ax.set_title("single runs of the other experiments", fontsize=9)
    if len(groups) > 1:
        ax.legend(fontsize=7)
    fig.suptitle("Rank vs accuracy on Fashion-MNIST (features of 512 validation images)", fontsize=10)
    fig.tight_layout()
    fig.savefig(args.results / "rank_accuracy.png", dpi=120)
    (args.results / "rank_accuracy.json").write_text(json.dumps(dict(stats=stats, groups=groups), indent=1) + "\n")
    lines = ["| models | points | x axis | Spearman ρ with test top-1 | bootstrap 95 % CI |", "|---|---|---|---|---|"]
    for g, s in stats.items():
        lines.append(
            f"| {g} | {s['points']} | {s['x']} | {s['spearman']:.2f} | [{s['ci95'][0]:.2f}, {s['ci95'][1]:.2f}] |"
        )
    (args.results / "rank_accuracy.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
