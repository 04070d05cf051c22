"""Image folders (ImageNet layout) that skip corrupt files, and the collate that reports them."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import torch
from PIL import Image
from torch.utils.data import default_collate
from torchvision.datasets import DatasetFolder
from torchvision.datasets.folder import IMG_EXTENSIONS

from ..errors import RexnetError

__all__ = ["CorruptImageError", "SkippedImage", "SafeImageFolder", "collate_skipping", "find_class_folders"]


class CorruptImageError(RexnetError):
    """An image that cannot be decoded, raised only in strict mode."""


class SkippedImage(NamedTuple):
    """What a dataset returns in place of an unreadable image; the collate drops and reports it."""

    path: str
    reason: str


def find_class_folders(root: str | os.PathLike) -> list[str]:
    """Sorted names of the class sub-folders of ``root``.

    Raises:
        RexnetError: ``root`` is missing or has no sub-folders.
    """
    root = Path(root)
    if not root.is_dir():
        raise RexnetError(f"dataset folder not found: {root}")
    classes = sorted(e.name for e in os.scandir(root) if e.is_dir() and not e.name.startswith("."))
    if not classes:
        raise RexnetError(f"{root} has no class sub-folders (expected ROOT/<class>/<image>)")
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

    def __init__(self, root: str | os.PathLike, transform: Callable[[Any], Any] | None = None,
                 classes: Sequence[str] | None = None, strict: bool = False) -> None:
        self._fixed_classes = list(classes) if classes is not None else None
        self.strict = strict
        super().__init__(str(root), loader=_load_rgb, extensions=IMG_EXTENSIONS, transform=transform,
                         allow_empty=True)
        if not self.samples:
            raise RexnetError(f"no images ({', '.join(IMG_EXTENSIONS[:4])}, ...) found under {root}")

    def find_classes(self, directory: str) -> tuple[list[str], dict[str, int]]:
        classes = self._fixed_classes if self._fixed_classes is not None else find_class_folders(directory)
        return classes, {c: i for i, c in enumerate(classes)}

    def __getitem__(self, index: int) -> tuple[Any, int] | SkippedImage:
        path, target = self.samples[index]
        try:
            img = self.loader(path)
        except Exception as e:  # PIL raises many types for broken files
            reason = f"{type(e).__name__}: {e}"
            if self.strict:
                raise CorruptImageError(f"cannot read image {path} ({reason}); drop --strict to skip such files") from e
            return SkippedImage(path, reason)
        if self.transform is not None:
            img = self.transform(img)
        return img, target


def _load_rgb(path: str) -> Image.Image:
    with open(path, "rb") as f:
        img = Image.open(f)
        return img.convert("RGB")  # forces a full decode, so truncated files fail here


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
