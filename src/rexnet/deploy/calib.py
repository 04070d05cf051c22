"""Calibration images for int8 post-training quantization, from a ``--data`` name or folder."""

from __future__ import annotations

import copy
import logging

import torch
from torch.utils.data import Dataset, Subset

from ..errors import InputError

__all__ = ["calibration_batches"]

_log = logging.getLogger(__name__)


def _base(ds: Dataset) -> Dataset:
    while isinstance(ds, Subset):
        ds = ds.dataset
    return ds


def _with_transform(ds: Dataset, transform: object) -> Dataset:
    """``ds`` (possibly a Subset chain) with its underlying dataset's transform replaced."""
    if isinstance(ds, Subset):
        return Subset(_with_transform(ds.dataset, transform), ds.indices)
    ds = copy.copy(ds)
    ds.transform = transform  # type: ignore[attr-defined]
    return ds


def calibration_batches(
    data: str, image_size: int, model: str | None = None, images: int = 256, batch_size: int = 32
) -> list[torch.Tensor]:
    """``images`` training images of ``data`` (fixed random subset) under the *evaluation* transform.

    Calibration sees what inference sees (centre crop, no augmentation) and never the validation
    split that accuracy is measured on.

    Args:
        data: A :func:`rexnet.data.build_datasets` name (``digits``, ``fashion-mnist``, ...) or folder.
        image_size: Crop size of the model input.
        model: Registered model whose normalisation to use.
        images: How many images.
        batch_size: Rows per returned batch.

    Raises:
        InputError: Unknown dataset, or one without a training split.
    """
    from ..data import build_datasets

    bundle = build_datasets(data, image_size, train=True, model=model, train_limit=images)
    if bundle.train is None or len(bundle.train) == 0:  # type: ignore[arg-type]
        raise InputError(f"{data}: no training images to calibrate on")
    eval_tf = getattr(_base(bundle.val), "transform", None)
    train = bundle.train
    if eval_tf is not None and hasattr(_base(train), "transform"):
        train = _with_transform(train, eval_tf)
    else:  # pragma: no cover - datasets without a transform attribute
        _log.warning("%s: calibrating on augmented training images", data)
    xs = [train[i][0] for i in range(len(train))]  # type: ignore[arg-type]
    xs = [x for x in xs if isinstance(x, torch.Tensor)]  # drop unreadable images (SkippedImage)
    if not xs:
        raise InputError(f"{data}: no readable training images to calibrate on")
    return list(torch.stack(xs).split(batch_size))
