"""Loading a trained model back, evaluating it on a dataset, and predicting image files."""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from typing import Any

from torch import nn

from .._device import resolve_device
from .._files import check_output
from .._memory import check_model_inference
from ..data import EVAL_SPLITS, build_datasets, build_eval_transform, data_help, list_image_files
from ..data.evaluation import evaluate, predict_images
from ..data.provenance import PREPROCESSING_KEYS, preprocessing_for, same_data, training_data_spec, warn_assumed
from ..errors import CheckpointError, InputError
from ..run import nonfinite_tensors
from ..zoo import load_model
from .outputs import eval_output_paths, write_eval_outputs, write_predictions

__all__ = ["load_trained_model", "evaluate_checkpoint", "predict_files"]

log = logging.getLogger(__name__)


def load_trained_model(
    checkpoint: str | os.PathLike,
    model: str | None = None,
    *,
    num_classes: int | None = None,
    ema: bool = False,
) -> tuple[nn.Module, dict[str, Any]]:
    """``rexnet.zoo.load_model`` with its metadata as a dict (kept for ``rexnet.train``'s public API).

    Args:
        checkpoint: A run folder, its ``checkpoints/last.pt``/``best.pt``, or a weights file.
        model: Registered name (default: the one the checkpoint records or fits).
        num_classes: Classifier size (default: from the checkpoint).
        ema: Load the EMA weights of a training checkpoint.

    Returns:
        ``(model in eval mode, meta)``; ``meta`` is :meth:`rexnet.zoo.ModelMeta.to_dict`: ``model``,
        ``num_classes``, ``class_names``, ``image_size``, the preprocessing and ``checkpoint``.
    """
    net, meta = _load(checkpoint, model, num_classes=num_classes, ema=ema)
    return net, meta.to_dict()


def _load(checkpoint: str | os.PathLike, model: str | None, **kwargs: Any) -> tuple[nn.Module, Any]:
    """The model and its metadata; a checkpoint with NaN/inf weights is refused (it would print ``nan%``)."""
    if model is None:
        net, meta = load_model(checkpoint, **kwargs)
    else:
        net, meta = load_model(model, checkpoint=checkpoint, **kwargs)
    bad = nonfinite_tensors(net)
    if bad:
        more = f" and {len(bad) - 3} more" if len(bad) > 3 else ""
        raise CheckpointError(
            f"{checkpoint} holds non-finite weights (NaN or inf in {', '.join(bad[:3])}{more}): the run that "
            "wrote it diverged; use an earlier checkpoint"
        )
    return net, meta


