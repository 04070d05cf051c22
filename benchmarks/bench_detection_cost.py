"""Params and MACs of every entry of the paper's Tables 6, 7 and 9, built here, next to the paper's.

Counting conventions: see ``rexnet.detection.cost``. Writes JSON and a Markdown table.

    nice -n 19 python benchmarks/bench_detection_cost.py --out benchmarks/results/detection_cost
"""

from __future__ import annotations

import argparse
import json
import platform
from pathlib import Path

import torch
import torchvision

from rexnet.detection.cost import paper_comparison


def to_markdown(rows: list[dict]) -> str:
    lines = [
        "| table | detector | backbone | params (M) | paper (M) | gap | MACs (B) | paper (B) | gap | paper AP |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['table']} | {r['arch']} | {r['backbone']} | {r['params_m']:.3f} | {r['paper_params_m']} | "
            f"{r['params_gap_pct']:+.2f} % | {r['macs_b']:.2f} | {r['paper_macs_b']} | {r['macs_gap_pct']:+.2f} % | "
            f"{r['paper_ap']} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="benchmarks/results/detection_cost")
    args = ap.parse_args()
    torch.set_num_threads(1)
    rows = paper_comparison()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    meta = dict(torch=torch.__version__, torchvision=torchvision.__version__, python=platform.python_version())
    (out / "detection_cost.json").write_text(json.dumps(dict(meta=meta, rows=rows), indent=2) + "\n")
    (out / "detection_cost.md").write_text(to_markdown(rows))
    print(to_markdown(rows))


if __name__ == "__main__":
    main()
