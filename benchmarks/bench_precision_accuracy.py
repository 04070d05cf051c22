"""Accuracy of every reduced-precision deploy path on real data (issue 11).

    .venv/bin/python benchmarks/bench_precision_accuracy.py --checkpoint runs/fmnist/checkpoints/best.pt \
        --data fashion-mnist --out benchmarks/results/precision_accuracy

Scores fp32 eager (reference), fused fp32, onnxruntime fp32/int8, bf16 eager, OpenVINO f32/bf16/int8
and int8 PT2E + inductor on the official test split: top-1 agreement with fp32 and accuracy change.
Not a timing run: run it at nice 19.
"""

from __future__ import annotations

import argparse
import logging

import torch

from rexnet.deploy.accuracy import PRECISION_PATHS, accuracy_markdown, precision_accuracy, write_accuracy


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--data", default="fashion-mnist")
    p.add_argument("--split", default="test")
    p.add_argument("--paths", nargs="+", default=list(PRECISION_PATHS), choices=PRECISION_PATHS)
    p.add_argument("--calib-images", type=int, default=512)
    p.add_argument("--limit", type=int, default=None, help="score only this many images")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--out", default="benchmarks/results/precision_accuracy")
    p.add_argument("--overwrite", action="store_true", help="replace accuracy.json/.md from an earlier run")
    args = p.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    if args.threads:
        torch.set_num_threads(args.threads)
    res = precision_accuracy(
        args.checkpoint,
        args.data,
        split=args.split,
        paths=tuple(args.paths),
        calib_images=args.calib_images,
        limit=args.limit,
        threads=args.threads,
    )
    write_accuracy(res, args.out, overwrite=args.overwrite)
    print(accuracy_markdown(res))


if __name__ == "__main__":
    main()