def evaluate_checkpoint(
    checkpoint: str | os.PathLike,
    model: str | None = None,
    data: str | None = None,
    *,
    image_size: int | None = None,
    batch_size: int = 128,
    workers: int = 0,
    device: str = "auto",
    amp: str = "none",
    ema: bool = False,
    out: str | os.PathLike | None = None,
    confusion_png: str | os.PathLike | None = None,
    predictions: str | os.PathLike | None = None,
    top_k: int = 5,
    strict: bool = False,
    split: str | None = None,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Evaluate a checkpoint on the data it was trained on, or on ``data`` (see :func:`rexnet.data.build_datasets`).

    Args:
        data: A dataset name or folder; default: the run's own data, with the image size, preprocessing
            (:func:`rexnet.data.training_data_spec`) and class names it was trained with. A weights file
            records no data: pass it.
        split: ``val`` (the held-out split), ``test`` (Fashion-MNIST / MNIST's official test split, a
            folder's ``test/``) or ``all`` (every image). Default: ``val`` on the run's own data (the
            images it did not train on), ``all`` for a folder of class folders with no split, else ``val``.
        out: Also write the result as JSON here (and the confusion matrix next to it as ``.png``).
        confusion_png: Write the confusion-matrix image here.
        predictions: Write each image's path, label, prediction and top-k here (``.csv``, ``.jsonl`` or
            JSON, by suffix); the returned dict then holds them as ``predictions``.
        top_k: Classes per image in ``predictions`` (capped at the class count).
        overwrite: Replace output files this run did not write (all paths are checked before
            any work; see :mod:`rexnet._files`).

    Returns:
        :func:`~rexnet.train.evaluate`'s dict (top-1, top-5 = top-``min(5, K)`` with ``top5_k``,
        per-class ``precision``/``recall``, confusion matrix) plus ``model``, ``checkpoint``, ``data``,
        ``split``, ``image_size`` and ``preprocessing``.

    Raises:
        OutputExistsError: An output file exists, this run did not write it, and ``overwrite`` is false.
        InputError: No ``data`` for a model that records none, an output path that is a folder or lies
            under a file, or a bad argument.
    """
    _check_positive(batch_size=batch_size, top_k=top_k)
    if workers < 0:
        raise InputError(f"workers must be >= 0, got {workers}")
    _check_image_size(image_size)
    dev = resolve_device(device)
    if split is not None and split not in EVAL_SPLITS:
        raise InputError(f"unknown split {split!r}; expected one of: {', '.join(EVAL_SPLITS)}")
    # a path in the way fails now, not after the work
    eval_output_paths(out, confusion_png, overwrite=overwrite, predictions=predictions)
    net, meta = _load(checkpoint, model, ema=ema)
    spec = training_data_spec(meta)
    given = data is not None
    data, own = _eval_data(data, spec, checkpoint)
    warn_assumed(spec, str(checkpoint), image_size)
    size = image_size or spec["image_size"]
    check_model_inference(net, size, batch_size, what=meta.name)
    prep = preprocessing_for(meta, data)
    try:
        bundle = build_datasets(
            data, size, train=False, model=_registered(meta.name), strict=strict, preprocessing=prep
        )
    except InputError as e:
        if given:
            raise
        raise InputError(
            f"{checkpoint} was trained on {data!r}, which cannot be loaded here ({e}); pass --data"
        ) from None
    split = split or ("val" if own else bundle.default_eval_split)
    dataset = bundle.split(split)
    log.info("evaluating %s on %s, split %s (%d images, %d px)", meta.name, bundle.name, split, len(dataset), size)
    _check_classes(bundle, meta)
    res = evaluate(
        net,
        dataset,
        batch_size=batch_size,
        num_classes=bundle.num_classes,
        class_names=bundle.class_names,
        device=dev,
        workers=workers,
        amp=amp,
        keep_top=top_k if predictions is not None else 0,
    )
    res = dict(
        model=meta.name,
        checkpoint=str(checkpoint),
        data=bundle.name,
        split=split,
        image_size=size,
        preprocessing=prep,
        **res,
    )
    write_eval_outputs(res, out, confusion_png, overwrite=overwrite, predictions=predictions)
    return res


def _eval_data(data: str | None, spec: dict[str, Any], checkpoint: str | os.PathLike) -> tuple[str, bool]:
    """``(data to evaluate on, whether it is what the model was trained on)``."""
    if data is not None:
        return data, same_data(data, spec["data"])
    if spec["data"] is None:
        raise InputError(
            f"{checkpoint} records no training data ({_ORIGINS.get(spec['origin'], spec['origin'])}, not a run); "
            f"pass --data: {data_help()}"
        )
    return spec["data"], True


#: How an error names what a model came from (:func:`rexnet.data.training_data_spec`'s ``origin``).
_ORIGINS = {"folder": "a model folder", "weights": "a weights file", "name": "a model name"}


def _check_classes(bundle: Any, meta: Any) -> None:
    if bundle.num_classes != meta.num_classes:
        raise InputError(
            f"{bundle.name} has {bundle.num_classes} classes but the model has {meta.num_classes}; "
            "pass the --data it was trained on"
        )
    trained = meta.class_names if meta.source == "training" else None
    if trained and list(trained) != list(bundle.class_names):
        log.warning(
            "the checkpoint's classes (%s) differ from %s's (%s): per-class results use the data's names",
            ", ".join(map(str, trained[:5])),
            bundle.name,
            ", ".join(bundle.class_names[:5]),
        )


def predict_files(
    checkpoint: str | os.PathLike,
    images: Sequence[str | os.PathLike],
    model: str | None = None,
    *,
    top_k: int = 5,
    image_size: int | None = None,
    ema: bool = False,
    out: str | os.PathLike | None = None,
    overwrite: bool = False,
) -> list[dict[str, Any]]:
    """Top-k ``(class, probability)`` for each image file, preprocessed as the model was trained.

    Args:
        images: Files, folders (walked recursively, image suffixes only) and globs
            (:func:`rexnet.data.list_image_files`).
        top_k: Classes per image (capped at the class count).
        image_size: Crop size (default: the one the run trained at, else the model's).
        out: Also write the results here, atomically (checked before any work): ``.csv`` (one row per
            image), ``.jsonl`` (one JSON object per line) or anything else as one JSON list.
        overwrite: Replace ``out`` if this run did not write it.

    Returns:
        One ``{"image": path, "top": [{"class": name, "prob": p}, ...]}`` per file; an unreadable
        file gets ``{"image": path, "error": reason}``.

    Raises:
        OutputExistsError: ``out`` exists, this run did not write it, and ``overwrite`` is false.
        InputError: A glob that matches nothing, or no image at all.
    """
    _check_positive(top_k=top_k)
    _check_image_size(image_size)
    if out is not None:
        check_output(out, overwrite=overwrite, what="predictions file (-o)")
    files = list_image_files(images)
    net, meta = _load(checkpoint, model, ema=ema)
    spec = training_data_spec(meta)
    warn_assumed(spec, str(checkpoint), image_size)
    size = image_size or spec["image_size"]
    check_model_inference(net, size, 1, what=meta.name)
    tf = build_eval_transform(size, **{k: spec[k] for k in PREPROCESSING_KEYS})
    res = predict_images(net, files, tf, top_k=top_k, class_names=spec["class_names"])
    if out is not None:
        write_predictions(res, out, overwrite=overwrite)
    return res


def _registered(name: str) -> str | None:
    """``name`` when the zoo knows it (its preprocessing then applies), else ``None`` (ImageNet defaults)."""
    from ..zoo import list_models

    return name if name.split(".")[0] in list_models() else None


def _check_positive(**values: int) -> None:
    for name, v in values.items():
        if v < 1:
            raise InputError(f"{name} must be >= 1, got {v}")


def _check_image_size(size: int | None) -> None:
    from .config import MIN_IMAGE_SIZE

    if size is not None and size < MIN_IMAGE_SIZE:
        raise InputError(f"image_size must be >= {MIN_IMAGE_SIZE}, got {size}")
