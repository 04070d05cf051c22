"""Augmentation and loading a whole batch at a time, for datasets held in memory as uint8 tensors.

For small images (digits, Fashion-MNIST, CIFAR at 32 px) torchvision's per-image transforms cost
about as much as the training step itself; the same augmentation done on the batch tensor costs
a few percent of it. :class:`BatchAugment` is the training recipe's ``RandomResizedCrop`` ->
horizontal flip -> normalize -> ``RandomErasing`` (pixel mode) with per-image random parameters,
drawn the way torchvision draws them, applied as one ``grid_sample`` (bicubic by default). The
crop is resampled without antialiasing, which only matters when a crop is *larger* than the
output (never for the 28/32 px datasets at their native size), and output pixels at the crop's
edge interpolate with the real pixels beyond it (torchvision cuts the box out first and repeats
its edge). RandAugment has no batched form
here: a config with ``randaug_n > 0`` uses the per-image path.

:class:`TensorBatchLoader` replaces the ``DataLoader`` for such datasets: it gathers a batch by
index, augments it with random parameters drawn per image from a counter-based generator keyed by
``(seed, epoch, index)`` (so the draws do not depend on batch size, processes or accumulation,
and a resumed run draws the same crops), and yields ``(images, labels, [])`` like :func:`~rexnet.data.collate_skipping`.
:class:`CachedEvalLoader` applies a dataset's per-image evaluation transform once and then only
slices the cached result (bit-identical to the per-image path).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch.utils.data import Dataset, Subset

from .._seed import mix_seed
from ..errors import ConfigError
from .transforms import AugmentConfig

__all__ = ["BatchAugment", "TensorBatchLoader", "CachedEvalLoader", "image_keys", "tensor_source"]


def tensor_source(ds: Dataset) -> tuple[Any, torch.Tensor] | None:
    """``(base TensorImageDataset, index map)`` if ``ds`` is one, possibly under ``Subset`` s; else ``None``."""
    from .embedded import TensorImageDataset

    index: torch.Tensor | None = None
    while isinstance(ds, Subset):
        sub = torch.as_tensor(list(ds.indices), dtype=torch.int64)
        index = sub if index is None else sub[index]
        ds = ds.dataset
    if not isinstance(ds, TensorImageDataset):
        return None
    return ds, index if index is not None else torch.arange(len(ds))


def _signed(c: int) -> int:
    return c - (1 << 64) if c >= 1 << 63 else c


_GOLDEN, _MIX1, _MIX2 = _signed(0x9E3779B97F4A7C15), _signed(0xBF58476D1CE4E5B9), _signed(0x94D049BB133111EB)


def _splitmix(z: torch.Tensor) -> torch.Tensor:
    """splitmix64 on int64 tensors (wrapping arithmetic; masked shifts act as logical shifts)."""
    z = z + _GOLDEN
    z = (z ^ ((z >> 30) & ((1 << 34) - 1))) * _MIX1
    z = (z ^ ((z >> 27) & ((1 << 37) - 1))) * _MIX2
    return z ^ ((z >> 31) & ((1 << 33) - 1))


def image_keys(seed: int, epoch: int, index: torch.Tensor) -> torch.Tensor:
    """One int64 key per image from ``(seed, epoch, index)``: all of an image's augmentation derives from it,
    so the draws do not depend on batch size, batch order, processes or accumulation."""
    return _splitmix(index.to(torch.int64) ^ _signed(mix_seed(seed, epoch, 2)))


def _uniform(keys: torch.Tensor, n: int, stream: int) -> torch.Tensor:
    """``(B, n)`` float64 uniforms in [0, 1) from per-image ``keys``; ``stream`` separates uses."""
    j = torch.arange(n, dtype=torch.int64) + stream * 1024
    z = _splitmix(_splitmix(keys[:, None] + j * _GOLDEN))
    return ((z >> 11) & ((1 << 53) - 1)).double() / float(1 << 53)


class BatchAugment:
    """The training augmentation on a uint8 ``(B, C, H, W)`` batch; returns normalized float ``(B, 3, S, S)``.

    Args:
        image_size: Output side ``S``.
        aug: The recipe (:class:`~rexnet.data.AugmentConfig`); ``randaug_n`` must be 0.
        mean / std: Normalization (0-1 scale), one value per output channel.
        interpolation: ``bicubic``, ``bilinear`` or ``nearest`` resampling of the crop.

    Raises:
        ValueError: ``aug`` asks for RandAugment, or an unknown interpolation.

    Example:
        >>> t = BatchAugment(32, AugmentConfig(randaug_n=0, reprob=0.0), mean=(0.5,) * 3, std=(0.5,) * 3)
        >>> t(torch.zeros(4, 1, 28, 28, dtype=torch.uint8), image_keys(0, 0, torch.arange(4))).shape
        torch.Size([4, 3, 32, 32])
    """

    def __init__(
        self,
        image_size: int,
        aug: AugmentConfig,
        mean: Sequence[float],
        std: Sequence[float],
        interpolation: str = "bicubic",
    ) -> None:
        if not self.supports(aug):
            raise ConfigError("RandAugment has no batched implementation; use the per-image transform")
        if interpolation not in ("bicubic", "bilinear", "nearest"):
            raise ConfigError(f"unknown interpolation {interpolation!r}")
        self.size, self.aug, self.mode = image_size, aug, interpolation
        # x/255 then (x - mean)/std  ==  x * scale + shift
        self.scale = torch.tensor([1 / (255 * s) for s in std]).view(1, -1, 1, 1)
        self.shift = torch.tensor([-m / s for m, s in zip(mean, std)]).view(1, -1, 1, 1)

    @staticmethod
    def supports(aug: AugmentConfig) -> bool:
        """Whether the batched path implements ``aug`` (everything but RandAugment)."""
        return aug.randaug_n == 0

    def crop_boxes(self, keys: torch.Tensor, height: int, width: int) -> torch.Tensor:
        """``RandomResizedCrop`` boxes ``(top, left, h, w)`` for ``n`` images, drawn like torchvision's
        ``get_params``: up to 10 tries per image, then the central crop with the ratio clamped."""
        n = len(keys)
        area = height * width
        lo, hi = self.aug.scale
        log_r = torch.log(torch.tensor(self.aug.ratio, dtype=torch.float64))
        tries = 10
        target = area * (lo + (hi - lo) * _uniform(keys, tries, 0))
        ratio = torch.exp(log_r[0] + (log_r[1] - log_r[0]) * _uniform(keys, tries, 1))
        w = torch.round(torch.sqrt(target * ratio))
        h = torch.round(torch.sqrt(target / ratio))
        ok = (w > 0) & (w <= width) & (h > 0) & (h <= height)
        first = torch.where(ok.any(1), ok.to(torch.int8).argmax(1), torch.full((n,), -1))
        u = _uniform(keys, 2, 2)
        # fallback: the whole image with the aspect ratio clamped into the range
        in_ratio = width / height
        if in_ratio < math.exp(log_r[0]):
            fw, fh = width, round(width / math.exp(log_r[0]))
        elif in_ratio > math.exp(log_r[1]):
            fw, fh = round(height * math.exp(log_r[1])), height
        else:
            fw, fh = width, height
        pick = first.clamp(min=0)[:, None]
        hh = torch.where(first >= 0, h.gather(1, pick)[:, 0], torch.full((n,), float(fh), dtype=torch.float64))
        ww = torch.where(first >= 0, w.gather(1, pick)[:, 0], torch.full((n,), float(fw), dtype=torch.float64))
        top = torch.where(first >= 0, torch.floor(u[:, 0] * (height - hh + 1)), torch.floor((height - hh) / 2))
        left = torch.where(first >= 0, torch.floor(u[:, 1] * (width - ww + 1)), torch.floor((width - ww) / 2))
        return torch.stack([top, left, hh, ww], 1)

    def __call__(self, images: torch.Tensor, keys: torch.Tensor) -> torch.Tensor:
        """Augment ``images`` (uint8 ``(B, C, H, W)``), drawing each image's parameters from its key
        (:func:`image_keys`)."""
        n, c, height, width = images.shape
        boxes = self.crop_boxes(keys, height, width)
        flip = _uniform(keys, 1, 3)[:, 0] < self.aug.hflip
        top, left, h, w = boxes.unbind(1)
        # output pixel centres in [-1, 1] map onto the crop's pixel centres (align_corners=False);
        # the map is separable, so the grid is built from one row and one column per image
        out = (2 * torch.arange(self.size, dtype=torch.float64) + 1) / self.size - 1
        sx = torch.where(flip, -w / width, w / width)
        gx = sx[:, None] * out + ((2 * left + w) / width - 1)[:, None]
        gy = (h / height)[:, None] * out + ((2 * top + h) / height - 1)[:, None]
        grid = torch.stack(torch.broadcast_tensors(gx[:, None, :], gy[:, :, None]), -1).float()
        x = F.grid_sample(images.float(), grid, mode=self.mode, padding_mode="border", align_corners=False)
        if self.mode == "bicubic":
            x = x.clamp_(0, 255)
        x = torch.addcmul(self.shift, x, self.scale)  # (B, 1|3, S, S) -> (B, 3, S, S), normalized
        if self.aug.reprob > 0:
            x = _random_erase(x, self.aug.reprob, keys)
        return x


def _random_erase(
    x: torch.Tensor,
    p: float,
    keys: torch.Tensor,
    scale: tuple[float, float] = (0.02, 0.33),
    ratio: tuple[float, float] = (0.3, 3.3),
) -> torch.Tensor:
    """torchvision's ``RandomErasing(p, value='random')`` per image: a box of normal noise."""
    _, _, height, width = x.shape
    area = height * width
    tries = 10
    target = area * (scale[0] + (scale[1] - scale[0]) * _uniform(keys, tries, 4))
    log_r = math.log(ratio[0]), math.log(ratio[1])
    ar = torch.exp(log_r[0] + (log_r[1] - log_r[0]) * _uniform(keys, tries, 5))
    h = torch.round(torch.sqrt(target * ar))
    w = torch.round(torch.sqrt(target / ar))
    ok = (h < height) & (w < width)
    first = ok.to(torch.int8).argmax(1, keepdim=True)
    u = _uniform(keys, 3, 6)
    do = (u[:, 0] < p) & ok.any(1)
    h, w = h.gather(1, first)[:, 0], w.gather(1, first)[:, 0]
    top, left = torch.floor(u[:, 1] * (height - h + 1)), torch.floor(u[:, 2] * (width - w + 1))
    sel = do.nonzero().flatten()
    if len(sel) == 0:
        return x
    top, left, h, w = top[sel], left[sel], h[sel], w[sel]
    ys = torch.arange(height).view(1, height, 1)
    xs = torch.arange(width).view(1, 1, width)
    box = (
        (ys >= top.view(-1, 1, 1))
        & (ys < (top + h).view(-1, 1, 1))
        & (xs >= left.view(-1, 1, 1))
        & (xs < (left + w).view(-1, 1, 1))
    )
    noise = torch.stack(
        [torch.randn(x.shape[1:], generator=torch.Generator().manual_seed(int(k))) for k in keys[sel] & ((1 << 62) - 1)]
    )
    x[sel] = torch.where(box[:, None], noise, x[sel])
    return x


