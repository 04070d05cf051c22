"""The low ONNX core of deploy: export, onnxruntime session and runner, and the graph's name patterns.

Every writer (``export.py``'s registry, ``openvino_ir.py``, ``quant.py``, ``bias_correction.py``) and
the runtime registry import this module; it imports none of them, so ``deploy/`` has no import circle.

ONNX files use opset :data:`ONNX_OPSET` (17) through torch's TorchScript-based exporter, with
dynamic batch, height and width: one file serves every input size. The fused model is exported
(BN folded) in its exporter form (:meth:`FusedBottleneck._forward_export`): Conv, Sigmoid, Mul,
Clip, Relu, Add, ReduceMean, Slice, Concat and one Gemm, node for node the types of timm's graph;
by default inner channel counts are then zero-padded to multiples of 16 (``deploy/pad.py``) so that
onnxruntime runs every conv in its blocked layout. Files are written atomically
(:func:`rexnet._files.atomic_write_paths`).
"""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .._files import atomic_write_paths, check_regular_file
from ..errors import ExportError, InputError
from .fuse import fuse

__all__ = [
    "ONNX_OPSET",
    "MIN_OPSET",
    "MAX_OPSET",
    "PAD_CHANNELS",
    "SE_NODE_PATTERNS",
    "OnnxInput",
    "OnnxModel",
    "describe_input",
    "export_onnx",
    "in_chans",
    "is_rexnet",
    "onnx_session",
    "set_onnx_props",
    "verify_onnx",
]

_log = logging.getLogger(__name__)

#: Opsets :func:`export_onnx` accepts from the CLI: torch's TorchScript exporter writes 7..20; the graph needs 13+.
MIN_OPSET, MAX_OPSET = 13, 20
#: ONNX opset written by :func:`export_onnx` (onnxruntime >= 1.14 runs it).
ONNX_OPSET = 17
#: Channel multiple :func:`export_onnx` pads to by default (16 fp32 lanes of AVX-512; see ``deploy/pad.py``).
PAD_CHANNELS = 16
#: Node names of the SE layers in our exported graph (``FusedBottleneck._forward_export``): what the
#: int8 paths may keep in float.
SE_NODE_PATTERNS = (r".*/blocks\.\d+/Conv(_1)?(/WithoutBiases)?$", r".*/blocks\.\d+/Mul$")


def is_rexnet(model: nn.Module) -> bool:
    """Whether ``model`` is a ReXNet of this library (exported BN-folded) rather than a peer's module."""
    from ..model import RexNet
    from .fuse import FusedRexNet

    return isinstance(model, (RexNet, FusedRexNet))


def in_chans(model: nn.Module) -> int:
    """Input channels of a (fused) ReXNet: those of its stem conv."""
    return int(model.stem[0].in_channels)  # type: ignore[index]


def _ort_errors() -> tuple[type[BaseException], ...]:
    """onnxruntime's own exception classes (they derive from ``Exception`` directly)."""
    from onnxruntime.capi import onnxruntime_pybind11_state as state

    return tuple(v for v in vars(state).values() if isinstance(v, type) and issubclass(v, Exception))


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0][:300] if text else type(error).__name__


def onnx_session(path: str | os.PathLike | bytes, threads: int | None = None) -> Any:
    """An onnxruntime CPU session with all graph optimisations on.

    Raises:
        InputError: onnxruntime is not installed, or ``path`` is missing or a special file.
        ExportError: ``path`` is empty or not a model onnxruntime can load (the message names it).
    """
    try:
        import onnxruntime as ort
    except ImportError:
        raise InputError("running ONNX models needs onnxruntime: pip install onnxruntime") from None
    what = "in-memory ONNX model" if isinstance(path, bytes) else str(path)
    if not isinstance(path, bytes):
        p = check_regular_file(path, "ONNX model")
        if p.stat().st_size == 0:
            raise ExportError(f"{p}: empty file, not an ONNX model")
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.intra_op_num_threads = threads or torch.get_num_threads()
    so.log_severity_level = 3
    # no busy-waiting: on a shared machine spinning workers steal the cores other threads need
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    try:
        return ort.InferenceSession(
            str(path) if not isinstance(path, bytes) else path, so, providers=["CPUExecutionProvider"]
        )
    except _ort_errors() as e:
        raise ExportError(f"{what}: not an ONNX model onnxruntime can load: {_first_line(e)}") from None


@dataclass(frozen=True)
class OnnxInput:
    """The image input of an ONNX model: its name and its fixed dimensions (``None``: dynamic)."""

    name: str
    batch: int | None
    channels: int | None
    height: int | None
    width: int | None

    @property
    def fixed_size(self) -> int | None:
        """The one square input size the model accepts, or ``None`` when height or width is dynamic."""
        if self.height is None or self.width is None:
            return None
        if self.height != self.width:
            return None
        return self.height


def _dim(value: Any) -> int | None:
    return value if isinstance(value, int) and value > 0 else None  # a name or None is a dynamic axis


