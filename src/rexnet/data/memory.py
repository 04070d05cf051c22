"""Image folders small enough to hold in memory, decoded once into a uint8 tensor.

A Fashion-MNIST-sized folder (tens of thousands of 28 px PNGs) costs more to decode and augment per
image, every epoch, than the 32 px training step itself on a small CPU. Decoded once (in parallel, by
``workers`` processes) into one uint8 ``(N, C, H, W)`` tensor, the folder trains on the batched
augmentation path of the in-memory datasets (:class:`~rexnet.data.batched.BatchAugment`) and evaluates
from a tensor that the evaluation transform has been applied to once, a whole chunk at a time.

Only folders whose images all share one size are cached (the batched crop needs one ``(H, W)``), and only
under a memory budget; anything else stays on the per-image path. Greyscale images (R = G = B) are kept
as one channel, as the IDX datasets are. Unreadable files are skipped and reported as the folder does
(:class:`~rexnet.data.folder.SkippedImage`), or raise with ``strict``.
"""

from __future__ import annotations

import logging
import math
import multiprocessing
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset, Subset

from .._images import read_image
from .._memory import available_memory
from ..errors import CorruptImageError, ResourceError
from .embedded import TensorImageDataset
from .folder import SafeImageFolder, SkippedImage

__all__ = ["CachedFolder", "folder_source", "decode_folder", "TensorEvalLoader", "eval_tensors", "CACHE_BYTES"]

log = logging.getLogger(__name__)

#: Largest decoded folder held in memory (uint8 bytes), further capped at a quarter of the free memory.
CACHE_BYTES = 2 << 30
#: Fewer images than this decode in the calling process (a pool's start costs more than it saves).
_POOL_MIN_IMAGES = 2000


def folder_source(ds: Dataset) -> tuple[SafeImageFolder, list[int]] | None:
    """``(base SafeImageFolder, sample indices)`` if ``ds`` is one, possibly under ``Subset`` s; else ``None``."""
    index: list[int] | None = None
    while isinstance(ds, Subset):
        sub = list(ds.indices)
        index = sub if index is None else [sub[i] for i in index]
        ds = ds.dataset
    if not isinstance(ds, SafeImageFolder):
        return None
    return ds, index if index is not None else list(range(len(ds)))


@dataclass
class CachedFolder:
    """A folder decoded into memory.

    Attributes:
        dataset: The images as a :class:`~rexnet.data.embedded.TensorImageDataset` (the folder's per-image
            transform, no batch transform: the caller sets one).
        skipped: The files that could not be read (left out of ``dataset``).
        seconds: Decoding time.
    """

    dataset: TensorImageDataset
    skipped: list[SkippedImage] = field(default_factory=list)
    seconds: float = 0.0


def _decode(path: str) -> np.ndarray | str:
    """One image as uint8 ``(H, W, 3)``, or why it could not be read (the reason the folder reports)."""
    try:
        return np.asarray(read_image(path))
    except ResourceError:
        raise
    except Exception as e:  # read_image raises the CorruptImageError family; report, as SafeImageFolder does
        return f"{type(e).__name__}: {e}"


def _decode_all(paths: list[str], workers: int) -> list[np.ndarray | str]:
    if workers <= 1 or len(paths) < _POOL_MIN_IMAGES:
        return [_decode(p) for p in paths]
    # fork: the children only run PIL and numpy (no OpenMP), and start without re-importing torch
    with multiprocessing.get_context("fork").Pool(workers) as pool:
        return pool.map(_decode, paths, chunksize=max(64, math.ceil(len(paths) / (8 * workers))))


