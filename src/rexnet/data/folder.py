"""Image folders (ImageNet layout) that skip corrupt files, and the collate that reports them.

Folders are walked following symlinks, but each real directory at most once (a symlink loop
cannot hang the walk or repeat images) and each real file at most once (no image lands in both
train and val through a link). Empty class folders are not classes; a one-class folder and
classes present only in the validation split are reported.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import torch
from PIL import Image
from torch.utils.data import ConcatDataset, Dataset, Subset, default_collate
from torchvision.datasets import DatasetFolder
from torchvision.datasets.folder import IMG_EXTENSIONS, has_file_allowed_extension

from .._images import read_image
from ..errors import CorruptImageError, InputError, ResourceError
from .embedded import stratified_split

log = logging.getLogger(__name__)

__all__ = [
    "CorruptImageError",
    "SkippedImage",
    "SafeImageFolder",
    "collate_skipping",
    "find_class_folders",
    "folder_splits",
    "held_out_split",
    "list_image_files",
    "sample_paths",
]


class SkippedImage(NamedTuple):
    """What a dataset returns in place of an unreadable image; the collate drops and reports it."""

    path: str
    reason: str


def _subfolders(root: Path) -> list[str]:
    return sorted(e.name for e in os.scandir(root) if e.is_dir() and not e.name.startswith("."))


def _walk_images(top: str, seen_dirs: set[str], first_only: bool = False) -> list[str]:
    """Image files under ``top`` (sorted as torchvision's ``make_dataset``), entering each real directory once.

    ``seen_dirs`` holds real paths already walked (shared across classes); ``top`` itself is walked
    even if listed there. With ``first_only`` the walk stops at the first image.
    """
    dirs, files, stack = [], [], [top]
    while stack:
        d = stack.pop()
        try:
            entries = sorted(os.scandir(d), key=lambda e: e.name)
        except OSError as e:
            log.warning("cannot list %s: %s", d, e)
            continue
        names = []
        for e in entries:
            try:
                if e.is_dir():  # follows symlinks
                    real = os.path.realpath(e.path)
                    if real not in seen_dirs:
                        seen_dirs.add(real)
                        stack.append(e.path)
                elif has_file_allowed_extension(e.name, IMG_EXTENSIONS) and e.is_file():
                    names.append(e.path)
                    if first_only:
                        return names
            except OSError:  # a dangling link or a vanished entry
                continue
        dirs.append((d, names))
    for _, names in sorted(dirs):
        files += names
    return files


def find_class_folders(root: str | os.PathLike) -> list[str]:
    """Sorted names of the class sub-folders of ``root`` that hold at least one image.

    Empty class folders are left out (with a warning): they would count as classes nothing can
    predict, and make top-k scores look better. A single class is allowed, with a warning.

    Raises:
        InputError: ``root`` is missing or has no class sub-folder with images.
    """
    root = Path(root)
    if not root.is_dir():
        raise InputError(f"dataset folder not found: {root}")
    names = _subfolders(root)
    if not names:
        raise InputError(f"{root} has no class sub-folders (expected ROOT/<class>/<image>)")
    reals = {os.path.realpath(root / n) for n in names}
    classes = [n for n in names if _walk_images(str(root / n), set(reals), first_only=True)]
    empty = [n for n in names if n not in classes]
    if not classes:
        raise InputError(
            f"{root}: no images ({', '.join(IMG_EXTENSIONS[:4])}, ...) in any class sub-folder "
            f"({', '.join(names[:5])}{', ...' if len(names) > 5 else ''})"
        )
    if empty:
        log.warning("%s: ignoring %d empty class folder(s) (no images): %s", root, len(empty), ", ".join(empty))
    if len(classes) == 1:
        log.warning(
            "%s has a single class (%s): a classifier learns nothing from it; expected "
            "ROOT/<class>/<image> with two or more classes",
            root,
            classes[0],
        )
    return classes


class SafeImageFolder(DatasetFolder):
    """``torchvision.datasets.ImageFolder`` whose unreadable images become :class:`SkippedImage`.

    Args:
        root: Folder of class folders.
        transform: Applied to the RGB PIL image.
        classes: Class names to use (e.g. the train split's, so labels agree across splits);
            default: the sub-folders of ``root``.
        strict: Raise :class:`CorruptImageError` on the first unreadable image instead.
    """

    def __init__(
        self,
        root: str | os.PathLike,
        transform: Callable[[Any], Any] | None = None,
        classes: Sequence[str] | None = None,
        strict: bool = False,
    ) -> None:
        self._fixed_classes = list(classes) if classes is not None else None
        self.strict = strict
        super().__init__(str(root), loader=_load_rgb, extensions=IMG_EXTENSIONS, transform=transform, allow_empty=True)
        if not self.samples:
            raise InputError(f"no images ({', '.join(IMG_EXTENSIONS[:4])}, ...) found under {root}")

    def find_classes(self, directory: str) -> tuple[list[str], dict[str, int]]:
        if self._fixed_classes is None:
            classes = find_class_folders(directory)
        else:
            classes = self._fixed_classes
            extra = [
                n
                for n in _subfolders(Path(directory))
                if n not in set(classes) and _walk_images(str(Path(directory) / n), set(), first_only=True)
            ]
            if extra:
                log.warning(
                    "%s: class folder(s) %s are not among the %d training classes; their images are ignored",
                    directory,
                    ", ".join(extra),
                    len(classes),
                )
        return classes, {c: i for i, c in enumerate(classes)}

    @staticmethod
    def make_dataset(
        directory: str | os.PathLike,
        class_to_idx: dict[str, int],
        extensions: Any = None,
        is_valid_file: Any = None,
        allow_empty: bool = False,
    ) -> list[tuple[str, int]]:
        """``(path, class index)`` pairs; symlinks followed once per real directory, files deduplicated."""
        directory = str(directory)
        tops = {c: os.path.join(directory, c) for c in sorted(class_to_idx)}
        seen_dirs = {os.path.realpath(t) for t in tops.values() if os.path.isdir(t)}
        seen_files: set[str] = set()
        samples, dupes, real_dirs = [], 0, {}
        for c, top in tops.items():
            if not os.path.isdir(top):
                continue
            for path in _walk_images(top, seen_dirs):
                real = _real_file(path, real_dirs)
                if real in seen_files:
                    dupes += 1
                    continue
                seen_files.add(real)
                samples.append((path, class_to_idx[c]))
        if dupes:
            log.warning(
                "%s: %d image path(s) lead to files already listed (symlinks); each file is used once", directory, dupes
            )
        return samples

    def __getitem__(self, index: int) -> tuple[Any, int] | SkippedImage:
        path, target = self.samples[index]
        try:
            img = self.loader(path)
        except Exception as e:  # read_image raises the family; a custom loader may raise anything
            reason = f"{type(e).__name__}: {e}"
            if self.strict:
                if isinstance(e, ResourceError):  # too many pixels: the same refusal as every other reader
                    raise
                raise CorruptImageError(f"cannot read image {path} ({reason}); drop --strict to skip such files") from e
            return SkippedImage(path, reason)
        if self.transform is not None:
            img = self.transform(img)
        return img, target


def _real_file(path: str, real_dirs: dict[str, str]) -> str:
    """``os.path.realpath(path)`` with each folder resolved once: one ``lstat`` per plain file instead of one
    per path component (90 % of listing a 22,000-image folder)."""
    if os.path.islink(path):
        return os.path.realpath(path)
    folder, name = os.path.split(path)
    if folder not in real_dirs:
        real_dirs[folder] = os.path.realpath(folder)
    return os.path.join(real_dirs[folder], name)


def _load_rgb(path: str) -> Image.Image:
    """The folder loader's reader: the one decoder (pixel limit, 16-bit rescaling, RGB)."""
    return read_image(path)


def collate_skipping(batch: list[Any]) -> tuple[torch.Tensor, torch.Tensor, list[SkippedImage]]:
    """Collate ``(image, label)`` pairs, dropping :class:`SkippedImage` entries.

    Returns:
        ``(images, labels, skipped)``; ``images`` is empty (0 rows) when every sample was skipped.
    """
    skipped = [b for b in batch if isinstance(b, SkippedImage)]
    good = [b for b in batch if not isinstance(b, SkippedImage)]
    if not good:
        return torch.empty(0), torch.empty(0, dtype=torch.int64), skipped
    images, labels = default_collate(good)
    return images, labels, skipped


def folder_splits(
    root: Path, train_tf: Any, eval_tf: Any, *, train: bool, strict: bool, val_fraction: float
) -> tuple[list[str], Dataset | None, Dataset, Dataset | None, Callable[[], Dataset], str]:
    """An image folder's ``(classes, train, val, test, every, layout)`` for :func:`rexnet.data.build_datasets`.

    ``DIR/train`` with ``DIR/val`` (or ``validation``) and/or ``DIR/test`` is the ``split`` layout (without
    ``val``, ``val_fraction`` of train is held out per class); anything else is ``classes``:
    ``DIR/<class>/...``, ``val_fraction`` held out per class for training, scored whole by ``all``.
    """
    val_dir = next((root / n for n in ("val", "validation") if (root / n).is_dir()), None)
    test_dir = root / "test" if (root / "test").is_dir() else None
    if (root / "train").is_dir() and (val_dir is not None or test_dir is not None):
        classes = find_class_folders(root / "train")
        test_ds = SafeImageFolder(test_dir, eval_tf, classes, strict) if test_dir is not None else None
        splits = [d for d in (root / "train", val_dir, test_dir) if d is not None]

        def every() -> Dataset:
            return ConcatDataset([SafeImageFolder(d, eval_tf, classes, strict) for d in splits])

        if val_dir is not None:
            train_ds = SafeImageFolder(root / "train", train_tf, classes, strict) if train else None
            return classes, train_ds, SafeImageFolder(val_dir, eval_tf, classes, strict), test_ds, every, "split"
        base, held = held_out_split(root / "train", classes, eval_tf, train_tf, train, strict, val_fraction)
        return classes, base, held, test_ds, every, "split"
    classes = find_class_folders(root)
    train_ds, val_ds = held_out_split(root, classes, eval_tf, train_tf, train, strict, val_fraction)
    full = val_ds.dataset  # type: ignore[attr-defined]
    return classes, train_ds, val_ds, None, lambda: full, "classes"


def held_out_split(
    root: Path, classes: list[str], eval_tf: Any, train_tf: Any, train: bool, strict: bool, val_fraction: float
) -> tuple[Dataset | None, Subset]:
    """``(train, val)`` of a class-per-folder ``root``: ``val_fraction`` of each class held out (fixed seed).

    ``train`` is ``None`` unless asked for. Too few images for a held-out split is an error only when
    training (evaluation can still score the folder whole).
    """
    full = SafeImageFolder(root, eval_tf, classes, strict)
    tr, va = stratified_split(torch.tensor(full.targets), val_fraction)
    if not va and train:
        raise InputError(f"{root}: too few images for a {val_fraction:.0%} validation split")
    train_ds = Subset(SafeImageFolder(root, train_tf, classes, strict), tr) if train else None
    return train_ds, Subset(full, va)


def list_image_files(paths: Sequence[str | os.PathLike]) -> list[str]:
    """The image files ``paths`` name, in order, each real file once: a file as given, a folder walked recursively
    (image suffixes only, sorted, links followed once), a glob (``*``, ``?``, ``[...]``, recursive ``**``)
    expanded to its image files and folders.

    A name that is neither an existing path nor a glob is kept: the caller reports it per image.

    Raises:
        InputError: A glob that matches nothing, or no file at all from the paths given.
    """
    out: list[str] = []
    seen: set[str] = set()
    for p in paths:
        s = os.fspath(p)
        if os.path.isdir(s):
            found = _walk_images(s, {os.path.realpath(s)})
            if not found:
                log.warning("%s holds no image files (%s, ...)", s, ", ".join(IMG_EXTENSIONS[:4]))
        elif os.path.lexists(s) or not any(c in s for c in "*?["):
            found = [s]
        else:
            found = _glob_images(s)
        for f in found:
            real = os.path.realpath(f)  # a file reached through a link (or a glob through a link loop) once
            if real not in seen:
                seen.add(real)
                out.append(f)
    if paths and not out:
        raise InputError(f"no image files in {', '.join(map(os.fspath, paths))}")
    return out


def _glob_images(pattern: str) -> list[str]:
    import glob

    matches = sorted(glob.glob(pattern, recursive=True))
    if not matches:
        raise InputError(f"no file matches {pattern!r}")
    found: list[str] = []
    for m in matches:
        if os.path.isdir(m):
            found += _walk_images(m, {os.path.realpath(m)})
        elif has_file_allowed_extension(m, IMG_EXTENSIONS):
            found.append(m)
    if not found:
        raise InputError(
            f"{pattern!r} matches {len(matches)} path(s) but no image file ({', '.join(IMG_EXTENSIONS[:4])}, ...)"
        )
    return found


def sample_paths(dataset: Dataset) -> list[str] | None:
    """The file of each sample of an image-folder dataset (through ``Subset`` and ``ConcatDataset``), in
    order; ``None`` for data held in memory."""
    if isinstance(dataset, DatasetFolder):
        return [p for p, _ in dataset.samples]
    if isinstance(dataset, Subset):
        inner = sample_paths(dataset.dataset)
        return None if inner is None else [inner[i] for i in dataset.indices]
    if isinstance(dataset, ConcatDataset):
        parts = [sample_paths(d) for d in dataset.datasets]
        return None if any(p is None for p in parts) else [x for p in parts for x in p]  # type: ignore[union-attr]
    return None
