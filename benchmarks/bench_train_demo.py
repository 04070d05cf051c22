"""Benchmark of the demo run (`rexnet train` defaults): accuracy and wall time on this machine.

Usage:
    python benchmarks/bench_train_demo.py [--threads N] [--out DIR] [extra TrainConfig key=value ...]

Prints one JSON line: machine, versions, config, final/best top-1, seconds per epoch, total seconds.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time

import torch

from rexnet.train import TrainConfig, train


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: the preset's, 1)")
    p.add_argument("--out", default=None, help="run folder (default: a temporary folder)")
    p.add_argument("overrides", nargs="*", help="TrainConfig key=value")
    args = p.parse_args()
    over = dict(kv.split("=", 1) for kv in args.overrides)
    out = args.out or tempfile.mkdtemp(prefix="rexnet-demo-")
    if args.threads is not None:
        over["threads"] = args.threads
    cfg = TrainConfig().replace(out=os.path.join(out, "run"), progress=False, **over)
    load = os.getloadavg()[0]
    t = time.time()
    res = train(cfg)
    total = time.time() - t
    print(
        json.dumps(
            dict(
                model=cfg.model,
                data=cfg.data,
                image_size=cfg.image_size,
                epochs=cfg.epochs,
                batch_size=cfg.batch_size,
                lr=cfg.peak_lr(),
                val_top1=res.val_top1,
                best_top1=res.best_top1,
                val_top5=res.metrics.get("val_top5"),
                total_seconds=round(total, 1),
                seconds_per_epoch=[round(h["seconds"], 1) for h in res.history],
                images_per_sec=round(sum(h["images_per_sec"] for h in res.history) / len(res.history), 1),
                threads=cfg.threads,
                cpus=os.cpu_count(),
                load_avg_at_start=round(load, 2),
                cpu=platform.processor() or platform.machine(),
                torch=torch.__version__,
                python=platform.python_version(),
                out=str(res.out_dir),
            )
        )
    )


if __name__ == "__main__":
    main()