def decode_folder(ds: Dataset, *, workers: int = 1, max_bytes: int | None = None) -> CachedFolder | None:
    """``ds`` (an image folder, possibly a ``Subset``) decoded into memory, or ``None`` when it cannot be.

    ``None``: not an image folder, images of different sizes, or more than ``max_bytes`` decoded (default
    :data:`CACHE_BYTES`, at most a quarter of the free memory).

    Args:
        ds: The dataset.
        workers: Decoding processes.
        max_bytes: Memory budget of the uint8 tensor.

    Raises:
        CorruptImageError: An unreadable image and the folder is ``strict``.
        ResourceError: An image over the pixel limit.
    """
    src = folder_source(ds)
    if src is None:
        return None
    folder, index = src
    if not index:
        return None
    budget = min(CACHE_BYTES if max_bytes is None else max_bytes, available_memory() // 4)
    paths = [folder.samples[i][0] for i in index]
    first = next((a for a in (_decode(p) for p in paths[:8]) if not isinstance(a, str)), None)
    if first is None:
        return None
    h, w = first.shape[:2]
    if len(paths) * 3 * h * w > budget:
        log.info("%s: %d images of %dx%d exceed the memory cache (%d MiB); reading per image", folder.root,
                 len(paths), w, h, budget >> 20)  # fmt: skip
        return None
    t0 = time.perf_counter()
    arrays = _decode_all(paths, workers)
    skipped = [SkippedImage(p, a) for p, a in zip(paths, arrays) if isinstance(a, str)]
    if skipped and folder.strict:
        p, reason = skipped[0]
        raise CorruptImageError(f"cannot read image {p} ({reason}); drop --strict to skip such files")
    good = [(a, folder.samples[i][1]) for a, i in zip(arrays, index) if not isinstance(a, str)]
    if not good or any(a.shape != first.shape for a, _ in good):
        log.info("%s: images differ in size; reading per image", folder.root)
        return None
    x = np.stack([a for a, _ in good])  # (N, H, W, 3)
    grey = bool((x[..., 0] == x[..., 1]).all() and (x[..., 1] == x[..., 2]).all())
    images = torch.from_numpy(x[..., :1] if grey else x).permute(0, 3, 1, 2).contiguous()
    labels = torch.tensor([y for _, y in good], dtype=torch.int64)
    seconds = time.perf_counter() - t0
    log.info(
        "%s: %d images decoded into memory (%dx%d, %s, %.0f MiB) in %.1fs with %d process(es)",
        folder.root, len(labels), w, h, "grey" if grey else "RGB", images.numel() / 2**20, seconds, max(1, workers),
    )  # fmt: skip
    return CachedFolder(TensorImageDataset(images, labels, folder.classes, folder.transform), skipped, seconds)


def eval_tensors(ds: TensorImageDataset, chunk: int = 1024) -> tuple[torch.Tensor, torch.Tensor]:
    """The evaluation transform of ``ds`` applied to every image, a chunk of images per call.

    torchvision's v2 transforms take batched tensors and treat each image as they would alone (the same
    resize kernel, crop and normalisation), so the result equals ``torch.stack([ds[i][0] for i ...])``.
    """
    out = []
    for s in range(0, len(ds), chunk):
        x = ds.images[s : s + chunk]
        x = x.expand(-1, 3, -1, -1) if x.shape[1] == 1 else x
        out.append(ds.transform(x) if ds.transform is not None else x.float() / 255)
    return torch.cat(out), ds.labels


class TensorEvalLoader:
    """Evaluation batches sliced from precomputed tensors: ``(images, labels, [])`` like ``collate_skipping``."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, batch_size: int, skipped: Any = ()) -> None:
        self.images, self.labels, self.batch_size = images, labels, batch_size
        self.skipped = list(skipped)  # reported with the first batch, as a DataLoader would report them

    def __len__(self) -> int:
        return math.ceil(len(self.labels) / self.batch_size)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor, list]]:
        for k, s in enumerate(range(0, len(self.labels), self.batch_size)):
            bad = self.skipped if k == 0 else []
            yield self.images[s : s + self.batch_size], self.labels[s : s + self.batch_size], bad
