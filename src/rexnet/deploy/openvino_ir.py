"""OpenVINO: IR export (f32, bf16, int8 via NNCF post-training quantization) and a callable runner.

The IR is converted from our ONNX export (:func:`~rexnet.deploy.export_onnx`, the graph with
timm's node types), so it keeps the dynamic batch/height/width. Precision on OpenVINO's CPU plugin
is partly a *runtime* setting: ``f32`` and ``bf16`` IRs hold the same f32 weights and differ in
the ``INFERENCE_PRECISION_HINT`` recorded in the IR's ``runtime_options`` (the default hint is
bf16 on CPUs with AVX512-BF16 or AMX, so f32 has to be asked for). ``int8`` inserts NNCF's
quantize/dequantize nodes, calibrated on real images; what stays in floating point (SiLU, the SE
gate, the pooling) runs at OpenVINO's default precision, bf16 where the CPU has it: on Fashion-MNIST
that cost 0.02-0.08 pt of top-1 agreement and gained ~7 % speed over an f32 hint.

Needs ``pip install openvino nncf`` (the ``deploy`` extra).
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from .._files import atomic_write_paths, check_regular_file
from .._signals import repair_altstack
from ..errors import ExportError, InputError
from .onnx_core import SE_NODE_PATTERNS, export_onnx, is_rexnet

__all__ = [
    "OV_PRECISIONS",
    "SE_NODE_PATTERNS",
    "decline_telemetry",
    "openvino_available",
    "to_openvino",
    "save_openvino",
    "OpenVinoModel",
]

_log = logging.getLogger(__name__)

#: Precisions :func:`to_openvino` writes.
OV_PRECISIONS = ("f32", "bf16", "int8")
#: Recorded ``INFERENCE_PRECISION_HINT`` per precision; ``None``: OpenVINO's default for the CPU.
_HINT: dict[str, str | None] = {"f32": "f32", "bf16": "bf16", "int8": None}


def decline_telemetry() -> None:
    """Answer "no" to OpenVINO's usage telemetry for this process; call it before openvino or nncf loads.

    NNCF sends a session event to Google Analytics when it is imported, and OpenVINO's model converter one per
    conversion, unless a consent file in the home folder says no. rexnet reaches the network only when the user
    asks for weights, so their shared consent checker is told the answer is "declined" (nothing is written to the
    home folder, and no environment variable is changed).
    """
    try:
        from openvino_telemetry.utils.opt_in_checker import ConsentCheckResult, OptInChecker
    except ImportError:  # no telemetry package: nothing is sent
        return
    OptInChecker.check = lambda self, *args, **kwargs: ConsentCheckResult.DECLINED


def _import_nncf() -> Any:
    """``import nncf`` without torch's "No CUDA runtime is found" log line (cpp_extension, imported by NNCF,
    logs it on a CPU machine that has a CUDA toolkit folder: nothing the user can act on)."""
    cpp_log = logging.getLogger("torch.utils.cpp_extension")
    level = cpp_log.level
    cpp_log.setLevel(logging.ERROR)
    try:
        import nncf
    finally:
        cpp_log.setLevel(level)
    return nncf


def openvino_available(with_nncf: bool = False) -> bool:
    """Whether ``openvino`` (and with ``with_nncf``, ``nncf``) can be imported (telemetry declined first)."""
    decline_telemetry()
    try:
        import openvino  # noqa: F401

        if with_nncf:
            _import_nncf()
    except ImportError:
        return False
    return True


def _require(with_nncf: bool = False) -> None:
    if not openvino_available(with_nncf):
        raise InputError(
            "the OpenVINO target needs openvino"
            + (" and nncf" if with_nncf else "")
            + ": pip install openvino nncf (or rexnet[deploy])"
        )


def _ov_from_module(model: nn.Module, image_size: int) -> Any:
    """An ``openvino.Model`` (dynamic N/H/W) converted from the ONNX export of ``model``."""
    import openvino as ov

    with tempfile.TemporaryDirectory() as tmp:
        path = export_onnx(model, Path(tmp) / "model.onnx", image_size=image_size, fused=is_rexnet(model))
        return ov.convert_model(str(path))


def to_openvino(
    model: nn.Module | str | os.PathLike,
    precision: str = "f32",
    *,
    calibration: Iterable[torch.Tensor] | None = None,
    image_size: int = 224,
    subset_size: int | None = None,
    preset: str = "performance",
    fast_bias_correction: bool = False,
    keep_se_float: bool = False,
) -> Any:
    """Convert a model to an ``openvino.Model`` at ``precision``.

    Args:
        model: A RexNet (BN folded first), any module taking one NCHW batch (e.g. timm's), or an
            ``.onnx`` file.
        precision: ``f32``, ``bf16`` (runtime hint) or ``int8`` (NNCF post-training quantization).
        calibration: Batches of preprocessed NCHW float32 images; required for ``int8``.
        image_size: Example input size for the ONNX export.
        subset_size: Calibration images NNCF uses (default: all the batches hold).
        preset: NNCF preset: ``performance`` (symmetric activations) or ``mixed`` (asymmetric
            activations, for SiLU's mostly positive outputs). ``performance`` is the default: with
            full bias correction it kept top-1 agreement at 99.19 / 99.61 % on two Fashion-MNIST
            models (``mixed``: 99.18 / 99.53 %) and ran ~15 % faster at batch 32, ~10 % at batch 1
            (224 px, 2 threads, AMD EPYC Zen 4).
        fast_bias_correction: NNCF's fast bias correction instead of the full one (default off:
            on the Fashion-MNIST model the full one raised top-1 agreement from 98.1 % to 99.2 %,
            for ~1.5x the quantization time).
        keep_se_float: Leave our squeeze-excitation layers (two 1x1 convs on a pooled vector and
            the gating multiply: under 0.1 % of the MACs) unquantized. Off by default: with full bias
            correction the quantized SE kept 99.2 % top-1 agreement on Fashion-MNIST, and our int8
            IR ran at 1.03x timm's at batch 32 with it, 0.86x with the float SE (onnxruntime int8
            keeps the SE float: 99.0 vs 98.9 % agreement). Matches nothing in a peer's graph.

    Returns:
        The ``openvino.Model``, with the precision hint in ``rt_info['runtime_options']``.

    Raises:
        InputError: openvino/nncf missing, unknown precision, or int8 without calibration data.
    """
    if precision not in OV_PRECISIONS:
        raise InputError(f"unknown OpenVINO precision {precision!r}; expected one of: {', '.join(OV_PRECISIONS)}")
    _require(with_nncf=precision == "int8")
    import openvino as ov

    ov_model = (
        ov.convert_model(str(model)) if isinstance(model, (str, os.PathLike)) else _ov_from_module(model, image_size)
    )
    if precision == "int8":
        # one image per item: NNCF counts subset_size in items and collects statistics per item
        images = [x[None] for b in (calibration or []) for x in b.detach().float().contiguous().numpy()]
        if not images:
            raise InputError("int8 quantization needs calibration images (--calib-data)")
        nncf = _import_nncf()
        nncf_log = logging.getLogger("nncf")
        level = nncf_log.level
        nncf_log.setLevel(logging.WARNING)  # progress bars and per-step INFO lines
        try:
            ov_model = nncf.quantize(
                ov_model,
                nncf.Dataset(images),
                preset=nncf.QuantizationPreset(preset),
                subset_size=subset_size or len(images),
                fast_bias_correction=fast_bias_correction,
                ignored_scope=nncf.IgnoredScope(patterns=list(SE_NODE_PATTERNS), validate=False)
                if keep_se_float
                else None,
            )
        finally:
            nncf_log.setLevel(level)
    if _HINT[precision] is not None:
        ov_model.set_rt_info(_HINT[precision], ["runtime_options", "INFERENCE_PRECISION_HINT"])
    ov_model.set_rt_info(precision, ["rexnet", "precision"])
    return ov_model


def save_openvino(ov_model: Any, out_dir: str | os.PathLike, stem: str = "model", *, overwrite: bool = False) -> Path:
    """Write ``out_dir/stem.xml`` + ``.bin`` (weights kept in f32: no fp16 compression). Returns the ``.xml``.

    The pair is written under temp names and renamed together, the ``.xml`` (what readers open)
    last, so a reader never finds an ``.xml`` next to a partial ``.bin``.

    Raises:
        OutputExistsError: Either file exists, was not written by this run and ``overwrite`` is false.
        InputError: ``out_dir`` is a file.
    """
    decline_telemetry()
    import openvino as ov

    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise InputError(f"OpenVINO output {out} is a file; the IR is written into a folder")
    xml, bin_ = out / f"{stem}.xml", out / f"{stem}.bin"

    def write(tmp: dict[str, Path]) -> None:
        ov.save_model(ov_model, str(tmp["xml"]), compress_to_fp16=False)
        os.replace(tmp["xml"].with_suffix(".bin"), tmp["bin"])  # OpenVINO names the weights after the .xml

    atomic_write_paths({"bin": bin_, "xml": xml}, write, overwrite=overwrite, what="OpenVINO IR")
    return xml


def _read_model(core: Any, path: str) -> Any:
    """``core.read_model(path)`` with the file and its ``.bin`` checked first; a bad file is an ExportError."""
    p = check_regular_file(path, "OpenVINO model")
    if p.suffix.lower() == ".xml":
        weights = p.with_suffix(".bin")
        if not weights.exists():
            raise ExportError(f"{p}: its weights file {weights.name} is missing (an IR is an .xml + .bin pair)")
        check_regular_file(weights, "OpenVINO weights")
    if p.stat().st_size == 0:
        raise ExportError(f"{p}: empty file, not a model")
    try:
        return core.read_model(str(p))
    except RuntimeError as e:
        detail = str(e).strip().splitlines()[0][:300] if str(e).strip() else type(e).__name__
        raise ExportError(f"{p}: not a model OpenVINO can read: {detail}") from None


def _check_inputs(model: Any, where: str) -> int | None:
    """The fixed square input size of ``model`` (``None``: dynamic); anything but one NCHW input is refused."""
    inputs = model.inputs
    if len(inputs) != 1:
        raise ExportError(f"{where}: the model has {len(inputs)} inputs; rexnet runs one image input")
    shape = inputs[0].get_partial_shape()
    if shape.rank.is_dynamic or shape.rank.get_length() != 4:
        raise ExportError(f"{where}: input shape {shape} is not 4-D NCHW [batch, 3, height, width]")
    h, w = shape[2], shape[3]
    if h.is_static and w.is_static:
        if h.get_length() != w.get_length():
            raise ExportError(f"{where}: input has a fixed {h}x{w} size; rexnet feeds square images")
        return int(h.get_length())
    return None


class OpenVinoModel:
    """A callable running an OpenVINO model on the CPU: ``torch.Tensor`` (NCHW float32) in, logits out.

    One compiled model per input shape (the IR is reshaped to it: static shapes run faster than
    OpenVINO's dynamic-shape path), up to ``max_shapes``; further shapes use the dynamic model.

    Args:
        model: An ``.xml`` file or an ``openvino.Model``.
        precision_hint: ``f32`` or ``bf16``; default: the IR's ``runtime_options`` (else
            OpenVINO's own default, bf16 on CPUs that have it).
        threads: Inference threads (default: torch's thread count).
        max_shapes: Input shapes compiled statically.
    """

    def __init__(
        self, model: Any, precision_hint: str | None = None, threads: int | None = None, max_shapes: int = 4
    ) -> None:
        _require()
        import openvino as ov

        self.core = ov.Core()
        self.path = str(model) if isinstance(model, (str, os.PathLike)) else None
        self.model = _read_model(self.core, self.path) if self.path is not None else model
        self.fixed_size = _check_inputs(self.model, self.path or "OpenVINO model")
        if precision_hint is None and self.model.has_rt_info(["runtime_options", "INFERENCE_PRECISION_HINT"]):
            precision_hint = self.model.get_rt_info(["runtime_options", "INFERENCE_PRECISION_HINT"]).astype(str)
        self.config: dict[str, Any] = {
            "PERFORMANCE_HINT": "LATENCY",  # one stream on all threads: what a synchronous caller needs
            "INFERENCE_NUM_THREADS": int(threads or torch.get_num_threads()),
            "ENABLE_CPU_PINNING": False,  # a shared machine: let the OS schedule
        }
        if precision_hint is not None:
            self.config["INFERENCE_PRECISION_HINT"] = precision_hint
        self.precision_hint = precision_hint
        self.max_shapes = max_shapes
        self._compiled: dict[tuple[int, ...], Any] = {}

    def _get(self, shape: tuple[int, ...]) -> Any:
        if shape in self._compiled:
            return self._compiled[shape]
        key: tuple[int, ...] = shape if len(self._compiled) < self.max_shapes else ()
        if key not in self._compiled:
            m = self.model.clone()
            if key:
                m.reshape({m.inputs[0]: list(key)})
            self._compiled[key] = self.core.compile_model(m, "CPU", self.config).create_infer_request()
        return self._compiled[key]

    def close(self) -> None:
        """Free the compiled models; undo a dangling alternate signal stack that OpenVINO can leave
        behind (:func:`rexnet._signals.repair_altstack`), so a later Ctrl-C does not segfault."""
        self._compiled.clear()
        self.core = None  # the plugin puts its previous stack back when the core goes, so repair after that
        repair_altstack()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # interpreter shutdown: nothing left to protect
            pass

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        arr = np.ascontiguousarray(x.detach().float().numpy())
        try:
            req = self._get(tuple(arr.shape))
            req.infer({0: arr}, share_inputs=True)
        except RuntimeError as e:  # the file's graph refuses this input (channels, a fixed size)
            detail = str(e).strip().splitlines()[0][:300] if str(e).strip() else type(e).__name__
            raise ExportError(
                f"{self.path or 'OpenVINO model'}: OpenVINO failed on input {list(arr.shape)}: {detail}"
            ) from None
        return torch.from_numpy(req.get_output_tensor(0).data.copy())