def describe_input(session: Any, where: str) -> OnnxInput:
    """The single NCHW float input of ``session``; anything else is refused.

    Raises:
        ExportError: Not exactly one input, not 4-D, not float32, or no output (names ``where``).
    """
    inputs = session.get_inputs()
    if len(inputs) != 1:
        names = ", ".join(i.name for i in inputs) or "none"
        raise ExportError(f"{where}: the model has {len(inputs)} inputs ({names}); rexnet runs one image input")
    i = inputs[0]
    shape = list(i.shape or [])
    if len(shape) != 4:
        raise ExportError(f"{where}: input {i.name!r} has shape {shape}; expected 4-D NCHW [batch, 3, height, width]")
    if i.type != "tensor(float)":
        raise ExportError(f"{where}: input {i.name!r} is {i.type}; expected tensor(float) (float32 images)")
    if not session.get_outputs():
        raise ExportError(f"{where}: the model has no output")
    found = OnnxInput(i.name, *(_dim(d) for d in shape))
    if found.height is not None and found.width is not None and found.height != found.width:
        raise ExportError(
            f"{where}: input {i.name!r} has a fixed {found.height}x{found.width} size; rexnet feeds square images"
        )
    return found


class OnnxModel:
    """A callable wrapping an onnxruntime session: ``torch.Tensor`` (NCHW float32) in, logits out.

    The model must have one float NCHW input. A fixed input size is exposed as :attr:`fixed_size`;
    a fixed batch size is served by running the batch in chunks (the last one zero-padded).

    Raises:
        ExportError: An unreadable, empty or text file, or a graph with another input signature.
    """

    def __init__(self, path: str | os.PathLike, threads: int | None = None) -> None:
        self.path = str(path)
        self.session = onnx_session(path, threads)
        self.input = describe_input(self.session, self.path)
        self.input_name = self.input.name
        self.fixed_size = self.input.fixed_size

    def _run(self, arr: Any) -> torch.Tensor:
        try:
            return torch.from_numpy(self.session.run(None, {self.input_name: arr})[0])
        except _ort_errors() as e:
            raise ExportError(f"{self.path}: onnxruntime failed on input {list(arr.shape)}: {_first_line(e)}") from None

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        arr = x.detach().float().contiguous().numpy()
        b = self.input.batch
        if b is None or len(arr) == b:
            return self._run(arr)
        outs = []
        for chunk in torch.from_numpy(arr).split(b):
            k = len(chunk)
            padded = torch.cat([chunk, chunk.new_zeros((b - k, *chunk.shape[1:]))]) if k < b else chunk
            outs.append(self._run(padded.numpy())[:k])
        return torch.cat(outs)


@torch.inference_mode()
def verify_onnx(path: str | os.PathLike, reference: nn.Module, inputs: list[torch.Tensor]) -> float:
    """Run ``path`` in onnxruntime and return the largest ``|onnx - reference|`` over ``inputs``."""
    run = OnnxModel(path)
    worst = 0.0
    for x in inputs:
        worst = max(worst, float((run(x) - reference(x)).abs().max()))
    return worst


def set_onnx_props(model: Any, props: Mapping[str, str]) -> None:
    """Set ``props`` in an ``onnx.ModelProto``'s ``metadata_props``, replacing entries of the same keys."""
    keep = [(p.key, p.value) for p in model.metadata_props if p.key not in props]
    del model.metadata_props[:]
    for key, value in [*keep, *props.items()]:
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value


def export_onnx(
    model: nn.Module,
    path: str | os.PathLike,
    *,
    image_size: int = 224,
    opset: int = ONNX_OPSET,
    fused: bool = True,
    pad_to: int = PAD_CHANNELS,
    overwrite: bool = False,
    metadata: Mapping[str, str] | None = None,
) -> Path:
    """Write ``model`` as ONNX with dynamic batch/height/width (input ``input``, output ``logits``), atomically.

    Args:
        model: A RexNet (fused first when ``fused``) or any module taking one NCHW image batch.
        path: Output ``.onnx`` file.
        image_size: Size of the example input used for tracing.
        opset: ONNX opset version.
        fused: Fold BatchNorms first (:func:`fuse`).
        pad_to: With ``fused``, pad inner channel counts to a multiple of this
            (:func:`~rexnet.deploy.pad.pad_channels`: same outputs, every conv in onnxruntime's
            blocked layout); ``0`` or ``1`` keeps the model's widths.
        overwrite: Replace an existing file this process did not write.
        metadata: Key/values for the file's ``metadata_props`` (see :mod:`rexnet.deploy.facts`),
            set before the file takes its name.

    Returns:
        The written path.

    Raises:
        OutputExistsError: ``path`` exists and ``overwrite`` is false (see :mod:`rexnet._files`).
    """
    from .pad import pad_channels

    net = fuse(model, channels_last=False) if fused else model.eval()
    if fused and pad_to > 1:
        net = pad_channels(net, pad_to)
    x = torch.randn(1, in_chans(net) if fused else 3, image_size, image_size)
    dyn = {"input": {0: "batch", 2: "height", 3: "width"}, "logits": {0: "batch"}}

    def write(tmp: Path) -> None:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")  # the TorchScript exporter announces its own deprecation
            torch.onnx.export(
                net,
                (x,),
                str(tmp),
                dynamo=False,
                opset_version=opset,
                input_names=["input"],
                output_names=["logits"],
                dynamic_axes=dyn,
                do_constant_folding=True,
            )
        if metadata:
            import onnx

            proto = onnx.load(str(tmp))
            set_onnx_props(proto, metadata)
            onnx.save(proto, str(tmp))

    atomic_write_paths(path, write, overwrite=overwrite, what="ONNX file")
    return Path(path)
