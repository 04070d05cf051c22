"""``build_datasets``: from a ``--data`` string to train/val datasets with the recipe's transforms."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import Dataset, Subset

from ..errors import RexnetError
from .cifar import is_cifar_folder, load_cifar
from .embedded import SHAPE_CLASSES, TensorImageDataset, load_digits_split, make_shapes_split
from .folder import SafeImageFolder, find_class_folders
from .transforms import AugmentConfig, build_eval_transform, build_train_transform, model_norm

__all__ = ["DatasetBundle", "build_datasets", "EMBEDDED_DATASETS"]

EMBEDDED_DATASETS = ("digits", "shapes")


@dataclass
class DatasetBundle:
    """Train and validation datasets plus what a model needs to know about them.

    Attributes:
        train: Training split with augmentation (``None`` when built with ``train=False``).
        val: Held-out split with the evaluation transform.
        num_classes: Number of classes.
        class_names: Name of each class index.
        name: What was loaded (``digits``, ``imagefolder:/path``, ...).
    """

    train: Dataset | None
    val: Dataset
    num_classes: int
    class_names: list[str]
    name: str
    info: dict[str, Any] = field(default_factory=dict)


def _limit(ds: Dataset, n: int | None) -> Dataset:
    if n is None or n >= len(ds):  # type: ignore[arg-type]
        return ds
    idx = list(range(len(ds)))  # type: ignore[arg-type]
    random.Random(0).shuffle(idx)
    sub = Subset(ds, sorted(idx[:n]))
    return sub


def build_datasets(
    data: str = "digits",
    image_size: int = 32,
    train: bool = True,
    *,
    model: str | None = "rexnet_100",
    augment: AugmentConfig | None = None,
    val_fraction: float = 0.2,
    strict: bool = False,
    train_limit: int | None = None,
    val_limit: int | None = None,
) -> DatasetBundle:
    """Build the train/val datasets named by ``data``.

    Args:
        data: ``digits`` (default, embedded: scikit-learn's handwritten digits upscaled),
            ``shapes`` (embedded, procedural), a CIFAR-10/100 python folder (``cifar10:DIR`` /
            ``cifar100:DIR`` or just ``DIR``), or an image folder: ``DIR/train`` + ``DIR/val``
            (ImageNet layout), or ``DIR/<class>/...`` split ``val_fraction`` per class (fixed seed).
        image_size: Crop size fed to the model.
        train: Also build the training split (``False`` for evaluation only).
        model: Registered name whose mean/std/crop_pct/interpolation the transforms use.
        augment: Training augmentation; default the paper's (:class:`AugmentConfig`).
        val_fraction: Held-out share for folders without a ``val`` split.
        strict: Fail on the first unreadable image instead of skipping and reporting it.
        train_limit / val_limit: Keep only this many samples (a fixed random subset), for quick runs.

    Returns:
        A :class:`DatasetBundle`. Datasets yield ``(float CHW tensor, int label)``; an image
        folder yields a :class:`~rexnet.data.folder.SkippedImage` for an unreadable file.

    Raises:
        RexnetError: Unknown name, missing folder, or a folder with no images.

    Example:
        >>> b = build_datasets("digits", 32)
        >>> len(b.train), len(b.val), b.num_classes
        (1437, 360, 10)
    """
    norm = model_norm(model)
    interp = norm["interpolation"]
    eval_tf = build_eval_transform(image_size, crop_pct=norm["crop_pct"], mean=norm["mean"], std=norm["std"],
                                   interpolation=interp)
    train_tf = build_train_transform(image_size, augment, mean=norm["mean"], std=norm["std"], interpolation=interp)
    kind, _, path = data.partition(":") if data.startswith(("cifar10:", "cifar100:", "folder:")) else ("", "", data)

    if data in EMBEDDED_DATASETS:
        if data == "digits":
            images, labels, tr, va = load_digits_split(32)
            classes = [str(i) for i in range(10)]
        else:
            images, labels, tr, va = make_shapes_split(32)
            classes = list(SHAPE_CLASSES)
        train_ds = TensorImageDataset(images[tr], labels[tr], classes, train_tf) if train else None
        val_ds = TensorImageDataset(images[va], labels[va], classes, eval_tf)
    elif kind.startswith("cifar") or (not kind and is_cifar_folder(path)):
        x_tr, y_tr, x_te, y_te, classes = load_cifar(path)
        train_ds = TensorImageDataset(x_tr, y_tr, classes, train_tf) if train else None
        val_ds = TensorImageDataset(x_te, y_te, classes, eval_tf)
    else:
        root = Path(path)
        if not root.exists():
            raise RexnetError(
                f"unknown dataset {data!r}: not a folder; expected one of: {', '.join(EMBEDDED_DATASETS)}, "
                "cifar10:DIR, cifar100:DIR, or an image folder DIR"
            )
        val_dir = next((root / n for n in ("val", "validation") if (root / n).is_dir()), None)
        if (root / "train").is_dir() and val_dir is not None:
            classes = find_class_folders(root / "train")
            train_ds = SafeImageFolder(root / "train", train_tf, classes, strict) if train else None
            val_ds = SafeImageFolder(val_dir, eval_tf, classes, strict)
        else:
            classes = find_class_folders(root)
            full_val = SafeImageFolder(root, eval_tf, classes, strict)
            targets = torch.tensor(full_val.targets)
            from .embedded import _stratified_split

            tr, va = _stratified_split(targets, val_fraction)
            if not va:
                raise RexnetError(f"{root}: too few images for a {val_fraction:.0%} validation split")
            val_ds = Subset(full_val, va)
            train_ds = Subset(SafeImageFolder(root, train_tf, classes, strict), tr) if train else None
        data = f"folder:{root}"
    train_ds = _limit(train_ds, train_limit) if train_ds is not None else None
    val_ds = _limit(val_ds, val_limit)
    info = dict(train_size=len(train_ds) if train_ds is not None else 0, val_size=len(val_ds))
    return DatasetBundle(train_ds, val_ds, len(classes), list(classes), data, info)
