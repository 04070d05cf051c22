"""Time the full default rank study (4 blocks x 8 activations x 10 ratios x 1,000 networks).

Usage::

    python benchmarks/bench_rank_study.py --out runs/rank_full [--workers 2] [--networks 1000]

Prints wall time, machine load (``os.getloadavg``) before and after, and the findings; the run
folder is a normal study folder (resumable: delete it for a fresh timing).
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import time

import torch

from rexnet.rank import run_rank_study


def _cpu() -> float:
    """CPU seconds of this process and its finished children (the worker processes)."""
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="runs/rank_full")
    ap.add_argument("--workers", type=int, default=None, help="default: the study's auto rule")
    ap.add_argument("--networks", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    load0 = os.getloadavg()
    t0, c0 = time.perf_counter(), _cpu()
    res = run_rank_study(args.out, networks=args.networks, seed=args.seed, workers=args.workers, progress=True)
    wall, cpu = time.perf_counter() - t0, _cpu() - c0
    load1 = os.getloadavg()
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cpus, torch {torch.__version__}")
    print(f"full study: {len(res.rows)} curve points, {args.networks} networks/point, workers={args.workers}")
    print(f"wall {wall:.1f} s (computed part {res.seconds:.1f} s), CPU time incl. worker processes {cpu:.1f} s")
    print(f"load average before {load0[0]:.2f} {load0[1]:.2f} {load0[2]:.2f}; "
          f"after {load1[0]:.2f} {load1[1]:.2f} {load1[2]:.2f}")
    print(res.summary())


if __name__ == "__main__":
    main()
