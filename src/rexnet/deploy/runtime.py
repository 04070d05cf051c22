"""The runtime registry :data:`RUNTIMES`, and running an exported model on a dataset or on image files.

``rexnet eval`` / ``predict`` (``--runtime`` choices, the suffixes that mean "an exported model"),
:func:`evaluate_exported`, :func:`predict_exported` and the benchmark all read :data:`RUNTIMES`:
adding a runtime is one module with a runner factory plus one entry here.

What the model was trained on (model name, data, input size, normalisation, class names) comes
from the ``.json`` sidecar (:mod:`rexnet.deploy.sidecar`) next to the file, else from the file
itself: an ONNX file's ``metadata_props``, an OpenVINO IR's ``rt_info`` (:mod:`rexnet.deploy.facts`;
the sidecar wins where both have a field). A file with neither runs at its own fixed input size if
it has one, else at 224 px with ImageNet normalisation, with a warning that names what it assumed.

Example:
    >>> sorted(RUNTIMES), runtime_for("m.xml")[0]
    (['onnxruntime', 'openvino'], 'openvino')
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from .._files import check_regular_file
from ..errors import ExportError, InputError
from .sidecar import read_sidecar, sidecar_path

__all__ = [
    "RUNTIMES",
    "Runtime",
    "evaluate_exported",
    "exported_suffixes",
    "is_exported_model",
    "load_exported",
    "predict_exported",
    "runtime_for",
    "runtime_help",
    "split_of",
]

_log = logging.getLogger(__name__)

#: The size a model without a sidecar or a fixed input size runs at (with a warning).
DEFAULT_SIZE = 224

Runner = Callable[[torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class Runtime:
    """One runtime of :data:`RUNTIMES`.

    Attributes:
        description: One line for ``--help``.
        suffixes: File suffixes it runs; a file's default runtime is the first entry listing its suffix.
        load: The runner factory: ``load(path, threads)`` returns a callable (NCHW float32 tensor in,
            logits out). It validates the file (raising an ``InputError`` subclass naming it); a
            runner may expose ``fixed_size`` (the one input size the file accepts, else ``None``).
        precisions: The precisions (a sidecar's ``precision``) it runs.
        sidecar: Whether its files carry a ``.json`` sidecar (:mod:`rexnet.deploy.sidecar`).
        export_format: The :data:`~rexnet.deploy.export.EXPORT_FORMATS` entry that writes its files
            (the benchmark exports through it; ``None``: not benchmarked).
        requires: The Python module it needs (``None``: nothing beyond rexnet's own).
    """

    description: str
    suffixes: tuple[str, ...]
    load: Callable[[Path, int | None], Runner]
    precisions: tuple[str, ...] = ("f32",)
    sidecar: bool = True
    export_format: str | None = None
    requires: str | None = None

    def available(self) -> bool:
        """Whether its Python module can be imported."""
        import importlib.util

        return self.requires is None or importlib.util.find_spec(self.requires) is not None


def _load_onnxruntime(path: Path, threads: int | None) -> Runner:
    from .onnx_core import OnnxModel

    return OnnxModel(path, threads)


def _load_openvino(path: Path, threads: int | None) -> Runner:
    from .openvino_ir import OpenVinoModel

    return OpenVinoModel(path, threads=threads)


#: Runtimes by name. ``rexnet eval/predict --runtime`` offers these; their suffixes make ``-c FILE``
#: an exported model; the benchmark times each through its ``export_format``.
RUNTIMES: dict[str, Runtime] = {
    "onnxruntime": Runtime(
        "onnxruntime on the CPU (.onnx)", (".onnx",), _load_onnxruntime, ("f32", "int8"), True, "onnx", "onnxruntime"
    ),
    "openvino": Runtime(
        "OpenVINO on the CPU (.xml IR; also reads .onnx)",
        (".xml", ".onnx"),
        _load_openvino,
        ("f32", "bf16", "int8"),
        True,
        "openvino",
        "openvino",
    ),
}


def exported_suffixes() -> list[str]:
    """Every suffix some runtime runs, in registry order."""
    return list(dict.fromkeys(s for rt in RUNTIMES.values() for s in rt.suffixes))


def runtime_help() -> str:
    """One ``--runtime`` help text generated from :data:`RUNTIMES`."""
    return (
        "run an exported model (-c FILE with suffix "
        + "/".join(exported_suffixes())
        + ") in this runtime (default: by suffix): "
        + "; ".join(f"{n}: {rt.description}" for n, rt in RUNTIMES.items())
    )


def is_exported_model(path: str | os.PathLike) -> bool:
    """Whether ``path`` names a file some runtime of :data:`RUNTIMES` runs (by its suffix)."""
    return Path(path).suffix.lower() in exported_suffixes()


def runtime_for(path: str | os.PathLike, runtime: str | None = None) -> tuple[str, Runtime]:
    """``(name, Runtime)`` that runs ``path``: ``runtime`` if given (checked), else the default for its suffix.

    Raises:
        InputError: An unknown runtime, a suffix no runtime runs, or one the named runtime does not.
    """
    suffix = Path(path).suffix.lower()
    if runtime is not None:
        rt = RUNTIMES.get(runtime)
        if rt is None:
            raise InputError(f"unknown runtime {runtime!r}; expected one of: {', '.join(RUNTIMES)}")
        if suffix not in rt.suffixes:
            others = [n for n, r in RUNTIMES.items() if suffix in r.suffixes]
            hint = f"; use --runtime {others[0]}" if others else ""
            raise InputError(
                f"{path}: runtime {runtime!r} cannot run {suffix or 'suffix-less'} files "
                f"(it runs {', '.join(rt.suffixes)}){hint}"
            )
        return runtime, rt
    for name, rt in RUNTIMES.items():
        if suffix in rt.suffixes:
            return name, rt
    raise InputError(f"{path}: not an exported model; expected a file ending in {', '.join(exported_suffixes())}")


def load_exported(
    path: str | os.PathLike, runtime: str | None = None, threads: int | None = None, image_size: int | None = None
) -> tuple[Runner, dict[str, Any]]:
    """A callable (NCHW float32 tensor in, logits out) for an exported model, and its metadata.

    Args:
        path: A file some runtime of :data:`RUNTIMES` runs (``.onnx``, OpenVINO ``.xml``, ...).
        runtime: A name of :data:`RUNTIMES` (default: by suffix).
        threads: Inference threads (default: torch's).
        image_size: The input size to run at (default: the sidecar's, else the file's fixed size,
            else 224 px with a warning).

    Returns:
        ``(fn, meta)``; ``meta`` has ``model``, ``data`` (the training data, ``None`` when not
        recorded), ``num_classes``, ``class_names``, ``image_size``, ``mean``/``std``/``crop_pct``/
        ``interpolation``, ``precision``, ``runtime`` and ``recorded_in`` (``sidecar``,
        ``metadata_props``, ``rt_info``, or ``None`` when the file records nothing).

    Raises:
        InputError: Missing file, unknown runtime or suffix, the runtime not installed.
        ExportError: A broken file or sidecar, a precision the runtime does not run, or a fixed input
            size that differs from the size asked for or recorded.
    """
    name, rt = runtime_for(path, runtime)
    p = check_regular_file(path, "exported model")
    if not rt.available():
        raise InputError(f"the {name} runtime needs the {rt.requires} package: pip install {rt.requires}")
    side = read_sidecar(p) if rt.sidecar else {}
    _check_precision(side.get("precision"), name, rt, sidecar_path(p))  # before loading the file
    fn = rt.load(p, threads)
    from .facts import read_embedded

    embedded, where = read_embedded(p, fn)
    recorded = {**embedded, **{k: v for k, v in side.items() if v is not None}}
    source = "sidecar" if side else where
    precision = recorded.get("precision") or "f32"
    _check_precision(precision, name, rt, _where(p, source))
    meta = {**_default_meta(), **recorded, "runtime": name, "precision": precision, "recorded_in": source}
    meta["class_names"] = recorded.get("class_names")
    meta["data"] = recorded.get("data")
    meta["image_size"] = _input_size(p, fn, recorded, image_size, _where(p, source))
    meta["num_classes"] = _num_outputs(p, fn, meta["image_size"], meta.get("num_classes"), _where(p, source))
    if meta["class_names"] is None and meta["num_classes"] == 1000:
        from ..zoo import imagenet_class_names

        meta["class_names"] = imagenet_class_names()
    if source is None and rt.sidecar and not image_size:
        _warn_assumed(p, meta)
    return fn, meta


def _check_precision(precision: str | None, name: str, rt: Runtime, where: Any) -> None:
    if precision is not None and precision not in rt.precisions:
        raise ExportError(f"{where}: precision {precision!r} is not one {name} runs ({', '.join(rt.precisions)})")


def _where(path: Path, source: str | None) -> str:
    """How messages name where a fact was read."""
    return f"its sidecar {sidecar_path(path)}" if source == "sidecar" else f"{path} ({source})"


def _warn_assumed(path: Path, meta: dict[str, Any]) -> None:
    """One warning for a file that records nothing: what it is run with, and how to say otherwise."""
    size = f"at {meta['image_size']} px "
    norm = f"mean {tuple(meta['mean'])}, std {tuple(meta['std'])}, crop {meta['crop_pct']}, {meta['interpolation']}"
    _log.warning(
        "%s has no sidecar %s and no rexnet metadata in the file: running it %swith ImageNet normalisation (%s), "
        "which may not be how it was trained; pass --image-size (and --data to evaluate), or export it with "
        "'rexnet export' to record both",
        path,
        sidecar_path(path).name,
        size,
        norm,
    )


def _num_outputs(path: Path, fn: Runner, size: int, recorded: int | None, where: str) -> int:
    """The model's class count, from one call on a blank image; it must equal what the file records."""
    out = fn(torch.zeros(1, 3, size, size))
    if out.ndim != 2:
        raise ExportError(f"{path}: output shape {list(out.shape)}; expected [batch, classes] logits")
    if recorded is not None and recorded != out.shape[1]:
        raise ExportError(f"{where}: num_classes {recorded}, but the model has {out.shape[1]} outputs")
    return int(out.shape[1])


def _input_size(path: Path, fn: Runner, recorded: dict[str, Any], asked: int | None, where: str) -> int:
    """The size to run at; a fixed input size must agree with what was asked for or recorded."""
    fixed = getattr(fn, "fixed_size", None)
    size, source = (asked, "--image-size") if asked else (recorded.get("image_size"), where)
    if size is not None:
        if fixed is not None and fixed != size:
            raise ExportError(
                f"{path}: the model's input is fixed at {fixed}x{fixed} px but {source} asks for {size} px; "
                f"run it at {fixed} px or re-export it with dynamic height and width"
            )
        return int(size)
    if fixed is not None:
        _log.info("%s: no input size recorded; running at its fixed input size, %d px", path, fixed)
        return int(fixed)
    return DEFAULT_SIZE


def _default_meta() -> dict[str, Any]:
    from ..data.transforms import model_norm

    return dict(
        model=None, num_classes=None, class_names=None, image_size=DEFAULT_SIZE, precision="f32", **model_norm(None)
    )


def split_of(bundle: Any, split: str) -> Any:
    """The ``val``, ``test`` or ``all`` dataset of a :func:`rexnet.data.build_datasets` bundle.

    Raises:
        InputError: An unknown split, or one the data does not have.
    """
    return bundle.split(split)


def evaluate_exported(
    path: str | os.PathLike,
    data: str | None = None,
    *,
    runtime: str | None = None,
    image_size: int | None = None,
    batch_size: int = 128,
    split: str | None = None,
    strict: bool = False,
    threads: int | None = None,
) -> dict[str, Any]:
    """Top-1/top-5, loss, per-class accuracy and confusion matrix of an exported model on ``data``.

    Args:
        path: A file some runtime of :data:`RUNTIMES` runs.
        data: A :func:`rexnet.data.build_datasets` name or folder (default: the data the file
            records it was trained on; ``digits``, with a warning, when it records none).
        runtime: A name of :data:`RUNTIMES` (default: by suffix).
        image_size: Crop size (default: the exported model's).
        batch_size: Images per call.
        split: ``val``, ``test`` (data with a test split) or ``all`` (default: ``val`` of the data the file
            records; on other data, ``all`` for a folder of class folders with no split, else ``val``).

    Returns:
        :func:`rexnet.data.evaluation.evaluate`'s dict plus ``model``, ``checkpoint`` (the file), ``runtime``,
        ``precision``, ``data``, ``split`` and ``image_size``.
    """
    from ..data import build_datasets
    from ..data.evaluation import evaluate

    _check_sizes(image_size, batch_size=batch_size)
    fn, meta = load_exported(path, runtime, threads, image_size)
    size = meta["image_size"]
    from .facts import eval_data

    data, recorded = eval_data(path, data, meta)
    try:
        prep = {k: meta.get(k) for k in ("mean", "std", "crop_pct", "interpolation")}  # as the file records
        bundle = build_datasets(
            data, size, train=False, model=_registered(meta["model"]), strict=strict, preprocessing=prep
        )
    except InputError as e:
        if not recorded:
            raise
        raise type(e)(f"{e} (the training data {path} records; pass --data to evaluate on other data)") from None
    split = split or ("val" if recorded else bundle.default_eval_split)  # never score the images it trained on
    ds = split_of(bundle, split)
    if bundle.num_classes != meta["num_classes"]:
        raise InputError(
            f"{bundle.name} has {bundle.num_classes} classes but the model has {meta['num_classes']}; "
            "pass --data with the data it was trained on"
        )
    res = evaluate(
        lambda x: fn(x.float().contiguous()),
        ds,
        batch_size=batch_size,
        num_classes=bundle.num_classes,
        class_names=bundle.class_names,
        device="cpu",
    )
    return dict(
        model=meta["model"],
        checkpoint=str(path),
        runtime=meta["runtime"],
        precision=meta["precision"],
        data=bundle.name,
        split=split,
        image_size=size,
        **res,
    )


def _registered(name: str | None) -> str | None:
    """``name`` if the zoo knows it (its preprocessing is then the dataset's); ``None`` (ImageNet's) otherwise."""
    from ..zoo import list_models

    return name if name in list_models() else None


def _check_sizes(image_size: int | None, **positive: int) -> None:
    from .sidecar import MAX_SIZE, MIN_SIZE

    if image_size is not None and not MIN_SIZE <= image_size <= MAX_SIZE:
        raise InputError(f"--image-size must be in [{MIN_SIZE}, {MAX_SIZE}], got {image_size}")
    for name, v in positive.items():
        if v < 1:
            raise InputError(f"--{name.replace('_', '-')} must be >= 1, got {v}")


def predict_exported(
    path: str | os.PathLike,
    images: Sequence[str | os.PathLike],
    *,
    runtime: str | None = None,
    top_k: int = 5,
    image_size: int | None = None,
) -> list[dict[str, Any]]:
    """Top-k ``(class, probability)`` for each image file, like :func:`rexnet.train.predict_files`.

    Returns:
        One ``{"image": path, "top": [{"class": name, "prob": p}, ...]}`` per file; an unreadable
        file gets ``{"image": path, "error": reason}``.
    """
    from ..data import build_eval_transform
    from ..data.evaluation import predict_images

    _check_sizes(image_size, top_k=top_k)
    fn, meta = load_exported(path, runtime, image_size=image_size)
    tf = build_eval_transform(
        meta["image_size"],
        crop_pct=meta["crop_pct"],
        mean=meta["mean"],
        std=meta["std"],
        interpolation=meta["interpolation"],
    )
    with torch.inference_mode():
        return predict_images(fn, images, tf, top_k=top_k, class_names=meta["class_names"])
