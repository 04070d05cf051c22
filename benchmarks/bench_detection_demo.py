"""SSDLite-ReXNet vs SSDLite-MobileNetV2 on the embedded detection demo set, several seeds.

Both detectors come from the same builder (``rexnet.detection.ssdlite_rexnet``), trained from
scratch with the same config; COCO mAP on the 100 held-out canvases. Each run appends one JSON
line to ``--out`` as it finishes, so a long sweep can be polled and interrupted.

    nice -n 19 python benchmarks/bench_detection_demo.py --seeds 0 1 2 --epochs 10
"""

from __future__ import annotations

import argparse
import json
import logging
import platform
import time
from pathlib import Path

import torch

from rexnet.detection.engine import DetectConfig, train_detector


def report(paths: list[str]) -> str:
    """Markdown: one row per run, then mean +- sample std per backbone."""
    import statistics

    rows = [json.loads(line) for p in paths for line in Path(p).read_text().splitlines() if line.strip()]
    rows.sort(key=lambda r: (r["backbone"], r["seed"]))
    out = [
        "| backbone | params (M) | seed | AP | AP50 | AP75 | AR100 | wall (s) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        out.append(
            f"| {r['backbone']} | {r['params'] / 1e6:.3f} | {r['seed']} | {r['val_bbox_AP']:.2f} | "
            f"{r['val_bbox_AP50']:.2f} | {r['val_bbox_AP75']:.2f} | {r['val_bbox_AR100']:.2f} | "
            f"{r['wall_seconds']:.0f} |"
        )
    out.append("")
    out.append("| backbone | runs | AP mean ± std | AP50 mean ± std | AP75 mean ± std |")
    out.append("|---|---|---|---|---|")
    for b in sorted({r["backbone"] for r in rows}):
        rs = [r for r in rows if r["backbone"] == b]

        def ms(key: str, rs: list = rs) -> str:
            v = [r[key] for r in rs]
            return f"{statistics.mean(v):.2f} ± {statistics.stdev(v):.2f}" if len(v) > 1 else f"{v[0]:.2f}"

        out.append(f"| {b} | {len(rs)} | {ms('val_bbox_AP')} | {ms('val_bbox_AP50')} | {ms('val_bbox_AP75')} |")
    return "\n".join(out) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--backbones", nargs="+", default=["rexnet_100", "mobilenetv2_100"])
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--image-size", type=int, default=128)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--runs", default="runs/bench_detection", help="run folders")
    ap.add_argument("--out", default="benchmarks/results/detection_demo.jsonl")
    ap.add_argument("--report", nargs="+", default=None, help="only print the Markdown table of these JSONL files")
    args = ap.parse_args()
    if args.report:
        print(report(args.report))
        return
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    for seed in args.seeds:
        for backbone in args.backbones:
            cfg = DetectConfig(
                arch="ssdlite",
                backbone=backbone,
                epochs=args.epochs,
                image_size=args.image_size,
                seed=seed,
                threads=args.threads,
                progress=False,
            )
            t0 = time.perf_counter()
            summary = train_detector(cfg, Path(args.runs) / f"{backbone}_s{seed}")
            row = dict(
                backbone=backbone,
                seed=seed,
                epochs=args.epochs,
                image_size=args.image_size,
                wall_seconds=time.perf_counter() - t0,
                train_seconds=summary["train_seconds"],
                params=summary["params"],
                torch=torch.__version__,
                threads=args.threads,
                machine=platform.processor() or platform.machine(),
                **{k: v for k, v in summary.items() if k.startswith("val_bbox")},
            )
            with open(out, "a") as f:
                f.write(json.dumps(row) + "\n")
            logging.info("%s seed %d: AP %.2f AP50 %.2f", backbone, seed, row["val_bbox_AP"], row["val_bbox_AP50"])


if __name__ == "__main__":
    main()
