"""Accuracy of every reduced-precision deploy path on real data: top-1 agreement with fp32 and accuracy change.

Each path runs the same trained weights on the same preprocessed images (by default the official
test split of the dataset); int8 paths are calibrated on training images (evaluation transform),
never on the images they are scored on.
"""

from __future__ import annotations

import functools
import logging
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from .._files import atomic_write, check_output, write_json
from ..errors import InputError, RexnetError
from .quant import agreement, predict_logits

__all__ = ["PRECISION_PATHS", "precision_accuracy", "accuracy_markdown"]

_log = logging.getLogger(__name__)

Runner = Callable[[torch.Tensor], torch.Tensor]


def _fused(model: torch.nn.Module, calib: list[torch.Tensor], size: int, tmp: Path, threads: int | None) -> Runner:
    from .fuse import fuse

    net = fuse(model)
    return lambda x: net(x.contiguous(memory_format=torch.channels_last))


def _bf16(model: torch.nn.Module, calib: list[torch.Tensor], size: int, tmp: Path, threads: int | None) -> Runner:
    from .quant import to_bf16

    return to_bf16(model)


def _ort(model: torch.nn.Module, calib: list[torch.Tensor], size: int, tmp: Path, threads: int | None) -> Runner:
    from .onnx_core import OnnxModel, export_onnx

    return OnnxModel(export_onnx(model, tmp / "fp32.onnx", image_size=size), threads)


def _ort_int8(model: torch.nn.Module, calib: list[torch.Tensor], size: int, tmp: Path, threads: int | None) -> Runner:
    from .onnx_core import OnnxModel
    from .quant import quantize_int8

    return OnnxModel(quantize_int8(model, calib, tmp / "int8.onnx", image_size=size).path, threads)


def _openvino(
    precision: str, model: torch.nn.Module, calib: list[torch.Tensor], size: int, tmp: Path, threads: int | None
) -> Runner:
    from .openvino_ir import OpenVinoModel, to_openvino

    return OpenVinoModel(to_openvino(model, precision, calibration=calib, image_size=size), threads=threads)


def _pt2e(model: torch.nn.Module, calib: list[torch.Tensor], size: int, tmp: Path, threads: int | None) -> Runner:
    from .candidates import FixedBatch
    from .quant import quantize_int8_pt2e

    full = [x for x in calib if x.shape[0] == calib[0].shape[0]]
    return FixedBatch(quantize_int8_pt2e(model, full), full[0].shape[0])


#: Paths :func:`precision_accuracy` can score, each with its builder ``(model, calib, size, tmp, threads)``
#: (``fp32 eager`` is always the reference).
PRECISION_PATHS: dict[str, Callable[..., Runner]] = {
    "fused fp32": _fused,
    "onnxruntime fp32": _ort,
    "bf16 eager": _bf16,
    "onnxruntime int8": _ort_int8,
    "openvino f32": functools.partial(_openvino, "f32"),
    "openvino bf16": functools.partial(_openvino, "bf16"),
    "openvino int8": functools.partial(_openvino, "int8"),
    "int8 pt2e+compile": _pt2e,
}


