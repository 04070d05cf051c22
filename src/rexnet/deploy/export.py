"""The export format registry: :data:`EXPORT_FORMATS` and :func:`export_model`, which every format goes through.

A format is one :class:`ExportFormat` entry: its writer, its runner (to check the written file
against eager PyTorch), its precisions and whether a ``.json`` sidecar
(:mod:`rexnet.deploy.sidecar`) goes next to it. The writers live in their own modules
(``onnx_core``, ``quant``, ``openvino_ir``, ``torchscript``); this module imports them lazily and
none of them imports it. Every file is written atomically and nothing that exists is replaced
unless asked (``overwrite`` / ``--overwrite``, see :mod:`rexnet._files`); all targets are checked
before any work starts.
"""

from __future__ import annotations

import errno
import functools
import logging
import os
import sys
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch
from torch import nn

from .._files import check_output, nearest_folder
from .._memory import check_model_inference
from ..errors import ExportError, InputError
from .export_check import check_inputs, verify_export
from .onnx_core import MAX_OPSET, MIN_OPSET, ONNX_OPSET
from .sidecar import sidecar_path, write_sidecar

__all__ = [
    "ONNX_OPSET",
    "EXPORT_FORMATS",
    "EXPORT_PRECISIONS",
    "ExportError",
    "ExportFormat",
    "ExportJob",
    "ExportResult",
    "export_model",
]

_log = logging.getLogger(__name__)


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


@dataclass(frozen=True)
class ExportJob:
    """What a format's writer gets: the eval-mode model and the request.

    Attributes:
        out: The ``--out`` path: a file, or for a folder format the folder.
        overwrite: Replace existing files this run did not write (``--overwrite``).
    """

    model: nn.Module
    out: Path
    name: str
    image_size: int
    opset: int = ONNX_OPSET
    precision: str = "f32"
    calib: list[torch.Tensor] = field(default_factory=list)
    overwrite: bool = False
    #: What the file carries in itself (:func:`rexnet.deploy.facts.to_props`): ONNX ``metadata_props``,
    #: OpenVINO ``rt_info``.
    props: dict[str, str] = field(default_factory=dict)


def _write_onnx(job: ExportJob) -> Path:
    if job.precision == "int8":
        from .quant import quantize_int8

        progress = sys.stderr.isatty()  # the bias correction takes ~45 s at 224 px
        q = quantize_int8(
            job.model,
            job.calib,
            job.out,
            image_size=job.image_size,
            progress=progress,
            overwrite=job.overwrite,
            metadata=job.props,
        )
        return Path(q.path)
    from .onnx_core import export_onnx

    return export_onnx(
        job.model, job.out, image_size=job.image_size, opset=job.opset, overwrite=job.overwrite, metadata=job.props
    )


def _run_onnx(path: Path) -> Callable[[torch.Tensor], torch.Tensor]:
    from .onnx_core import OnnxModel

    return OnnxModel(path)


def _write_openvino(job: ExportJob) -> Path:
    from .facts import set_openvino_props
    from .openvino_ir import save_openvino, to_openvino

    ov_model = to_openvino(job.model, job.precision, calibration=job.calib, image_size=job.image_size)
    set_openvino_props(ov_model, job.props)
    return save_openvino(ov_model, job.out, job.name, overwrite=job.overwrite)


def _run_openvino(path: Path) -> Callable[[torch.Tensor], torch.Tensor]:
    from .openvino_ir import OpenVinoModel

    return OpenVinoModel(path)


def _write_torchscript(job: ExportJob, method: Literal["script", "trace"]) -> Path:
    from .torchscript import export_torchscript

    return export_torchscript(job.model, job.out, method=method, image_size=job.image_size, overwrite=job.overwrite)


def _run_torchscript(path: Path) -> Callable[[torch.Tensor], torch.Tensor]:
    from .torchscript import load_torchscript

    return load_torchscript(path)


