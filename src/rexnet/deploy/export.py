"""Export: ONNX (verified in onnxruntime), OpenVINO IR and TorchScript (``torch.compile``: compiled.py).

ONNX files use opset :data:`ONNX_OPSET` (17) through torch's TorchScript-based exporter, with
dynamic batch, height and width: one file serves every input size. The fused model is exported
(BN folded) in its exporter form (:meth:`FusedBottleneck._forward_export`): Conv, Sigmoid,
Mul, Clip, Relu, Add, ReduceMean, Slice, Concat and one Gemm, node for node the types of timm's
graph; by default inner channel counts are then zero-padded to multiples of 16 (``deploy/pad.py``)
so that onnxruntime runs every conv in its blocked layout. Next to every ONNX/OpenVINO file a
``.json`` sidecar records the model name, classes, input size and normalisation, so
:mod:`rexnet.deploy.runtime` can evaluate it without PyTorch weights.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import sys
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch
from torch import nn

from .._memory import check_model_inference
from ..errors import ExportError
from .fuse import fuse

__all__ = [
    "ONNX_OPSET",
    "EXPORT_FORMATS",
    "EXPORT_PRECISIONS",
    "ExportError",
    "ExportFormat",
    "ExportResult",
    "export_onnx",
    "export_torchscript",
    "export_model",
    "onnx_session",
    "verify_onnx",
    "write_sidecar",
    "read_sidecar",
]

_log = logging.getLogger(__name__)

#: Opsets :func:`export_model` accepts: torch's TorchScript exporter writes 7..20; the graph needs 13+ ops.
MIN_OPSET, MAX_OPSET = 13, 20
#: ONNX opset written by :func:`export_onnx` (onnxruntime >= 1.14 runs it).
ONNX_OPSET = 17
#: Channel multiple :func:`export_onnx` pads to by default (16 fp32 lanes of AVX-512; see ``deploy/pad.py``).
PAD_CHANNELS = 16


@dataclass
class ExportResult:
    """What :func:`export_model` wrote and how closely it reproduces PyTorch.

    Attributes:
        path: The written file (the ``.xml`` for OpenVINO).
        format: ``onnx``, ``openvino``, ``torchscript`` or ``torchscript-trace``.
        max_abs_diff: Largest ``|exported - eager|`` over the check inputs (eval-mode,
            unfused model as the reference).
        check_shapes: Input shapes used for the check.
        opset: ONNX opset (``None`` for TorchScript).
        precision: ``f32``, ``bf16`` or ``int8``.
        cosine_min: Smallest cosine similarity of exported vs eager logits over the check inputs.
        top1_agreement: Share of check images with the same top-1 class as eager.
    """

    path: str
    format: str
    max_abs_diff: float
    check_shapes: list[tuple[int, ...]]
    opset: int | None = None
    precision: str = "f32"
    cosine_min: float | None = None
    top1_agreement: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _check_inputs(in_chans: int, image_size: int, calib: list[torch.Tensor], precision: str) -> list[torch.Tensor]:
    """Two random batches of different shapes (plus calibration images); int8 is checked on calibration
    images only: its scales fit their distribution, and random-noise inputs fall outside them."""
    if precision == "int8":
        return [calib[0][:16], *calib[1:2]]
    g = torch.Generator().manual_seed(0)
    small = max(32, image_size // 2 + 1)
    inputs = [
        torch.randn(2, in_chans, image_size, image_size, generator=g),
        torch.randn(1, in_chans, small, small + 16, generator=g),
    ]
    return inputs + [calib[0][:16]] if calib else inputs


def _is_rexnet(model: nn.Module) -> bool:
    """A ReXNet of this library (BN-folded before export) rather than a peer's module."""
    from ..model import RexNet
    from .fuse import FusedRexNet

    return isinstance(model, (RexNet, FusedRexNet))


def _in_chans(model: nn.Module) -> int:
    return int(model.stem[0].in_channels)  # type: ignore[index]


