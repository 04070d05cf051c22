"""OpenVINO int8 speed of our export variants against timm's graph (issue 11), interleaved in one process.

    flock /tmp/rexnet-bench.lock env OMP_WAIT_POLICY=PASSIVE .venv/bin/python benchmarks/bench_ov_int8_variants.py

Variants: SE layers float or quantized, channels padded to 16 or not; timm rexnet_100 through the same NNCF
settings. Random weights and calibration images (speed does not depend on them). Writes
benchmarks/results/cpu_issue11_ov_int8/results.json.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import timm
import torch

import rexnet
from rexnet.deploy.bench_report import machine_info
from rexnet.deploy.onnx_core import export_onnx
from rexnet.deploy.openvino_ir import OpenVinoModel, to_openvino


def main(out: str = "benchmarks/results/cpu_issue11_ov_int8", rounds: int = 6) -> None:
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(1)
    calib = list(torch.randn(64, 3, 224, 224, generator=g).split(32))
    ours = rexnet.create_model("rexnet_100").eval()
    peer = timm.create_model("rexnet_100", pretrained=False).eval()
    models = {}
    with tempfile.TemporaryDirectory() as tmp:
        for pad in (16, 0):
            path = export_onnx(ours, Path(tmp) / f"ours{pad}.onnx", pad_to=pad)
            for se in (True, False):
                q = to_openvino(path, "int8", calibration=calib, keep_se_float=se, fast_bias_correction=True)
                models[f"ours pad{pad} se_{'float' if se else 'int8'}"] = OpenVinoModel(q, "f32")
        models["timm"] = OpenVinoModel(to_openvino(peer, "int8", calibration=calib, fast_bias_correction=True), "f32")
    names = list(models)
    res: dict = {"machine": {**machine_info(), "load": os.getloadavg()}, "batches": {}}
    for batch, iters in ((32, 1), (1, 10)):
        x = torch.randn(batch, 3, 224, 224, generator=g)
        for m in models.values():
            m(x)
            m(x)
        samples = {n: [] for n in names}
        for r in range(rounds):
            for n in names[r % len(names) :] + names[: r % len(names)]:
                t0 = time.perf_counter()
                for _ in range(iters):
                    models[n](x)
                samples[n].append((time.perf_counter() - t0) / iters)
        ref = samples["timm"]
        res["batches"][batch] = {
            n: dict(
                median_ms=1e3 * statistics.median(s), speed_vs_timm=statistics.median(t / v for v, t in zip(s, ref))
            )
            for n, s in samples.items()
        }
        for n, v in res["batches"][batch].items():
            print(f"b{batch} {n}: {v['median_ms']:.1f} ms, {v['speed_vs_timm']:.3f}x timm", flush=True)
    res["machine"]["load_after"] = os.getloadavg()
    Path(out).mkdir(parents=True, exist_ok=True)
    Path(out, "results.json").write_text(json.dumps(res, indent=2, default=str))


if __name__ == "__main__":
    main(*sys.argv[1:2])
