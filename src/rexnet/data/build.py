"""``build_datasets``: from a ``--data`` string to train/val datasets with the recipe's transforms."""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import Dataset, Subset

from ..errors import InputError
from .batched import BatchAugment
from .cifar import is_cifar_folder, load_cifar
from .embedded import SHAPE_CLASSES, TensorImageDataset, load_digits_split, make_shapes_split, stratified_split
from .folder import folder_splits
from .idx import load_idx_dataset
from .transforms import AugmentConfig, build_eval_transform, build_train_transform, model_norm

__all__ = [
    "DatasetBundle",
    "DatasetSource",
    "EVAL_SPLITS",
    "build_datasets",
    "data_preprocessing",
    "data_help",
    "resolve_data",
    "DATASETS",
    "EMBEDDED_DATASETS",
]


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
        test: The official test split where the data has one (Fashion-MNIST, MNIST, an image folder's
            ``DIR/test``); report it, never choose anything with it.
        layout: ``memory`` (a dataset held in memory), ``split`` (an image folder with ``train`` and
            ``val``/``test`` sub-folders) or ``classes`` (an image folder of class folders, no split).
        preprocessing: The evaluation transform's ``mean``, ``std``, ``crop_pct`` and ``interpolation``.
        every: Builds the ``all`` split on demand (see :meth:`split`).
    """

    train: Dataset | None
    val: Dataset
    num_classes: int
    class_names: list[str]
    name: str
    info: dict[str, Any] = field(default_factory=dict)
    test: Dataset | None = None
    layout: str = "memory"
    preprocessing: dict[str, Any] = field(default_factory=dict)
    every: Callable[[], Dataset] | None = field(default=None, repr=False)

    @property
    def default_eval_split(self) -> str:
        """``all`` for a folder of class folders (it has no held-out split of its own), else ``val``."""
        return "all" if self.layout == "classes" else "val"

    def split(self, name: str) -> Dataset:
        """The ``val``, ``test`` or ``all`` dataset (evaluation transform).

        ``all`` is every image the data holds: a class-per-folder folder whole, or the ``train``,
        ``val`` and ``test`` splits together.

        Raises:
            InputError: An unknown split, or a ``test`` split the data does not have.
        """
        if name == "val":
            if not len(self.val):  # type: ignore[arg-type]
                raise InputError(f"{self.name}: too few images for a held-out validation split; use split 'all'")
            return self.val
        if name == "test":
            if self.test is None:
                raise InputError(
                    f"{self.name} has no test split (fashion-mnist, mnist and image folders with a test/ "
                    "sub-folder have one); use split 'val' or 'all'"
                )
            return self.test
        if name == "all":
            if self.every is None:
                raise InputError(f"{self.name}: split 'all' is not available here")
            return self.every()
        raise InputError(f"unknown split {name!r}; expected one of: {', '.join(EVAL_SPLITS)}")


#: The splits :meth:`DatasetBundle.split` (and ``rexnet eval --split``) know.
EVAL_SPLITS = ("val", "test", "all")


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
    preprocessing: Mapping[str, Any] | None = None,
) -> DatasetBundle:
    """Build the train/val datasets named by ``data``.

    Args:
        data: A name of :data:`DATASETS` (``digits``, the default, is embedded), ``NAME:DIR`` for one
            found in a folder, or a bare folder (CIFAR python folder or image folder). Fashion-MNIST and
            MNIST are grayscale, replicated to 3 channels, with the official test split in ``bundle.test``;
            an image folder is ``DIR/train`` + ``DIR/val`` (ImageNet layout; ``DIR/test`` is the test
            split; with ``train`` and ``test`` only, val is carved from train) or ``DIR/<class>/...``
            split ``val_fraction`` per class (fixed seed).
        image_size: Crop size fed to the model.
        train: Also build the training split (``False`` for evaluation only).
        model: Registered name whose mean/std/crop_pct/interpolation the transforms use.
        augment: Training augmentation; default the paper's (:class:`AugmentConfig`).
        val_fraction: Held-out share for folders without a ``val`` split.
        strict: Fail on the first unreadable image instead of skipping and reporting it.
        train_limit / val_limit: Keep only this many samples (a fixed random subset), for quick runs.
        preprocessing: ``mean``/``std``/``crop_pct``/``interpolation`` to use instead of ``model``'s
            (see :func:`data_preprocessing`), e.g. what a run was trained with.

    Returns:
        A :class:`DatasetBundle`. Datasets yield ``(float CHW tensor, int label)``; an image
        folder yields a :class:`~rexnet.data.folder.SkippedImage` for an unreadable file.

    Raises:
        InputError: Unknown name, missing folder, or a folder with no images.

    Example:
        >>> b = build_datasets("digits", 32)
        >>> len(b.train), len(b.val), b.num_classes
        (1438, 359, 10)
    """
    norm = data_preprocessing(data, model, preprocessing)
    interp = norm["interpolation"]
    aug = augment or AugmentConfig()
    source, path = resolve_data(data)
    memory = DATASETS[source].load(path) if DATASETS[source].load is not None else None
    eval_tf = build_eval_transform(image_size, **norm)
    train_tf = build_train_transform(image_size, aug, mean=norm["mean"], std=norm["std"], interpolation=interp)
    test_ds: Dataset | None = None
    if memory is not None:
        batch_tf = (
            BatchAugment(image_size, aug, norm["mean"], norm["std"], interp) if BatchAugment.supports(aug) else None
        )
        classes = memory.classes
        x, y = memory.images, memory.labels
        tr, va = memory.train_index, memory.val_index
        train_ds = TensorImageDataset(x[tr], y[tr], classes, train_tf, batch_tf) if train else None
        val_ds = TensorImageDataset(x[va], y[va], classes, eval_tf)
        if memory.test is not None:
            test_ds = TensorImageDataset(*memory.test, classes, eval_tf)
        parts = [(x, y)] + ([memory.test] if memory.test is not None else [])
        every = _concat_memory(parts, classes, eval_tf)
        data, layout = memory.name, "memory"
    else:
        root = Path(path or "")
        classes, train_ds, val_ds, test_ds, every, layout = folder_splits(
            root, train_tf, eval_tf, train=train, strict=strict, val_fraction=val_fraction
        )
        data = f"folder:{root}"
    train_ds = _limit(train_ds, train_limit) if train_ds is not None else None
    val_ds = _limit(val_ds, val_limit)
    info = dict(
        train_size=len(train_ds) if train_ds is not None else 0,
        val_size=len(val_ds),
        test_size=len(test_ds) if test_ds is not None else 0,
    )
    return DatasetBundle(train_ds, val_ds, len(classes), list(classes), data, info, test_ds, layout, norm, every)


def data_preprocessing(
    data: str, model: str | None = "rexnet_100", overrides: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """The evaluation preprocessing :func:`build_datasets` uses for ``data``: ``mean``, ``std``, ``crop_pct``,
    ``interpolation`` (the keywords of :func:`~rexnet.data.build_eval_transform`), without loading the data.

    ``model``'s registry entry gives the values (ImageNet's for ``None``), ``overrides`` (e.g. what a run
    recorded; ``None`` values ignored) win over them, and a dataset whose objects fill the frame
    (Fashion-MNIST, MNIST) is always shown whole (``crop_pct`` 1.0).

    Example:
        >>> data_preprocessing("fashion-mnist", "rexnet_100")["crop_pct"]
        1.0
    """
    norm = model_norm(model)
    extra = {k: v for k, v in (overrides or {}).items() if v is not None}
    unknown = set(extra) - set(norm)
    if unknown:
        raise InputError(f"unknown preprocessing key(s) {', '.join(sorted(unknown))}; expected: {', '.join(norm)}")
    norm.update(extra)
    src = DATASETS.get(data.partition(":")[0])
    if src is not None and src.full_frame:  # their objects fill the frame: never centre-cropped
        norm["crop_pct"] = 1.0
    return {k: (tuple(v) if isinstance(v, (list, tuple)) else v) for k, v in norm.items()}


def _concat_memory(
    parts: list[tuple[torch.Tensor, torch.Tensor]], classes: list[str], tf: Callable[[Any], Any]
) -> Callable[[], Dataset]:
    """Every image of an in-memory dataset (train, val and test) with the evaluation transform, built on demand."""

    def every() -> Dataset:
        if len(parts) == 1:
            return TensorImageDataset(*parts[0], classes, tf)
        return TensorImageDataset(torch.cat([x for x, _ in parts]), torch.cat([y for _, y in parts]), classes, tf)

    return every


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


@dataclass(frozen=True)
class DatasetSource:
    """One kind of ``--data``: how it loads and whether it takes a folder.

    Attributes:
        description: One line for ``--help`` and the docs.
        load: ``folder or None -> in-memory dataset``; ``None`` for an image folder, read from disk per image.
        folder: ``"none"`` (embedded), ``"optional"`` (``NAME`` finds it, ``NAME:DIR`` points at it) or
            ``"required"`` (only ``NAME:DIR``).
        full_frame: Its objects fill the frame: evaluated whole, without a centre crop.
    """

    description: str
    load: Callable[[str | None], _InMemory] | None
    folder: str = "none"
    full_frame: bool = False


def _digits(_: str | None) -> _InMemory:
    images, labels, tr, va = load_digits_split(32)
    return _InMemory("digits", images, labels, tr, va, [str(i) for i in range(10)])


def _shapes(_: str | None) -> _InMemory:
    images, labels, tr, va = make_shapes_split(32)
    return _InMemory("shapes", images, labels, tr, va, list(SHAPE_CLASSES))


def _idx(name: str) -> Callable[[str | None], _InMemory]:
    def load(folder: str | None) -> _InMemory:
        d = load_idx_dataset(name, folder)
        tr, va = stratified_split(d.train_labels, IDX_VAL_FRACTION)
        return _InMemory(
            f"{name}:{d.folder}",
            d.train_images[:, None],
            d.train_labels,
            tr,
            va,
            d.classes,
            (d.test_images[:, None], d.test_labels),
        )

    return load


def _cifar(folder: str | None) -> _InMemory:
    x_tr, y_tr, x_te, y_te, classes = load_cifar(folder or "")
    # the official test split is the held-out split here (as CIFAR results are usually reported)
    n = len(y_tr)
    return _InMemory(
        f"cifar:{folder}",
        torch.cat([x_tr, x_te]),
        torch.cat([y_tr, y_te]),
        list(range(n)),
        list(range(n, n + len(y_te))),
        classes,
    )


#: Every kind of ``--data``, in help order; adding a dataset is one entry here.
DATASETS: dict[str, DatasetSource] = {
    "digits": DatasetSource(
        "embedded: scikit-learn's 8x8 handwritten digits upscaled to 32 px (1,438 train / 359 val)", _digits
    ),
    "shapes": DatasetSource("embedded: procedural coloured shapes, 10 classes (2,000 train / 500 val)", _shapes),
    "fashion-mnist": DatasetSource(
        "Fashion-MNIST from the Debian package dataset-fashion-mnist (55,000 train / "
        "5,000 val / 10,000 test), or fashion-mnist:DIR",
        _idx("fashion-mnist"),
        "optional",
        full_frame=True,
    ),
    "mnist": DatasetSource(
        "MNIST: mnist:DIR, a folder of the four IDX files (without DIR: /usr/share/datasets/mnist)",
        _idx("mnist"),
        "optional",
        full_frame=True,
    ),
    "cifar10": DatasetSource(
        "cifar10:DIR, the CIFAR-10 python folder (test split = held-out split)", _cifar, "required"
    ),
    "cifar100": DatasetSource(
        "cifar100:DIR, the CIFAR-100 python folder (test split = held-out split)", _cifar, "required"
    ),
    "folder": DatasetSource(
        "folder:DIR or just DIR: an image folder, DIR/train + DIR/val (ImageNet layout) or "
        "DIR/<class>/... split per class",
        None,
        "required",
    ),
}
#: The embedded sets: no download, no folder.
EMBEDDED_DATASETS = tuple(name for name, src in DATASETS.items() if src.folder == "none")
#: Validation share carved from the official IDX training split: 500 images per class.
IDX_VAL_FRACTION = 1 / 12


def data_help() -> str:
    """The ``--data`` choices in one line, for CLI help."""
    forms = {"none": "{}", "optional": "{0} | {0}:DIR", "required": "{}:DIR"}
    return " | ".join(forms[src.folder].format(name) for name, src in DATASETS.items()) + " | DIR"


def resolve_data(data: str) -> tuple[str, str | None]:
    """``--data`` as ``(name in DATASETS, folder or None)``: ``NAME``, ``NAME:DIR`` or a bare folder.

    Raises:
        InputError: An unknown name, a missing folder, or a folder given to an embedded set.
    """
    name, sep, path = data.partition(":")
    if sep and name in DATASETS:
        if DATASETS[name].folder == "none":
            raise InputError(f"dataset {name!r} is embedded and takes no folder; got {data!r}")
        return name, path
    if data in DATASETS:
        if DATASETS[data].folder == "required":
            raise InputError(f"dataset {data!r} needs a folder: {data}:DIR")
        return data, None
    if not Path(data).exists():
        raise InputError(f"unknown dataset {data!r}: not a folder; expected one of: {data_help()}")
    return ("cifar10" if is_cifar_folder(data) else "folder"), data