class TensorBatchLoader:
    """Training batches from an in-memory dataset, augmented a batch at a time.

    Args:
        images: uint8 ``(N, C, H, W)`` (C = 1 or 3).
        labels: int64 ``(N,)``.
        sampler: Yields ``(epoch, index)`` pairs (:class:`~rexnet.train.sampling.EpochSampler`).
        batch_size: Images per batch (the micro-batch).
        augment: The batched transform.
        seed: The run seed; with the epoch and the image index it keys each image's augmentation.
    """

    def __init__(
        self,
        images: torch.Tensor,
        labels: torch.Tensor,
        sampler: Iterable[tuple[int, int]],
        batch_size: int,
        augment: BatchAugment,
        seed: int,
    ) -> None:
        self.images, self.labels, self.sampler = images, labels, sampler
        self.batch_size, self.augment, self.seed = batch_size, augment, seed

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor, list]]:
        epoch, idx = 0, []
        for epoch, i in self.sampler:
            idx.append(i)
            if len(idx) == self.batch_size:
                yield self._batch(idx, epoch)
                idx = []
        if idx:
            yield self._batch(idx, epoch)

    def _batch(self, idx: list[int], epoch: int) -> tuple[torch.Tensor, torch.Tensor, list]:
        index = torch.as_tensor(idx, dtype=torch.int64)
        keys = image_keys(self.seed, epoch, index)
        return self.augment(self.images[index], keys), self.labels[index], []


class CachedEvalLoader:
    """Evaluation batches of a dataset whose per-image transform is deterministic, computed once.

    The first pass applies ``dataset[i]`` to every image and keeps the stacked result (on the
    dataset object, so later epochs and evaluations reuse it); batches are then slices.
    """

    def __init__(self, dataset: Dataset, batch_size: int) -> None:
        self.dataset, self.batch_size = dataset, batch_size

    def _cache(self) -> tuple[torch.Tensor, torch.Tensor]:
        cached = getattr(self.dataset, "_rexnet_eval_cache", None)
        if cached is None:
            items = [self.dataset[i] for i in range(len(self.dataset))]  # type: ignore[arg-type]
            cached = (torch.stack([x for x, _ in items]), torch.tensor([y for _, y in items], dtype=torch.int64))
            self.dataset._rexnet_eval_cache = cached  # type: ignore[attr-defined]
        return cached

    def __len__(self) -> int:
        return math.ceil(len(self.dataset) / self.batch_size)  # type: ignore[arg-type]

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor, list]]:
        x, y = self._cache()
        for s in range(0, len(y), self.batch_size):
            yield x[s : s + self.batch_size], y[s : s + self.batch_size], []
