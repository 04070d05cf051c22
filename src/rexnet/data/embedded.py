"""Datasets that need no download: scikit-learn's handwritten digits, and procedural shapes.

``digits``: the 1,797 8x8 grey images (16 levels) of the UCI handwritten-digits set that
scikit-learn ships inside its wheel, upscaled bicubically to 32x32 and repeated over 3 channels.
The held-out split is stratified and fixed (20 % per class, chosen by a seed-0 permutation that
does not depend on the training seed): 1,438 train / 359 val images.

``shapes``: 10 classes of filled geometric shapes (circle, square, triangle, ...) drawn at random
position, size, rotation and colour on a noisy background; deterministic for its seed, 200 train
and 50 val images per class. Needs only torch.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from ..errors import InputError

__all__ = ["TensorImageDataset", "load_digits_split", "make_shapes_split", "SHAPE_CLASSES"]


class TensorImageDataset(Dataset):
    """Images held in memory as one uint8 ``(N, C, H, W)`` tensor, with labels and a transform.

    Grayscale images (``C = 1``) are stored once and replicated to 3 channels when read, so every
    model sees RGB-shaped input.

    Args:
        images: uint8 tensor ``(N, 1, H, W)`` or ``(N, 3, H, W)``.
        labels: int64 tensor ``(N,)``.
        classes: Class names, index = label.
        transform: Applied to each ``(3, H, W)`` uint8 image; ``None`` gives float images in [0, 1].
        batch_transform: The same training augmentation for a whole uint8 batch
            (:class:`~rexnet.data.batched.BatchAugment`); the training loop uses it when it can.
    """

    def __init__(
        self,
        images: torch.Tensor,
        labels: torch.Tensor,
        classes: list[str],
        transform: Callable[[Any], torch.Tensor] | None = None,
        batch_transform: Callable[..., torch.Tensor] | None = None,
    ) -> None:
        if images.dtype != torch.uint8 or images.ndim != 4 or images.shape[1] not in (1, 3):
            raise InputError(f"images must be uint8 (N, 1|3, H, W), got {images.dtype} {tuple(images.shape)}")
        self.images, self.labels, self.classes, self.transform = images, labels, list(classes), transform
        self.batch_transform = batch_transform
        self.targets = labels.tolist()

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        img = self.images[i]
        if img.shape[0] == 1:
            img = img.expand(3, -1, -1)
        img = self.transform(img) if self.transform is not None else img.float() / 255
        return img, int(self.labels[i])


def stratified_split(labels: torch.Tensor, val_fraction: float, seed: int = 0) -> tuple[list[int], list[int]]:
    g = torch.Generator().manual_seed(seed)
    train, val = [], []
    for c in labels.unique().tolist():
        idx = (labels == c).nonzero().flatten()
        idx = idx[torch.randperm(len(idx), generator=g)].tolist()
        n_val = round(len(idx) * val_fraction)
        val += idx[:n_val]
        train += idx[n_val:]
    return sorted(train), sorted(val)


def load_digits_split(
    size: int = 32, val_fraction: float = 0.2
) -> tuple[torch.Tensor, torch.Tensor, list[int], list[int]]:
    """The digits images upscaled to ``size`` (uint8, 3 channels), labels, and train/val indices.

    Raises:
        InputError: scikit-learn is not installed.
    """
    try:
        from sklearn.datasets import load_digits
    except ImportError as e:
        raise InputError(
            "the embedded 'digits' dataset needs scikit-learn (pip install 'rexnet[data]'); "
            "or use --data shapes, which needs nothing"
        ) from e
    d = load_digits()
    x = torch.as_tensor(d.images, dtype=torch.float32)[:, None] / 16.0
    x = F.interpolate(x, size=(size, size), mode="bicubic", align_corners=False).clamp_(0, 1)
    images = (x * 255).round_().to(torch.uint8).expand(-1, 3, -1, -1).contiguous()
    labels = torch.as_tensor(d.target, dtype=torch.int64)
    train, val = stratified_split(labels, val_fraction)
    return images, labels, train, val


SHAPE_CLASSES = ["circle", "square", "triangle", "diamond", "cross", "ring", "star", "hbar", "vbar", "ellipse"]


def _shape_mask(kind: str, yy: torch.Tensor, xx: torch.Tensor, r: torch.Tensor, angle: torch.Tensor) -> torch.Tensor:
    c, s = angle.cos(), angle.sin()
    u, v = c * xx + s * yy, -s * xx + c * yy  # rotated coordinates
    if kind == "circle":
        return xx**2 + yy**2 <= r**2
    if kind == "ring":
        d = (xx**2 + yy**2).sqrt()
        return (d <= r) & (d >= 0.6 * r)
    if kind == "square":
        return (u.abs() <= 0.8 * r) & (v.abs() <= 0.8 * r)
    if kind == "diamond":
        return u.abs() + v.abs() <= r
    if kind == "triangle":
        return (v <= 0.5 * r) & (v >= -r + 2 * u.abs())
    if kind == "cross":
        return ((u.abs() <= 0.25 * r) & (v.abs() <= r)) | ((v.abs() <= 0.25 * r) & (u.abs() <= r))
    if kind == "star":
        theta = torch.atan2(v, u)
        return (xx**2 + yy**2).sqrt() <= r * (0.55 + 0.45 * torch.cos(5 * theta))
    if kind == "hbar":
        return (xx.abs() <= r) & (yy.abs() <= 0.3 * r)
    if kind == "vbar":
        return (yy.abs() <= r) & (xx.abs() <= 0.3 * r)
    if kind == "ellipse":
        return (u / r) ** 2 + (v / (0.5 * r)) ** 2 <= 1
    raise ValueError(kind)


def make_shapes_split(
    size: int = 32, per_class: int = 250, val_fraction: float = 0.2, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor, list[int], list[int]]:
    """Procedurally drawn shapes (uint8 ``(N, 3, size, size)``), labels and a stratified split."""
    g = torch.Generator().manual_seed(seed)
    coords = torch.arange(size, dtype=torch.float32)
    n = per_class
    images, labels = [], []
    for label, kind in enumerate(SHAPE_CLASSES):
        p = torch.rand(4, n, 1, 1, generator=g)
        r = size * (0.18 + 0.14 * p[0])
        cy, cx = r + (size - 2 * r) * p[1], r + (size - 2 * r) * p[2]
        angle = 2 * math.pi * p[3] if kind not in ("hbar", "vbar") else torch.zeros_like(p[3])
        yy, xx = coords[None, :, None] - cy, coords[None, None, :] - cx
        mask = _shape_mask(kind, yy, xx, r, angle)[:, None]  # (n, 1, H, W)
        bg = 0.3 * torch.rand(n, 3, 1, 1, generator=g) + 0.1 * torch.rand(n, 3, size, size, generator=g)
        fg = 0.5 + 0.5 * torch.rand(n, 3, 1, 1, generator=g)
        img = torch.where(mask, fg, bg)
        images.append((img.clamp(0, 1) * 255).round().to(torch.uint8))
        labels += [label] * n
    labels_t = torch.tensor(labels, dtype=torch.int64)
    train, val = stratified_split(labels_t, val_fraction)
    return torch.cat(images), labels_t, train, val
