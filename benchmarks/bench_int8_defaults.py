"""How the int8 defaults were chosen (issue 11): onnxruntime calibration and bias correction, NNCF preset and hint.

    # agreement with fp32 on the Fashion-MNIST test split, for a trained checkpoint (not a timing run)
    .venv/bin/python benchmarks/bench_int8_defaults.py agreement --checkpoint runs/x/checkpoints/best.pt
    # OpenVINO int8 speed per NNCF preset x precision hint, ours and timm's, interleaved (quiet machine)
    flock /tmp/rexnet-bench.lock env OMP_WAIT_POLICY=PASSIVE .venv/bin/python benchmarks/bench_int8_defaults.py speed

Results of both are in benchmarks/RESULTS.md (issue 11, final session).
"""

from __future__ import annotations

import argparse
import logging
import statistics
import tempfile
import time
from pathlib import Path

import torch

from rexnet import load_model
from rexnet.deploy.calib import calibration_batches
from rexnet.deploy.openvino_ir import OpenVinoModel, to_openvino
from rexnet.deploy.quant import OnnxModel, agreement, predict_logits, quantize_int8

#: onnxruntime variants: (calibration method, extra quantizer options, bias correction)
ORT_VARIANTS = {
    "minmax": ("minmax", {}, False),
    "minmax + bias correction (default)": ("minmax", {}, True),
    "percentile": ("percentile", {}, False),
}
#: OpenVINO variants: (NNCF preset, runtime precision hint; None = OpenVINO's default)
OV_VARIANTS = {
    "mixed, f32 hint (old default)": ("mixed", "f32"),
    "performance, f32 hint": ("performance", "f32"),
    "performance, default hint (default)": ("performance", None),
}


def _test_split(data: str, size: int, model: str) -> tuple[list[torch.Tensor], torch.Tensor]:
    from rexnet.data import build_datasets

    ds = build_datasets(data, size, train=False, model=model).test
    xs = torch.stack([ds[i][0] for i in range(len(ds))])
    labels = torch.tensor([int(ds[i][1]) for i in range(len(ds))])
    return list(xs.split(500)), labels


def agreement_table(checkpoint: str, data: str, calib_images: int) -> None:
    net, meta = load_model(checkpoint)
    size, name = meta.image_size, meta.name
    batches, labels = _test_split(data, size, name)
    ref = predict_logits(net, batches)
    calib = calibration_batches(data, size, name, calib_images)
    top1 = lambda logits: 100 * float((logits.argmax(1) == labels).float().mean())  # noqa: E731
    print(f"fp32 top-1 {top1(ref):.2f} %\n\n| path | top-1 | Δ (pt) | agreement |\n|---|---:|---:|---:|")
    with tempfile.TemporaryDirectory() as tmp:
        for label, (method, _, bc) in ORT_VARIANTS.items():
            q = quantize_int8(net, calib, Path(tmp) / "q.onnx", image_size=size, method=method, bias_correction=bc)
            out = predict_logits(OnnxModel(q.path, torch.get_num_threads()), batches)
            a = 100 * agreement(ref, out)["top1_agreement"]
            print(f"| onnxruntime int8, {label} | {top1(out):.2f} % | {top1(out) - top1(ref):+.2f} | {a:.2f} % |")
    for label, (preset, hint) in OV_VARIANTS.items():
        ir = to_openvino(net, "int8", calibration=calib, image_size=size, preset=preset)
        out = predict_logits(OpenVinoModel(ir, precision_hint=hint), batches)
        a = 100 * agreement(ref, out)["top1_agreement"]
        print(f"| OpenVINO int8, {label} | {top1(out):.2f} % | {top1(out) - top1(ref):+.2f} | {a:.2f} % |")


def speed_table(rounds: int) -> None:
    import timm

    g = torch.Generator().manual_seed(1)
    calib = list(torch.randn(64, 3, 224, 224, generator=g).split(32))
    models = {"ours": load_model("rexnet_100")[0], "timm": timm.create_model("rexnet_100").eval()}
    runners = {}
    for who, model in models.items():
        for preset in ("mixed", "performance"):
            ir = to_openvino(model, "int8", calibration=calib, preset=preset, fast_bias_correction=True)
            for hint in ("f32", None):
                runners[(who, preset, hint or "default")] = OpenVinoModel(ir, precision_hint=hint)
    x32 = torch.randn(32, 3, 224, 224, generator=g)
    x1 = x32[:1].clone()
    times: dict[tuple, list[float]] = {(k, b): [] for k in runners for b in (32, 1)}
    for fn in runners.values():
        fn(x32), fn(x1)
    for _ in range(rounds):  # every variant once per round: load changes hit all of them alike
        for key, fn in runners.items():
            for batch, x, reps in ((32, x32, 3), (1, x1, 25)):
                t0 = time.perf_counter()
                for _ in range(reps):
                    fn(x)
                times[(key, batch)].append((time.perf_counter() - t0) / reps)
    print("| model | NNCF preset | hint | b32 img/s | b1 ms |\n|---|---|---|---:|---:|")
    for key in runners:
        b32, b1 = statistics.median(times[(key, 32)]), statistics.median(times[(key, 1)])
        print(f"| {key[0]} | {key[1]} | {key[2]} | {32 / b32:.1f} | {1e3 * b1:.2f} |")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="what", required=True)
    a = sub.add_parser("agreement", help="top-1 agreement with fp32 per int8 variant")
    a.add_argument("--checkpoint", required=True)
    a.add_argument("--data", default="fashion-mnist")
    a.add_argument("--calib-images", type=int, default=512)
    s = sub.add_parser("speed", help="OpenVINO int8 speed per NNCF preset and precision hint (224 px)")
    s.add_argument("--rounds", type=int, default=5)
    p.add_argument("--threads", type=int, default=None)
    args = p.parse_args()
    logging.basicConfig(level=logging.WARNING)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.what == "agreement":
        agreement_table(args.checkpoint, args.data, args.calib_images)
    else:
        speed_table(args.rounds)


if __name__ == "__main__":
    main()