def onnx_session(path: str | os.PathLike | bytes, threads: int | None = None) -> Any:
    """An onnxruntime CPU session with all graph optimisations on."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.intra_op_num_threads = threads or torch.get_num_threads()
    so.log_severity_level = 3
    # no busy-waiting: on a shared machine spinning workers steal the cores other threads need
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(
        str(path) if not isinstance(path, bytes) else path, so, providers=["CPUExecutionProvider"]
    )


@torch.inference_mode()
def verify_onnx(path: str | os.PathLike, reference: nn.Module, inputs: list[torch.Tensor]) -> float:
    """Run ``path`` in onnxruntime and return the largest ``|onnx - reference|`` over ``inputs``."""
    sess = onnx_session(path)
    name = sess.get_inputs()[0].name
    worst = 0.0
    for x in inputs:
        out = sess.run(None, {name: x.numpy()})[0]
        worst = max(worst, float((torch.from_numpy(out) - reference(x)).abs().max()))
    return worst


def export_onnx(
    model: nn.Module,
    path: str | os.PathLike,
    *,
    image_size: int = 224,
    opset: int = ONNX_OPSET,
    fused: bool = True,
    pad_to: int = PAD_CHANNELS,
) -> Path:
    """Write ``model`` as ONNX with dynamic batch/height/width (input ``input``, output ``logits``).

    Args:
        model: A RexNet (fused first when ``fused``) or any module taking one NCHW image batch.
        path: Output ``.onnx`` file.
        image_size: Size of the example input used for tracing.
        opset: ONNX opset version.
        fused: Fold BatchNorms first (:func:`fuse`).
        pad_to: With ``fused``, pad inner channel counts to a multiple of this
            (:func:`~rexnet.deploy.pad.pad_channels`: same outputs, every conv in onnxruntime's
            blocked layout); ``0`` or ``1`` keeps the model's widths.

    Returns:
        The written path.
    """
    from .pad import pad_channels

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    net = fuse(model, channels_last=False) if fused else model.eval()
    if fused and pad_to > 1:
        net = pad_channels(net, pad_to)
    x = torch.randn(1, _in_chans(net) if fused else 3, image_size, image_size)
    dyn = {"input": {0: "batch", 2: "height", 3: "width"}, "logits": {0: "batch"}}
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # the TorchScript exporter announces its own deprecation
        torch.onnx.export(
            net,
            (x,),
            str(path),
            dynamo=False,
            opset_version=opset,
            input_names=["input"],
            output_names=["logits"],
            dynamic_axes=dyn,
            do_constant_folding=True,
        )
    return path


def export_torchscript(
    model: nn.Module,
    path: str | os.PathLike,
    *,
    method: Literal["script", "trace"] = "script",
    image_size: int = 224,
    fused: bool = True,
) -> Path:
    """Save ``model`` as TorchScript (``torch.jit.load`` reads it back without rexnet).

    Args:
        model: A RexNet model.
        path: Output ``.pt`` file.
        method: ``script`` (control flow kept) or ``trace`` (traced at ``image_size``; the
            trace is shape-generic for this network, which has no size-dependent branches).
        image_size: Example input size for tracing.
        fused: Fold BatchNorms first (:func:`fuse`).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    net = fuse(model) if fused else model.eval()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # torch.jit's deprecation notice
        if method == "script":
            ts = torch.jit.script(net)
        elif method == "trace":
            x = torch.randn(1, 3, image_size, image_size).contiguous(memory_format=torch.channels_last)
            ts = torch.jit.trace(net, x)
        else:
            raise ExportError(f"unknown TorchScript method {method!r}; expected one of: script, trace")
        ts.save(str(path))
    return path


def write_sidecar(path: str | os.PathLike, meta: dict[str, Any]) -> Path:
    """Write ``meta`` as ``path`` with suffix ``.json`` (atomically) and return that path."""
    side = Path(path).with_suffix(".json")
    tmp = side.with_name(side.name + ".tmp")
    tmp.write_text(json.dumps(meta, indent=2))
    os.replace(tmp, side)
    return side


def read_sidecar(path: str | os.PathLike) -> dict[str, Any]:
    """The ``.json`` sidecar next to an exported model (``{}`` when there is none)."""
    side = Path(path).with_suffix(".json")
    if not side.is_file():
        return {}
    try:
        return json.loads(side.read_text())
    except (OSError, ValueError) as e:
        raise ExportError(f"{side}: unreadable export metadata: {e}") from e


def _compare(fn: Any, model: nn.Module, inputs: list[torch.Tensor]) -> tuple[float, float, float, float]:
    """``(max |diff|, min cosine, mean cosine, top-1 agreement)`` of ``fn`` vs eager ``model`` over ``inputs``."""
    diff, cos, cos_sum, agree, n = 0.0, 1.0, 0.0, 0, 0
    with torch.inference_mode():
        for x in inputs:
            ref, out = model(x).float(), fn(x).float()
            diff = max(diff, float((out - ref).abs().max()))
            c = torch.nn.functional.cosine_similarity(out, ref, dim=1)
            cos, cos_sum = min(cos, float(c.min())), cos_sum + float(c.sum())
            agree += int((out.argmax(1) == ref.argmax(1)).sum())
            n += len(x)
    return diff, cos, cos_sum / n, agree / n


