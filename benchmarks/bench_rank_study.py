"""Time full rank studies (4 blocks x 8 activations x 10 ratios x 1,000 networks), one per preset.

Usage::

    python benchmarks/bench_rank_study.py --protocol default,P4_wide --out runs/bench_rank [--workers 2]

For each preset: a fresh study folder ``OUT/PRESET`` (an existing one is deleted first, so the
time is a full computation), wall time, CPU time of all processes, the load average before and
after, and the RMS residual to the paper's Fig. 1 per panel. One JSON line per preset is
appended to ``OUT/bench.jsonl``. Run each preset under the shared lock, e.g.
``flock /tmp/rexnet-bench.lock python benchmarks/bench_rank_study.py --protocol P4_wide``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import time
from pathlib import Path

import torch

from rexnet._device import cpu_model
from rexnet.rank import run_rank_study
from rexnet.rank.paper import score_against_paper


def _cpu() -> float:
    """CPU seconds of this process and its finished children (the worker processes)."""
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def bench_one(preset: str, out: Path, networks: int, seed: int, workers: int | None) -> dict:
    """Run one full study from scratch and return its timing and fit."""
    folder = out / preset
    if folder.exists():
        shutil.rmtree(folder)
    load0 = os.getloadavg()
    t0, c0 = time.perf_counter(), _cpu()
    res = run_rank_study(folder, networks=networks, seed=seed, protocol=preset, workers=workers, progress=False)
    wall, cpu = time.perf_counter() - t0, _cpu() - c0
    load1 = os.getloadavg()
    _, panels, order = score_against_paper(res.values())
    return {
        "preset": preset,
        "networks": networks,
        "seed": seed,
        "workers": workers,
        "wall_s": round(wall, 1),
        "cpu_s": round(cpu, 1),
        "load_before": [round(x, 2) for x in load0],
        "load_after": [round(x, 2) for x in load1],
        "rms": {p.block: round(p.rms, 4) for p in panels},
        "order_agreement": round(order, 3),
        "cpu": cpu_model(),
        "cpus": os.cpu_count(),
        "torch": torch.__version__,
        "utc": time.strftime("%Y-%m-%d %H:%M", time.gmtime()),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--protocol", default="default", help="comma list of presets (default: default)")
    ap.add_argument("--out", default="runs/bench_rank")
    ap.add_argument("--workers", type=int, default=None, help="default: the study's auto rule (2 on 2 cores)")
    ap.add_argument("--networks", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for preset in [p.strip() for p in args.protocol.split(",") if p.strip()]:
        rec = bench_one(preset, out, args.networks, args.seed, args.workers)
        with open(out / "bench.jsonl", "a") as fh:
            fh.write(json.dumps(rec) + "\n")
        rms = " ".join(f"{b} {v:.3f}" for b, v in rec["rms"].items())
        print(
            f"{preset}: wall {rec['wall_s']} s, CPU {rec['cpu_s']} s, load {rec['load_before']} -> "
            f"{rec['load_after']}; RMS {rms}; order {rec['order_agreement']}",
            flush=True,
        )


if __name__ == "__main__":
    main()