def precision_accuracy(
    checkpoint: str | os.PathLike,
    data: str = "fashion-mnist",
    *,
    model: str | None = None,
    split: str = "test",
    paths: tuple[str, ...] = tuple(PRECISION_PATHS),
    calib_images: int = 512,
    batch_size: int = 256,
    limit: int | None = None,
    threads: int | None = None,
) -> dict[str, Any]:
    """Score each deploy path of a trained checkpoint on ``data``'s ``split`` against fp32 eager.

    Args:
        checkpoint: A ``rexnet train`` run folder or checkpoint (model, classes and input size are read from it).
        data: Dataset name or folder (:func:`rexnet.data.build_datasets`).
        model: Model name when the checkpoint does not record one.
        split: ``test`` (official test split) or ``val``.
        paths: Which of :data:`PRECISION_PATHS` to run (unavailable runtimes are skipped with a note).
        calib_images: Training images for int8 calibration.
        batch_size: Images per call.
        limit: Score only the first ``limit`` images (smoke runs).
        threads: Runtime threads.

    Returns:
        ``{"checkpoint", "data", "split", "images", "image_size", "model", "fp32_top1", "paths":
        {name: {"top1", "delta_pt", "top1_agreement", "cosine_mean", "cosine_min", "max_abs_diff",
        "seconds"}}, "skipped": {name: reason}}``; accuracies in %, ``delta_pt`` in points.
    """
    from ..data import build_datasets
    from ..zoo import load_model
    from .calib import calibration_batches
    from .runtime import split_of

    unknown = [p for p in paths if p not in PRECISION_PATHS]
    if unknown:
        raise InputError(f"unknown precision path {unknown[0]!r}; expected one of: {', '.join(PRECISION_PATHS)}")
    net, meta = load_model(checkpoint) if model is None else load_model(model, checkpoint=checkpoint)
    size = meta.image_size
    bundle = build_datasets(data, size, train=False, model=meta.name)
    ds = split_of(bundle, split)
    if bundle.num_classes != meta.num_classes:
        raise InputError(f"{bundle.name} has {bundle.num_classes} classes but the model has {meta.num_classes}")
    n = len(ds) if limit is None else min(limit, len(ds))
    xs = torch.stack([ds[i][0] for i in range(n)])
    labels = torch.tensor([int(ds[i][1]) for i in range(n)])
    batches = list(xs.split(batch_size))
    ref = predict_logits(net, batches)
    fp32_top1 = 100.0 * float((ref.argmax(1) == labels).float().mean())
    needs_calib = any("int8" in p for p in paths)
    calib = calibration_batches(data, size, meta.name, calib_images) if needs_calib else []
    out: dict[str, Any] = dict(
        checkpoint=str(checkpoint),
        data=bundle.name,
        split=split,
        images=n,
        image_size=size,
        model=meta.name,
        calib_images=sum(len(c) for c in calib),
        fp32_top1=fp32_top1,
        paths={},
        skipped={},
    )
    with tempfile.TemporaryDirectory() as tmp:
        for name in paths:
            t0 = time.time()
            try:
                fn = PRECISION_PATHS[name](net, calib, size, Path(tmp), threads)
                logits = predict_logits(fn, batches)
            except (ImportError, RexnetError) as e:
                out["skipped"][name] = str(e).splitlines()[0]
                _log.warning("skipping %s: %s", name, e)
                continue
            top1 = 100.0 * float((logits.argmax(1) == labels).float().mean())
            out["paths"][name] = dict(
                top1=top1, delta_pt=top1 - fp32_top1, **agreement(ref, logits), seconds=round(time.time() - t0, 1)
            )
            _log.info(
                "%s: top-1 %.2f%% (%+.2f pt), agreement %.2f%%",
                name,
                top1,
                top1 - fp32_top1,
                100 * out["paths"][name]["top1_agreement"],
            )
    return out


def accuracy_markdown(res: dict[str, Any], max_delta_pt: float = 0.3, min_agreement: float = 0.99) -> str:
    """A Markdown table of :func:`precision_accuracy`'s result, each path checked against the targets."""
    lines = [
        f"{res['model']} from `{res['checkpoint']}` on {res['data']} {res['split']} split "
        f"({res['images']} images, {res['image_size']} px); int8 calibrated on {res['calib_images']} training "
        f"images. fp32 eager top-1: **{res['fp32_top1']:.2f} %**.",
        "",
        "| path | top-1 | Δ vs fp32 (pt) | top-1 agreement | cosine (mean / min) | target met |",
        "|---|---:|---:|---:|---:|---|",
    ]
    for name, r in res["paths"].items():
        ok = r["top1_agreement"] >= min_agreement and abs(r["delta_pt"]) <= max_delta_pt
        lines.append(
            f"| {name} | {r['top1']:.2f} % | {r['delta_pt']:+.2f} | {100 * r['top1_agreement']:.2f} % "
            f"| {r['cosine_mean']:.5f} / {r['cosine_min']:.4f} | {'yes' if ok else '**no**'} |"
        )
    for name, why in res.get("skipped", {}).items():
        lines.append(f"| {name} | – | – | – | – | skipped: {why} |")
    return "\n".join(lines) + "\n"


def write_accuracy(res: dict[str, Any], out: str | os.PathLike, *, overwrite: bool = False) -> None:
    """``accuracy.json`` and ``accuracy.md`` into folder ``out``, atomically, under the output policy.

    Raises:
        OutputExistsError: Either file exists, was not written by this run, and ``overwrite`` is false.
    """
    d = Path(out)
    targets = (d / "accuracy.json", d / "accuracy.md")
    for t in targets:  # both refused or both written
        check_output(t, overwrite=overwrite, what="accuracy report")
    write_json(res, targets[0], overwrite=overwrite, what="accuracy report")
    atomic_write(targets[1], accuracy_markdown(res), overwrite=overwrite, what="accuracy report")