@dataclass(frozen=True)
class ExportJob:
    """What a format's writer gets: the eval-mode model and the request."""

    model: nn.Module
    out: Path
    name: str
    image_size: int
    opset: int = ONNX_OPSET
    precision: str = "f32"
    calib: list[torch.Tensor] = field(default_factory=list)


def _write_onnx(job: ExportJob) -> Path:
    if job.precision == "int8":
        from .quant import quantize_int8

        progress = sys.stderr.isatty()  # the bias correction takes ~45 s at 224 px
        return Path(quantize_int8(job.model, job.calib, job.out, image_size=job.image_size, progress=progress).path)
    return export_onnx(job.model, job.out, image_size=job.image_size, opset=job.opset)


def _run_onnx(path: Path) -> Callable[[torch.Tensor], torch.Tensor]:
    from .quant import OnnxModel

    return OnnxModel(path)


def _write_openvino(job: ExportJob) -> Path:
    from .openvino_ir import save_openvino, to_openvino

    ov_model = to_openvino(job.model, job.precision, calibration=job.calib, image_size=job.image_size)
    return save_openvino(ov_model, job.out, job.name)


def _run_openvino(path: Path) -> Callable[[torch.Tensor], torch.Tensor]:
    from .openvino_ir import OpenVinoModel

    return OpenVinoModel(path)


def _write_torchscript(job: ExportJob, method: Literal["script", "trace"]) -> Path:
    return export_torchscript(job.model, job.out, method=method, image_size=job.image_size)


def _run_torchscript(path: Path) -> Callable[[torch.Tensor], torch.Tensor]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return torch.jit.load(str(path))


@dataclass(frozen=True)
class ExportFormat:
    """One export format of :data:`EXPORT_FORMATS`.

    Attributes:
        description: One line for ``rexnet export --help``.
        suffix: What ``out`` names: a file suffix, or ``/`` for a folder.
        write: Writes an :class:`ExportJob` and returns the written file.
        run: Loads the written file as a callable (NCHW float32 in, logits out) for the check.
        precisions: ``--precision`` choices (the first is the default).
        sidecar: Write the ``.json`` metadata :mod:`rexnet.deploy.runtime` reads.
        uses_opset: Whether ``opset`` applies.
    """

    description: str
    suffix: str
    write: Callable[[ExportJob], Path]
    run: Callable[[Path], Callable[[torch.Tensor], torch.Tensor]]
    precisions: tuple[str, ...] = ("f32",)
    sidecar: bool = False
    uses_opset: bool = False


#: Export formats by name; adding one here adds it to :func:`export_model` and ``rexnet export``.
EXPORT_FORMATS: dict[str, ExportFormat] = {
    "onnx": ExportFormat(
        "ONNX, checked in onnxruntime (int8: static QDQ)",
        ".onnx",
        _write_onnx,
        _run_onnx,
        ("f32", "int8"),
        sidecar=True,
        uses_opset=True,
    ),
    "openvino": ExportFormat(
        "OpenVINO IR in a folder (bf16: runtime hint; int8: NNCF)",
        "/",
        _write_openvino,
        _run_openvino,
        ("f32", "bf16", "int8"),
        sidecar=True,
    ),
    "torchscript": ExportFormat(
        "TorchScript, scripted", ".pt", functools.partial(_write_torchscript, method="script"), _run_torchscript
    ),
    "torchscript-trace": ExportFormat(
        "TorchScript, traced", ".pt", functools.partial(_write_torchscript, method="trace"), _run_torchscript
    ),
}
#: ``--precision`` choices per format (the first is the default).
EXPORT_PRECISIONS = {name: fmt.precisions for name, fmt in EXPORT_FORMATS.items()}


def _check_request(
    format: str, opset: int, image_size: int | None, precision: str | None, calib_data: str | None
) -> tuple[ExportFormat, str]:
    """The format and precision to use; raises :class:`ExportError` on a bad combination."""
    if format not in EXPORT_FORMATS:
        raise ExportError(f"unknown export format {format!r}; expected one of: {', '.join(EXPORT_FORMATS)}")
    if not MIN_OPSET <= opset <= MAX_OPSET:
        raise ExportError(f"opset {opset} is not supported; expected {MIN_OPSET}..{MAX_OPSET} (default {ONNX_OPSET})")
    if image_size is not None and image_size < 8:
        raise ExportError(f"image_size must be >= 8, got {image_size}")
    fmt = EXPORT_FORMATS[format]
    precision = precision or fmt.precisions[0]
    if precision not in fmt.precisions:
        raise ExportError(
            f"precision {precision!r} is not available for {format}; expected one of: {', '.join(fmt.precisions)}"
        )
    if precision == "int8" and not calib_data:
        raise ExportError("int8 export needs calibration images: pass --calib-data (a dataset name or folder)")
    return fmt, precision