@dataclass(frozen=True)
class ExportFormat:
    """One export format of :data:`EXPORT_FORMATS`.

    Attributes:
        description: One line for ``rexnet export --help``.
        suffix: What ``out`` names: a file suffix, or ``/`` for a folder.
        write: Writes an :class:`ExportJob` (atomically, honouring ``job.overwrite``) and returns the
            written file.
        run: Loads the written file as a callable (NCHW float32 in, logits out) for the check.
        precisions: ``--precision`` choices (the first is the default).
        sidecar: Write the ``.json`` metadata :mod:`rexnet.deploy.runtime` reads.
        uses_opset: Whether ``opset`` applies.
        files: For a folder format, the suffixes of the files it writes into the folder as
            ``NAME<suffix>``, the main file (the one :attr:`write` returns) last.
    """

    description: str
    suffix: str
    write: Callable[[ExportJob], Path]
    run: Callable[[Path], Callable[[torch.Tensor], torch.Tensor]]
    precisions: tuple[str, ...] = ("f32",)
    sidecar: bool = False
    uses_opset: bool = False
    files: tuple[str, ...] = ()

    def targets(self, out: Path, name: str) -> list[Path]:
        """Every file an export to ``out`` writes, the main file last, the sidecar after it."""
        paths = [out / f"{name}{s}" for s in self.files] if self.suffix == "/" else [out]
        return paths + ([sidecar_path(paths[-1])] if self.sidecar else [])


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
        files=(".bin", ".xml"),
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


def _check_request(format: str, opset: int, image_size: int | None, precision: str | None) -> tuple[ExportFormat, str]:
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
    return fmt, precision


def _folder_and_stem(fmt: ExportFormat, out: Path) -> tuple[Path, str | None]:
    """A folder format's ``--out`` as (folder, file stem): ``DIR/model.xml`` names its main file, ``DIR`` takes
    the model's name (``None``); a single-file format's ``out`` unchanged."""
    if fmt.suffix == "/" and out.suffix.lower() == fmt.files[-1] and not out.is_dir():
        return out.parent, out.stem
    return out, None


def _check_out(fmt: ExportFormat, format: str, out: Path) -> None:
    """Refuse an ``--out`` of the wrong kind before anything is loaded: a folder where a file goes, a file
    where a folder goes, or a file suffix the format does not write (its sidecar could land on it)."""
    if fmt.suffix == "/":
        if out.exists() and not out.is_dir():
            raise InputError(f"--out {out} is a file; the {format} format writes into a folder")
        return
    if out.is_dir():
        raise InputError(f"--out {out} is a folder; the {format} format writes a *{fmt.suffix} file")
    if out.suffix.lower() != fmt.suffix:
        raise ExportError(
            f"--out {out}: the {format} format writes a *{fmt.suffix} file, not {out.suffix or 'no suffix'}"
        )


#: OS errors that mean "this place cannot take the file" (full, read-only, no permission), not a bug.
_USER_OS_ERRORS = {errno.ENOSPC, errno.EDQUOT, errno.EACCES, errno.EPERM, errno.EROFS}


def _check_targets(targets: list[Path], overwrite: bool) -> None:
    """Every file an export writes, checked before any work: the output policy, and a folder that takes files."""
    for target in targets:
        check_output(target, overwrite=overwrite, what="export output")
    for folder, target in {nearest_folder(t): t for t in reversed(targets)}.items():  # the first of each folder
        try:
            with tempfile.TemporaryFile(dir=folder):
                pass
        except OSError as e:
            raise InputError(f"cannot write {target}: {folder} does not take files ({e.strerror})") from None


def _load_finite(name: str, checkpoint: str | os.PathLike | None) -> tuple[nn.Module, Any]:
    """:func:`rexnet.zoo.load_model`'s ``(model, meta)``; weights with NaN or inf are refused."""
    from ..zoo import load_model

    model, meta = load_model(name) if checkpoint is None else load_model(name, checkpoint=checkpoint)
    bad = [k for k, v in model.state_dict().items() if v.is_floating_point() and not torch.isfinite(v).all()]
    if bad:
        raise InputError(f"{checkpoint or name} holds non-finite weights (NaN or inf in {', '.join(bad[:3])}); "
                         "its run diverged: export an earlier checkpoint")  # fmt: skip
    return model, meta


