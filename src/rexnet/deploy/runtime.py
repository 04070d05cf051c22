"""Running an exported model (ONNX or OpenVINO IR) on a dataset or on image files, without PyTorch weights.

The ``.json`` sidecar that :func:`~rexnet.deploy.export_model` writes next to the file gives the
model name (hence the normalisation), input size and class names; a file without one is taken
to be an ImageNet classifier at 224 px with ImageNet normalisation.

Example:
    >>> res = evaluate_exported("out/rexnet_100.xml", "fashion-mnist", split="test")  # doctest: +SKIP
    >>> res["top1"]  # doctest: +SKIP
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from ..errors import InputError
from .export import read_sidecar

__all__ = ["RUNTIMES", "load_exported", "evaluate_exported", "predict_exported", "is_exported_model"]

RUNTIMES = ("onnxruntime", "openvino")
_SUFFIXES = {".onnx": "onnxruntime", ".xml": "openvino"}


def is_exported_model(path: str | os.PathLike) -> bool:
    """Whether ``path`` names an ONNX file or an OpenVINO IR (by its suffix)."""
    return Path(path).suffix.lower() in _SUFFIXES


def load_exported(
    path: str | os.PathLike, runtime: str | None = None, threads: int | None = None
) -> tuple[Callable[[torch.Tensor], torch.Tensor], dict[str, Any]]:
    """A callable (NCHW float32 tensor in, logits out) for an exported model, and its metadata.

    Args:
        path: An ``.onnx`` file or an OpenVINO ``.xml``.
        runtime: ``onnxruntime`` or ``openvino`` (default: by suffix). OpenVINO also reads ``.onnx``.
        threads: Inference threads (default: torch's).

    Returns:
        ``(fn, meta)``; ``meta`` has ``model``, ``num_classes``, ``class_names``, ``image_size``,
        ``mean``/``std``/``crop_pct``/``interpolation``, ``precision`` and ``runtime``.

    Raises:
        InputError: Missing file, unknown runtime or suffix, onnxruntime asked to run an IR, or
            the runtime not installed.
    """
    p = Path(path)
    if not p.is_file():
        raise InputError(f"exported model not found: {p}")
    suffix = p.suffix.lower()
    if suffix not in _SUFFIXES:
        raise InputError(f"{p}: not an exported model; expected an .onnx file or an OpenVINO .xml")
    runtime = runtime or _SUFFIXES[suffix]
    if runtime not in RUNTIMES:
        raise InputError(f"unknown runtime {runtime!r}; expected one of: {', '.join(RUNTIMES)}")
    if runtime == "onnxruntime" and suffix == ".xml":
        raise InputError(f"{p}: onnxruntime cannot run an OpenVINO IR; use --runtime openvino")
    if runtime == "onnxruntime":
        try:
            from .quant import OnnxModel

            fn: Callable[[torch.Tensor], torch.Tensor] = OnnxModel(p, threads)
        except ImportError as e:
            raise InputError("onnxruntime is not installed: pip install onnxruntime") from e
    else:
        from .openvino_ir import OpenVinoModel

        fn = OpenVinoModel(p, threads=threads)
    meta = {**_default_meta(), **read_sidecar(p), "runtime": runtime}
    if not meta.get("num_classes"):
        size = int(meta["image_size"])
        meta["num_classes"] = int(fn(torch.zeros(1, 3, size, size)).shape[1])
    if meta.get("class_names") is None and meta["num_classes"] == 1000:
        from ..zoo import imagenet_class_names

        meta["class_names"] = imagenet_class_names()
    return fn, meta


def _default_meta() -> dict[str, Any]:
    from ..data.transforms import model_norm

    return dict(model=None, num_classes=None, class_names=None, image_size=224, precision="f32", **model_norm(None))


def evaluate_exported(
    path: str | os.PathLike,
    data: str = "digits",
    *,
    runtime: str | None = None,
    image_size: int | None = None,
    batch_size: int = 128,
    split: str = "val",
    strict: bool = False,
    threads: int | None = None,
) -> dict[str, Any]:
    """Top-1/top-5, loss, per-class accuracy and confusion matrix of an exported model on ``data``.

    Args:
        path: ``.onnx`` or OpenVINO ``.xml``.
        data: A :func:`rexnet.data.build_datasets` name or folder.
        runtime: ``onnxruntime`` or ``openvino`` (default: by suffix).
        image_size: Crop size (default: the exported model's).
        batch_size: Images per call.
        split: ``val`` or ``test`` (datasets with an official test split, e.g. Fashion-MNIST).

    Returns:
        :func:`rexnet.data.evaluation.evaluate`'s dict plus ``model``, ``checkpoint`` (the file), ``runtime``,
        ``precision``, ``data``, ``split`` and ``image_size``.
    """
    from ..data import build_datasets
    from ..data.evaluation import evaluate

    fn, meta = load_exported(path, runtime, threads)
    size = image_size or int(meta["image_size"])
    bundle = build_datasets(data, size, train=False, model=meta["model"], strict=strict)
    ds = _split(bundle, split)
    if bundle.num_classes != meta["num_classes"]:
        raise InputError(f"{bundle.name} has {bundle.num_classes} classes but the model has {meta['num_classes']}")
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


def _split(bundle: Any, split: str) -> Any:
    if split == "val":
        return bundle.val
    if split == "test":
        test = getattr(bundle, "test", None)
        if test is None:
            raise InputError(f"{bundle.name} has no test split; use split 'val'")
        return test
    raise InputError(f"unknown split {split!r}; expected one of: val, test")


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

    fn, meta = load_exported(path, runtime)
    tf = build_eval_transform(
        image_size or int(meta["image_size"]),
        crop_pct=meta["crop_pct"],
        mean=meta["mean"],
        std=meta["std"],
        interpolation=meta["interpolation"],
    )
    with torch.inference_mode():
        return predict_images(fn, images, tf, top_k=top_k, class_names=meta["class_names"])