def _verify(
    path: Path, fn: Any, model: nn.Module, inputs: list[torch.Tensor], precision: str
) -> tuple[float, float, float]:
    """``(max |diff|, min cosine, top-1 agreement)`` of the written file vs eager; raises when too far apart."""
    diff, cos, cos_mean, agree = _compare(fn, model, inputs)
    if precision == "f32" and diff > 1e-3:
        raise ExportError(f"{path}: exported outputs differ from PyTorch by {diff:.3g} (> 1e-3)")
    if precision != "f32" and cos_mean < 0.98:
        raise ExportError(f"{path}: {precision} logits too far from PyTorch (mean cosine {cos_mean:.4f} < 0.98)")
    return diff, cos, agree


def export_model(
    name: str,
    out: str | os.PathLike,
    format: str = "onnx",
    *,
    checkpoint: str | os.PathLike | None = None,
    image_size: int | None = None,
    opset: int = ONNX_OPSET,
    verify: bool = True,
    precision: str | None = None,
    calib_data: str | None = None,
    calib_images: int = 256,
) -> ExportResult:
    """Load a model (:func:`rexnet.zoo.load_model`), export it and check the file against eager PyTorch.

    Args:
        name: Registered model name, or a training run folder / checkpoint / weights file.
        out: Output file; for ``openvino`` an output folder (``NAME.xml`` + ``.bin`` + ``.json``).
        format: A name of :data:`EXPORT_FORMATS`: ``onnx``, ``openvino``, ``torchscript`` (scripted)
            or ``torchscript-trace``.
        checkpoint: With a model name: training run, checkpoint or weights file; random weights when ``None``.
        image_size: Check/trace input size (default: the checkpoint's training size, else the model's).
        opset: ONNX opset.
        verify: Re-load the file and compare with the eval-mode model on two input shapes (and,
            for int8, on calibration images only).
        precision: ``f32`` (default); ``int8`` for ONNX (onnxruntime static QDQ) and OpenVINO
            (NNCF); ``bf16`` for OpenVINO (runtime hint).
        calib_data: Dataset name or folder with the int8 calibration images (training split).
        calib_images: How many calibration images.

    Returns:
        An :class:`ExportResult` with the max absolute difference (and cosine/top-1 agreement).

    Raises:
        InputError: Unknown model, format or precision, unreadable checkpoint, int8 without
            ``calib_data``, or a file that does not reproduce PyTorch: f32 outputs more than 1e-3
            apart, bf16/int8 logits with a mean cosine similarity under 0.98 (int8: checked on
            calibration images, whose distribution its scales fit).

    Example:
        >>> r = export_model("rexnet_100", "/tmp/rexnet_100.onnx")  # doctest: +SKIP
        >>> r.max_abs_diff < 1e-4  # doctest: +SKIP
        True
    """
    from ..zoo import load_model

    fmt, precision = _check_request(format, opset, image_size, precision, calib_data)
    model, meta = load_model(name) if checkpoint is None else load_model(name, checkpoint=checkpoint)
    size = image_size or meta.image_size
    check_model_inference(model, size, 16, what=meta.name)  # tracing and the verification batches
    calib: list[torch.Tensor] = []
    if calib_data:
        from .calib import calibration_batches

        calib = calibration_batches(calib_data, size, meta.name, calib_images)
    path = fmt.write(ExportJob(model, Path(out), meta.name, size, opset, precision, calib))
    if fmt.sidecar:
        side = dict(meta.to_dict(), image_size=size, format=format, precision=precision, calib_data=calib_data)
        if meta.num_classes == 1000:
            side["class_names"] = None  # torchvision's ImageNet names are looked up again at load time
        write_sidecar(path, side)
    inputs = _check_inputs(getattr(model, "in_chans", 3), size, calib, precision)
    diff, cos, agree = _verify(path, fmt.run(path), model, inputs, precision) if verify else (0.0, None, None)
    _log.info("wrote %s (%s %s), max |diff| vs eager %.3g", path, format, precision, diff)
    return ExportResult(
        str(path),
        format,
        diff,
        [tuple(x.shape) for x in inputs],
        opset if fmt.uses_opset else None,
        precision,
        cos,
        agree,
    )
