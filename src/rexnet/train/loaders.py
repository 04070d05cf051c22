"""Training and evaluation loaders, and the CPU thread default that goes with their batch size.

Data paths, fastest first: an in-memory dataset (or an image folder small enough to decode into memory
once, :mod:`rexnet.data.memory`) is augmented a batch at a time; anything else is read per image by a
``DataLoader``, in worker processes when the plan is measured (``plan="auto"``) and ``workers`` is 0.
Evaluation runs on tensors the evaluation transform was applied to once, where they fit, at a batch
larger than training's (:func:`eval_batch_size`).
"""

from __future__ import annotations

import logging
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset

from .._env import available_cores, dist_env
from ..data.batched import BatchAugment, CachedEvalLoader, TensorBatchLoader, tensor_source
from ..data.folder import collate_skipping
from ..data.memory import TensorEvalLoader, decode_folder, eval_tensors, folder_source
from ..data.transforms import model_norm
from ..errors import InputError
from .config import TrainConfig
from .sampling import EpochSampler, SeededView

__all__ = [
    "default_threads",
    "train_loader",
    "eval_loader",
    "eval_batch_size",
    "loader_workers",
    "in_memory",
    "SMALL_WORK_PIXELS",
]

log = logging.getLogger(__name__)


def loader_workers(cfg: TrainConfig, ds: Dataset) -> int:
    """DataLoader workers for a per-image dataset: ``cfg.workers``, or with the measured plan and ``workers=0``
    the cores for an image folder (decoding a file costs about as much as a 32 px step: keep it off the
    training thread)."""
    if cfg.workers or cfg.plan != "auto" or folder_source(ds) is None:
        return cfg.workers
    return max(1, available_cores() // dist_env().local_world_size)


def _loader(ds: Dataset, batch: int, workers: int, device: torch.device, sampler: Any = None) -> DataLoader:
    return DataLoader(
        ds,
        batch_size=batch,
        sampler=sampler,
        shuffle=False,
        num_workers=workers,
        collate_fn=collate_skipping,
        pin_memory=device.type == "cuda",
        persistent_workers=workers > 0 and sampler is not None,
        prefetch_factor=4 if workers > 0 else None,
        generator=torch.Generator(),
    )  # own generator: the global RNG stays the model's


def in_memory(ds: Dataset, cfg: TrainConfig) -> tuple[Dataset, list[Any]]:
    """A training set that is an image folder small enough to decode into memory, decoded (with the batched
    augmentation of ``cfg`` where it applies), and the files it could not read; else ``(ds, [])``.

    Call it before sizing the sampler: unreadable files are left out, so the dataset may shrink.
    """
    cached = _cached(ds, cfg)
    if cached is None:
        return ds, []
    cached.dataset.batch_transform = _batch_augment(cfg)
    return cached.dataset, list(cached.skipped)


def _cached(ds: Dataset, cfg: TrainConfig) -> Any:
    """``ds`` decoded into memory when it is an image folder that fits (:func:`rexnet.data.memory.decode_folder`)."""
    if cfg.aug_backend == "per-sample" or folder_source(ds) is None:
        return None
    return decode_folder(ds, workers=max(1, available_cores() // dist_env().local_world_size))


def _batch_augment(cfg: TrainConfig) -> BatchAugment | None:
    if not BatchAugment.supports(cfg.aug):
        return None
    try:
        norm = model_norm(cfg.model)
    except InputError:  # a model built by the caller under a name the registry does not know
        norm = model_norm(None)
    return BatchAugment(cfg.image_size, cfg.aug, norm["mean"], norm["std"], norm["interpolation"])


def train_loader(ds: Dataset, batch: int, cfg: TrainConfig, device: torch.device, sampler: EpochSampler) -> Any:
    """Batched in-memory augmentation where the data allows it (see ``cfg.aug_backend``), else a DataLoader."""
    src = tensor_source(ds) if cfg.aug_backend != "per-sample" else None
    augment = getattr(src[0], "batch_transform", None) if src is not None else None
    if augment is None:
        if cfg.aug_backend == "batched":
            raise InputError(
                "aug_backend='batched' needs an in-memory dataset (digits, shapes, fashion-mnist, "
                "mnist, cifar, or an image folder of one image size that fits in memory) and no RandAugment "
                "(randaug_n=0); use aug_backend='auto'"
            )
        return _loader(SeededView(ds, cfg.seed), batch, loader_workers(cfg, ds), device, sampler)
    base, index = src  # type: ignore[misc]
    return TensorBatchLoader(base.images[index], base.labels[index], sampler, batch, augment, cfg.seed)


_EVAL_CACHE_BYTES = 1 << 30  # cache evaluation tensors up to 1 GiB; larger sets stream per image


def eval_batch_size(micro_batch: int, image_size: int) -> int:
    """Evaluation batch: up to 4x the training micro-batch (no activations kept for backward), at most 1024
    images and 2^22 pixels, never below the micro-batch (32 px, micro-batch 128: 512)."""
    return max(micro_batch, min(4 * micro_batch, 1024, (1 << 22) // image_size**2))


def eval_loader(ds: Dataset, batch: int, cfg: TrainConfig, device: torch.device) -> Any:
    """Cached tensors for a small in-memory validation set or image folder, else a DataLoader."""
    fits = len(ds) * 3 * cfg.image_size**2 * 4 <= _EVAL_CACHE_BYTES  # type: ignore[arg-type]
    src = tensor_source(ds)
    if src is not None and cfg.aug_backend != "per-sample" and fits:
        return CachedEvalLoader(ds, batch)
    cached = _cached(ds, cfg) if fits else None
    if cached is not None:
        images, labels = eval_tensors(cached.dataset)
        return TensorEvalLoader(images, labels, batch, cached.skipped)
    return _loader(ds, batch, loader_workers(cfg, ds), device)


#: Pixels per micro-batch below which one thread is faster: the per-op work is too small for OpenMP's
#: wake-ups (32 px, batch 64: 1 thread 340 img/s, 2 threads 270, 2-core EPYC; benchmarks/RESULTS.md).
SMALL_WORK_PIXELS = 1 << 19


def default_threads(image_size: int | None = None, micro_batch: int | None = None) -> int:
    """CPU threads for one training process: the cores it may use, split over the local DDP processes;
    one thread when a micro-batch is too small to share (``micro_batch * image_size**2 < SMALL_WORK_PIXELS``)."""
    cores = max(1, available_cores() // dist_env().local_world_size)
    if image_size and micro_batch and micro_batch * image_size**2 < SMALL_WORK_PIXELS:
        return 1
    return cores
