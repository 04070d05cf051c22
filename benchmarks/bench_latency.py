"""A small, indicative rexnet.latency run: reference models at 224 px and a search candidate at its proxy size.

Usage: python benchmarks/bench_latency.py [--out results.json] [--threads 2] [--repeats 50]

Not a full benchmark (see bench_inference.py for that): each model is timed once with
rexnet.latency (cache off), rexnet_100 twice to show the spread; the load average before and after
is recorded because the machine may be shared.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import time

import rexnet
from rexnet._device import cpu_model
from rexnet.search import SearchSpace, linear_params, plan_for_budget, shape_from_params, staircase_params


def _row(label: str, what, *, size: int, classes: int, args) -> dict:
    t0 = time.perf_counter()
    lat = rexnet.latency(
        what, args.runtime, args.precision, size, 1, args.threads, args.repeats, num_classes=classes, cache=False
    )
    return {
        "model": label,
        "image_size": size,
        "median_ms": round(lat.median_ms, 3),
        "iqr_ms": round(lat.iqr_ms, 3),
        "min_ms": round(lat.min_ms, 3),
        "n": lat.n,
        "seconds_incl_export": round(time.perf_counter() - t0, 1),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--out", default=None)
    p.add_argument("--runtime", default="openvino")
    p.add_argument("--precision", default="int8")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeats", type=int, default=50)
    args = p.parse_args()
    load_before = os.getloadavg()
    rows = [
        _row("rexnet_100", "rexnet_100", size=224, classes=1000, args=args),
        _row("mobilenetv2_100", "mobilenetv2_100", size=224, classes=1000, args=args),
        _row("rexnet_100 (again)", "rexnet_100", size=224, classes=1000, args=args),
    ]
    # the Fashion-MNIST search's space (5 IBs, 7.5 M MACs at 16 px): its best candidate and the ReXNet line
    space = SearchSpace(blocks=5, budget_macs=7.5e6, image_size=16)
    rows.append(_row("search best 33-45-57-85-138", space.plan([33, 45, 57, 85, 138]), size=16, classes=10, args=args))
    for rule, params in (("ReXNet line", linear_params(5)), ("MobileNetV2 staircase", staircase_params(5))):
        plan, info = plan_for_budget(shape_from_params(params, 5), space)
        label = f"{rule} {'-'.join(map(str, info['channels']))}"
        rows.append(_row(label, plan, size=16, classes=10, args=args))
    rows.append(_row("rexnet_100 @16px", "rexnet_100", size=16, classes=10, args=args))
    res = {
        "cpu": cpu_model(),
        "runtime": args.runtime,
        "precision": args.precision,
        "threads": args.threads,
        "batch": 1,
        "load_before": [round(v, 2) for v in load_before],
        "load_after": [round(v, 2) for v in os.getloadavg()],
        "versions": {k: importlib.metadata.version(k) for k in ("openvino", "nncf", "onnxruntime")},
        "rows": rows,
    }
    text = json.dumps(res, indent=2)
    print(text)
    if args.out:
        from rexnet._files import atomic_write

        atomic_write(args.out, text + "\n")


if __name__ == "__main__":
    main()
