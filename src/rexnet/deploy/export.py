"""Export: ONNX (verified in onnxruntime), TorchScript (script or trace), ``torch.compile``.

ONNX files use opset :data:`ONNX_OPSET` (17) through torch's TorchScript-based exporter, with
dynamic batch, height and width: one file serves every input size. The fused model is exported
(BN folded), so the graph holds only Conv, Mul, Sigmoid, Clip, Add, ReduceMean, Gemm and
Slice/Pad nodes that onnxruntime fuses further.
"""

from __future__ import annotations

import logging
import os
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import torch
from torch import nn

from ..errors import RexnetError
from .fuse import fuse

__all__ = [
    "ONNX_OPSET",
    "EXPORT_FORMATS",
    "ExportError",
    "ExportResult",
    "load_model",
    "export_onnx",
    "export_torchscript",
    "export_model",
    "compile_model",
    "onnx_session",
    "verify_onnx",
]

_log = logging.getLogger(__name__)

#: ONNX opset written by :func:`export_onnx` (onnxruntime >= 1.14 runs it).
ONNX_OPSET = 17
EXPORT_FORMATS = ("onnx", "torchscript", "torchscript-trace")


class ExportError(RexnetError):
    """An export that failed or does not reproduce the PyTorch outputs."""


@dataclass
class ExportResult:
    """What :func:`export_model` wrote and how closely it reproduces PyTorch.

    Attributes:
        path: The written file.
        format: ``onnx``, ``torchscript`` or ``torchscript-trace``.
        max_abs_diff: Largest ``|exported - eager|`` over the check inputs (eval-mode,
            unfused model as the reference).
        check_shapes: Input shapes used for the check.
        opset: ONNX opset (``None`` for TorchScript).
    """

    path: str
    format: str
    max_abs_diff: float
    check_shapes: list[tuple[int, ...]]
    opset: int | None = None

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
                opset: int = ONNX_OPSET, fused: bool = True) -> Path:
    """Write ``model`` as ONNX with dynamic batch/height/width (input ``input``, output ``logits``).

    Args:
        model: A RexNet (fused first when ``fused``) or any module taking one NCHW image batch.
        path: Output ``.onnx`` file.
        image_size: Size of the example input used for tracing.
        opset: ONNX opset version.
        fused: Fold BatchNorms first (:func:`fuse`).

    Returns:
        The written path.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    net = fuse(model, channels_last=False) if fused else model.eval()
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


def export_model(
    name: str,
    out: str | os.PathLike,
    format: str = "onnx",
    *,
    checkpoint: str | os.PathLike | None = None,
    image_size: int | None = None,
    opset: int = ONNX_OPSET,
    verify: bool = True,
) -> ExportResult:
    """Build ``name`` (weights from ``checkpoint``), export it and check it against eager PyTorch.

    Args:
        name: Registered model name.
        out: Output file.
        format: ``onnx``, ``torchscript`` (scripted) or ``torchscript-trace``.
        checkpoint: Training checkpoint or weights file; random weights when ``None``.
        image_size: Check/trace input size (default: the model's).
        opset: ONNX opset.
        verify: Re-load the file and compare with the eval-mode model on two input shapes.

    Returns:
        An :class:`ExportResult` with the max absolute difference.

    Raises:
        RexnetError: Unknown model or format, unreadable checkpoint, or a file whose outputs
            differ from PyTorch by more than 1e-3.

    Example:
        >>> r = export_model("rexnet_100", "/tmp/rexnet_100.onnx")  # doctest: +SKIP
        >>> r.max_abs_diff < 1e-4  # doctest: +SKIP
        True
    """
    if format not in EXPORT_FORMATS:
        raise ExportError(f"unknown export format {format!r}; expected one of: {', '.join(EXPORT_FORMATS)}")
    from ..zoo import get_model_info

    size = image_size or get_model_info(name).input_size
    model = load_model(name, checkpoint)
    inputs = _check_inputs(_in_chans(fuse(model)), size)
    if format == "onnx":
        path = export_onnx(model, out, image_size=size, opset=opset)
    else:
        path = export_torchscript(model, out, method="trace" if format.endswith("trace") else "script",
                                  image_size=size)
    diff = 0.0
    if verify:
        if format == "onnx":
            diff = verify_onnx(path, model, inputs)
        else:
            with torch.inference_mode(), warnings.catch_warnings():
                warnings.simplefilter("ignore")
                loaded = torch.jit.load(str(path))
                diff = max(float((loaded(x) - model(x)).abs().max()) for x in inputs)
        if diff > 1e-3:
            raise ExportError(f"{path}: exported outputs differ from PyTorch by {diff:.3g} (> 1e-3)")
    _log.info("wrote %s (%s), max |diff| vs eager %.3g", path, format, diff)
    return ExportResult(str(path), format, diff, [tuple(x.shape) for x in inputs],
                        opset if format == "onnx" else None)