def _run_calib_data(facts: dict[str, Any], source: Any) -> str:
    """int8 calibration data when none is given: the data the run was trained on."""
    if not facts["data"]:
        raise ExportError(
            f"int8 export needs calibration images and {source} records no training data: "
            "pass --calib-data (a dataset name or folder)"
        )
    _log.info("calibrating int8 on %s, the data %s was trained on (--calib-data overrides)", facts["data"], source)
    return str(facts["data"])


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
    overwrite: bool = False,
) -> ExportResult:
    """Load a model (:func:`rexnet.zoo.load_model`), export it and check the file against eager PyTorch.

    Every file it writes (the model, OpenVINO's ``.bin``, the ``.json`` sidecar) is checked against
    the output policy before any work and written atomically. The sidecar and the file itself
    (ONNX ``metadata_props``, OpenVINO ``rt_info``) record what the model was trained on: model
    name, data, classes, input size and preprocessing (:mod:`rexnet.deploy.facts`).

    Args:
        name: Registered model name, or a training run folder / checkpoint / weights file.
        out: Output file; for ``openvino`` an output folder (``NAME.xml`` + ``.bin`` + ``.json``), or the
            ``.xml`` file itself (``DIR/model.xml``: ``.bin`` and ``.json`` beside it).
        format: A name of :data:`EXPORT_FORMATS`: ``onnx``, ``openvino``, ``torchscript`` (scripted)
            or ``torchscript-trace``.
        checkpoint: With a model name: training run, checkpoint or weights file; random weights when ``None``.
        image_size: Check/trace input size (default: the checkpoint's training size, else the model's).
        opset: ONNX opset.
        verify: Re-load the file and compare with the eval-mode model on two input shapes (and,
            for int8, on calibration images only).
        precision: ``f32`` (default); ``int8`` for ONNX (onnxruntime static QDQ) and OpenVINO
            (NNCF); ``bf16`` for OpenVINO (runtime hint).
        calib_data: Dataset name or folder with the int8 calibration images (training split);
            default for int8: the data the run was trained on, when ``name``/``checkpoint`` is a run
            that records it.
        calib_images: How many calibration images.
        overwrite: Replace existing files this run did not write (a checkpoint, a foreign sidecar).

    Returns:
        An :class:`ExportResult` with the max absolute difference (and cosine/top-1 agreement).

    Raises:
        OutputExistsError: A target file exists and ``overwrite`` is false.
        InputError: Unknown model, format or precision, unreadable checkpoint, an ``out`` of the
            wrong kind, int8 without ``calib_data``, or a file that does not reproduce PyTorch: f32
            outputs more than 1e-3 apart, bf16/int8 logits with a mean cosine similarity under 0.98
            (int8: checked on calibration images, whose distribution its scales fit).

    Example:
        >>> r = export_model("rexnet_100", "/tmp/rexnet_100.onnx")  # doctest: +SKIP
        >>> r.max_abs_diff < 1e-4  # doctest: +SKIP
        True
    """
    from .facts import to_props, trained_facts

    fmt, precision = _check_request(format, opset, image_size, precision)
    if isinstance(calib_images, bool) or not isinstance(calib_images, int) or calib_images < 1:
        raise InputError(f"--calib-images must be an int >= 1, got {calib_images!r}")
    out, stem = _folder_and_stem(fmt, Path(out))
    _check_out(fmt, format, out)
    model, meta = _load_finite(name, checkpoint)
    size = image_size or meta.image_size
    facts = trained_facts(meta, size)
    if meta.num_classes == 1000:
        facts["class_names"] = None  # torchvision's ImageNet names are looked up again at load time
    if precision == "int8" and not calib_data:
        calib_data = _run_calib_data(facts, checkpoint or name)
    _check_targets(fmt.targets(out, stem := stem or meta.name), overwrite)
    check_model_inference(model, size, 16, what=meta.name)  # tracing and the verification batches
    calib: list[torch.Tensor] = []
    if calib_data:
        from .calib import calibration_batches

        calib = calibration_batches(calib_data, size, meta.name, calib_images)
    try:
        props = to_props({**facts, "precision": precision})
        path = fmt.write(ExportJob(model, out, stem, size, opset, precision, calib, overwrite, props))
    except OSError as e:  # a full disk mid-write: name the target, not the library's temp file
        if e.errno not in _USER_OS_ERRORS:
            raise
        raise ExportError(f"cannot write {out}: {e.strerror}; nothing was written there") from None
    if fmt.sidecar:
        side = dict(meta.to_dict(), **facts, format=format, precision=precision, calib_data=calib_data)
        side["plan"] = meta.plan.to_dict()
        write_sidecar(path, side, overwrite=overwrite)
    inputs = check_inputs(getattr(model, "in_chans", 3), size, calib, precision)
    diff, cos, agree = verify_export(path, fmt.run(path), model, inputs, precision) if verify else (0.0, None, None)
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
