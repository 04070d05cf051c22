"""Export: ONNX (verified in onnxruntime), OpenVINO IR, TorchScript (script or trace), ``torch.compile``.

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

import json
import logging
import os
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import torch
from torch import nn

from .._memory import check_model_inference
from ..errors import RexnetError
from .fuse import fuse

__all__ = [
    "ONNX_OPSET",
    "EXPORT_FORMATS",
    "EXPORT_PRECISIONS",
    "ExportError",
    "ExportResult",
    "load_model",
    "export_onnx",
    "export_torchscript",
    "export_model",
    "compile_model",
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
EXPORT_FORMATS = ("onnx", "openvino", "torchscript", "torchscript-trace")
#: ``--precision`` choices per format (the first is the default).
EXPORT_PRECISIONS = {"onnx": ("f32", "int8"), "openvino": ("f32", "bf16", "int8"), "torchscript": ("f32",),
                     "torchscript-trace": ("f32",)}


class ExportError(RexnetError):
    """An export that failed or does not reproduce the PyTorch outputs."""


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


def load_model(name: str, checkpoint: str | os.PathLike | None = None, num_classes: int | None = None) -> nn.Module:
    """A registered model in eval mode, with weights from ``checkpoint`` if given.

    ``checkpoint`` may be a training checkpoint of ``rexnet train`` (class count read from
    it) or any weights file :func:`rexnet.create_model` reads.
    """
    from ..zoo import create_model

    if checkpoint is None:
        return create_model(name, num_classes=1000 if num_classes is None else num_classes).eval()
    from ..train.inference import load_trained_model

    model, _ = load_trained_model(checkpoint, name, num_classes=num_classes)
    return model.eval()


def _check_inputs(in_chans: int, image_size: int) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    small = max(32, image_size // 2 + 1)
    return [torch.randn(2, in_chans, image_size, image_size, generator=g),
            torch.randn(1, in_chans, small, small + 16, generator=g)]


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
    return ort.InferenceSession(str(path) if not isinstance(path, bytes) else path, so,
                                providers=["CPUExecutionProvider"])


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


def export_onnx(model: nn.Module, path: str | os.PathLike, *, image_size: int = 224,
                opset: int = ONNX_OPSET, fused: bool = True, pad_to: int = PAD_CHANNELS) -> Path:
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
        torch.onnx.export(net, (x,), str(path), dynamo=False, opset_version=opset, input_names=["input"],
                          output_names=["logits"], dynamic_axes=dyn, do_constant_folding=True)
    return path


def export_torchscript(model: nn.Module, path: str | os.PathLike, *, method: Literal["script", "trace"] = "script",
                       image_size: int = 224, fused: bool = True) -> Path:
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


class FrozenCompiled(nn.Module):
    """A ``torch.compile``d module whose compilations run with inductor's ``freezing`` on.

    Freezing has to be set in inductor's global config while a graph compiles (the
    ``options=`` route does not reach the int8 lowering); compilation happens lazily at the
    first call of each shape, so every call runs under ``config.patch(freezing=True)``.
    """

    def __init__(self, module: nn.Module, **compile_kwargs: Any) -> None:
        super().__init__()
        self.compiled = torch.compile(module, **compile_kwargs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        import torch._inductor.config as inductor_config

        with inductor_config.patch(freezing=True):
            return self.compiled(x)


def compile_model(model: nn.Module, *, fused: bool = True, dynamic: bool | None = False, **kwargs: Any) -> nn.Module:
    """``torch.compile`` for CPU inference: BN folded, channels-last, inductor with frozen weights.

    Freezing lets inductor pre-pack the conv weights for oneDNN and fuse each conv with its
    activation. Feed channels-last inputs. The first call compiles (a minute or two on 2 cores).

    Args:
        model: A RexNet model (fused first when ``fused``).
        fused: Fold BatchNorms first.
        dynamic: Passed to ``torch.compile`` (``False``: one graph per input shape).
        **kwargs: Further ``torch.compile`` arguments.
    """
    net = fuse(model) if fused else model.eval()
    return FrozenCompiled(net, dynamic=dynamic, **kwargs)


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


def _model_meta(name: str, checkpoint: str | os.PathLike | None) -> tuple[nn.Module, dict[str, Any]]:
    from ..data.transforms import model_norm
    from ..zoo import get_model_info, list_models

    if checkpoint is None:
        model = load_model(name)
        meta: dict[str, Any] = dict(model=name, num_classes=1000, class_names=None,
                                    image_size=get_model_info(name).input_size)
    else:
        from ..train.inference import load_trained_model

        model, meta = load_trained_model(checkpoint, name)
        meta = dict(meta)
        if meta.get("num_classes") == 1000:
            meta["class_names"] = None  # torchvision's ImageNet names are looked up again at load time
    meta.update(model_norm(name if name in list_models() else None))
    meta["checkpoint"] = None if checkpoint is None else str(checkpoint)
    return model.eval(), meta


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
    """Build ``name`` (weights from ``checkpoint``), export it and check it against eager PyTorch.

    Args:
        name: Registered model name.
        out: Output file; for ``openvino`` an output folder (``NAME.xml`` + ``.bin`` + ``.json``).
        format: ``onnx``, ``openvino``, ``torchscript`` (scripted) or ``torchscript-trace``.
        checkpoint: Training checkpoint or weights file; random weights when ``None``.
        image_size: Check/trace input size (default: the checkpoint's training size, else the model's).
        opset: ONNX opset.
        verify: Re-load the file and compare with the eval-mode model on two input shapes (and,
            for int8, on calibration images too).
        precision: ``f32`` (default); ``int8`` for ONNX (onnxruntime static QDQ) and OpenVINO
            (NNCF); ``bf16`` for OpenVINO (runtime hint).
        calib_data: Dataset name or folder with the int8 calibration images (training split).
        calib_images: How many calibration images.

    Returns:
        An :class:`ExportResult` with the max absolute difference (and cosine/top-1 agreement).

    Raises:
        RexnetError: Unknown model, format or precision, unreadable checkpoint, int8 without
            ``calib_data``, or a file that does not reproduce PyTorch: f32 outputs more than 1e-3
            apart, bf16/int8 logits with a mean cosine similarity under 0.98 (int8: checked on
            calibration images, whose distribution its scales fit).

    Example:
        >>> r = export_model("rexnet_100", "/tmp/rexnet_100.onnx")  # doctest: +SKIP
        >>> r.max_abs_diff < 1e-4  # doctest: +SKIP
        True
    """
    if format not in EXPORT_FORMATS:
        raise ExportError(f"unknown export format {format!r}; expected one of: {', '.join(EXPORT_FORMATS)}")
    if not MIN_OPSET <= opset <= MAX_OPSET:
        raise ExportError(f"opset {opset} is not supported; expected {MIN_OPSET}..{MAX_OPSET} (default {ONNX_OPSET})")
    if image_size is not None and image_size < 8:
        raise ExportError(f"image_size must be >= 8, got {image_size}")
    choices = EXPORT_PRECISIONS[format]
    precision = precision or choices[0]
    if precision not in choices:
        raise ExportError(f"precision {precision!r} is not available for {format}; expected one of: "
                          f"{', '.join(choices)}")
    if precision == "int8" and not calib_data:
        raise ExportError("int8 export needs calibration images: pass --calib-data (a dataset name or folder)")
    model, meta = _model_meta(name, checkpoint)
    size = image_size or int(meta["image_size"])
    check_model_inference(model, size, 16, what=name)  # tracing and the verification batches
    inputs = _check_inputs(_in_chans(fuse(model)), size)
    calib: list[torch.Tensor] = []
    if calib_data:
        from .calib import calibration_batches

        calib = calibration_batches(calib_data, size, name, calib_images)
        inputs.append(calib[0][:16])
    fn: Any = None
    if format == "openvino":
        from .openvino_ir import OpenVinoModel, save_openvino, to_openvino

        ov_model = to_openvino(model, precision, calibration=calib, image_size=size)
        path = save_openvino(ov_model, out, name)
        fn = OpenVinoModel(path) if verify else None
    elif format == "onnx" and precision == "int8":
        from .quant import quantize_int8

        fn = quantize_int8(model, calib, out, image_size=size)
        path = Path(fn.path)
    elif format == "onnx":
        path = export_onnx(model, out, image_size=size, opset=opset)
        if verify:
            from .quant import OnnxModel

            fn = OnnxModel(path)
    else:
        path = export_torchscript(model, out, method="trace" if format.endswith("trace") else "script",
                                  image_size=size)
        if verify:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                fn = torch.jit.load(str(path))
    if format in ("onnx", "openvino"):
        write_sidecar(path, {**meta, "image_size": size, "format": format, "precision": precision,
                             "calib_data": calib_data})
    if precision == "int8":
        # int8 scales fit the calibration data; random-noise inputs fall outside them, so check on real images
        inputs = [calib[0][:16], *calib[1:2]]
    diff, cos, cos_mean, agree = _compare(fn, model, inputs) if verify else (0.0, None, None, None)
    if verify and precision == "f32" and diff > 1e-3:
        raise ExportError(f"{path}: exported outputs differ from PyTorch by {diff:.3g} (> 1e-3)")
    if verify and precision != "f32" and cos_mean < 0.98:
        raise ExportError(f"{path}: {precision} logits too far from PyTorch (mean cosine {cos_mean:.4f} < 0.98)")
    _log.info("wrote %s (%s %s), max |diff| vs eager %.3g", path, format, precision, diff)
    return ExportResult(str(path), format, diff, [tuple(x.shape) for x in inputs],
                        opset if format == "onnx" else None, precision, cos, agree)
