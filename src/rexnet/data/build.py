"""``build_datasets``: from a ``--data`` string to train/val datasets with the recipe's transforms."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import Dataset, Subset

from ..errors import RexnetError
from .batched import BatchAugment
from .cifar import is_cifar_folder, load_cifar
from .embedded import SHAPE_CLASSES, TensorImageDataset, _stratified_split, load_digits_split, make_shapes_split
from .folder import SafeImageFolder, find_class_folders
from .idx import IDX_DATASETS, load_idx_dataset
from .transforms import AugmentConfig, build_eval_transform, build_train_transform, model_norm

__all__ = ["DatasetBundle", "build_datasets", "DATASETS", "EMBEDDED_DATASETS"]

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
        info: Split sizes.
        test: The official test split where the data has one (Fashion-MNIST, MNIST); report it,
            never choose anything with it.
    """

    train: Dataset | None
    val: Dataset
    num_classes: int
    class_names: list[str]
    name: str
    info: dict[str, Any] = field(default_factory=dict)
    test: Dataset | None = None


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
            ``shapes`` (embedded, procedural), ``fashion-mnist`` (Debian package, or
            ``fashion-mnist:DIR`` / ``mnist:DIR`` for a folder of the four IDX files; grayscale,
            replicated to 3 channels; official test split in ``bundle.test``), a CIFAR-10/100 python
            folder (``cifar10:DIR`` / ``cifar100:DIR`` or just ``DIR``), or an image folder: ``DIR/train`` + ``DIR/val``
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
    aug = augment or AugmentConfig()
    kind, _, path = data.partition(":") if ":" in data and data.split(":", 1)[0] in _PREFIXES else ("", "", data)
    memory = _load_in_memory(data, kind, path)
    # in-memory sets are shown whole at evaluation (no centre crop): their objects fill the frame
    crop_pct = 1.0 if memory is not None and memory.full_frame else norm["crop_pct"]
    eval_tf = build_eval_transform(image_size, crop_pct=crop_pct, mean=norm["mean"], std=norm["std"],
                                   interpolation=interp)
    train_tf = build_train_transform(image_size, aug, mean=norm["mean"], std=norm["std"], interpolation=interp)
    test_ds: Dataset | None = None
    if memory is not None:
        batch_tf = (BatchAugment(image_size, aug, norm["mean"], norm["std"], interp)
                    if BatchAugment.supports(aug) else None)
        classes = memory.classes
        x, y = memory.images, memory.labels
        tr, va = memory.train_index, memory.val_index
        train_ds = TensorImageDataset(x[tr], y[tr], classes, train_tf, batch_tf) if train else None
        val_ds = TensorImageDataset(x[va], y[va], classes, eval_tf)
        if memory.test is not None:
            test_ds = TensorImageDataset(*memory.test, classes, eval_tf)
        data = memory.name
    else:
        root = Path(path)
        if not root.exists():
            raise RexnetError(
                f"unknown dataset {data!r}: not a folder; expected one of: {', '.join(sorted(DATASETS))}, "
                "fashion-mnist:DIR, mnist:DIR, cifar10:DIR, cifar100:DIR, or an image folder DIR"
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
            tr, va = _stratified_split(targets, val_fraction)
            if not va:
                raise RexnetError(f"{root}: too few images for a {val_fraction:.0%} validation split")
            val_ds = Subset(full_val, va)
            train_ds = Subset(SafeImageFolder(root, train_tf, classes, strict), tr) if train else None
        data = f"folder:{root}"
    train_ds = _limit(train_ds, train_limit) if train_ds is not None else None
    val_ds = _limit(val_ds, val_limit)
    info = dict(train_size=len(train_ds) if train_ds is not None else 0, val_size=len(val_ds),
                test_size=len(test_ds) if test_ds is not None else 0)
    return DatasetBundle(train_ds, val_ds, len(classes), list(classes), data, info, test_ds)


@dataclass
class _InMemory:
    """A dataset loaded as uint8 tensors: all images, the train/val split, and an optional test split."""

    name: str
    images: torch.Tensor
    labels: torch.Tensor
    train_index: list[int]
    val_index: list[int]
    classes: list[str]
    test: tuple[torch.Tensor, torch.Tensor] | None = None
    full_frame: bool = False


#: Named datasets that need no folder argument, with a one-line description (CLI help).
DATASETS: dict[str, str] = {
    "digits": "embedded: scikit-learn's 8x8 handwritten digits upscaled to 32 px (1,438 train / 359 val)",
    "shapes": "embedded: procedural coloured shapes, 10 classes (2,000 train / 500 val)",
    "fashion-mnist": "Fashion-MNIST from the Debian package dataset-fashion-mnist (55,000 train / 5,000 val / "
                     "10,000 test); fashion-mnist:DIR for another folder",
}
_PREFIXES = ("cifar10", "cifar100", "folder", "fashion-mnist", "mnist")
#: Validation share carved from the official IDX training split: 500 images per class.
IDX_VAL_FRACTION = 1 / 12


def _load_in_memory(data: str, kind: str, path: str) -> _InMemory | None:
    if data == "digits":
        images, labels, tr, va = load_digits_split(32)
        return _InMemory("digits", images, labels, tr, va, [str(i) for i in range(10)])
    if data == "shapes":
        images, labels, tr, va = make_shapes_split(32)
        return _InMemory("shapes", images, labels, tr, va, list(SHAPE_CLASSES))
    if data in IDX_DATASETS or kind in IDX_DATASETS:
        name = kind or data
        d = load_idx_dataset(name, path if kind else None)
        tr, va = _stratified_split(d.train_labels, IDX_VAL_FRACTION)
        return _InMemory(f"{name}:{d.folder}", d.train_images[:, None], d.train_labels, tr, va, d.classes,
                         (d.test_images[:, None], d.test_labels), full_frame=True)
    if kind.startswith("cifar") or (not kind and is_cifar_folder(path)):
        x_tr, y_tr, x_te, y_te, classes = load_cifar(path)
        # the official test split is the held-out split here (as CIFAR results are usually reported)
        n = len(y_tr)
        return _InMemory(f"cifar:{path}", torch.cat([x_tr, x_te]), torch.cat([y_tr, y_te]), list(range(n)),
                         list(range(n, n + len(y_te))), classes)
    return None
