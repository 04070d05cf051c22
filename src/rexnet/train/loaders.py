"""Training and evaluation loaders, and the CPU thread default that goes with their batch size."""

from __future__ import annotations

from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset

from .._env import available_cores, dist_env
from ..data.batched import CachedEvalLoader, TensorBatchLoader, tensor_source
from ..data.folder import collate_skipping
from ..errors import InputError
from .config import TrainConfig
from .sampling import EpochSampler, SeededView

__all__ = ["default_threads", "train_loader", "eval_loader", "SMALL_WORK_PIXELS"]


def _loader(ds: Dataset, batch: int, cfg: TrainConfig, device: torch.device, sampler: Any = None) -> DataLoader:
    return DataLoader(
        ds,
        batch_size=batch,
        sampler=sampler,
        shuffle=False,
        num_workers=cfg.workers,
        collate_fn=collate_skipping,
        pin_memory=device.type == "cuda",
        persistent_workers=cfg.workers > 0 and sampler is not None,
        prefetch_factor=4 if cfg.workers > 0 else None,
        generator=torch.Generator(),
    )  # own generator: the global RNG stays the model's


def train_loader(ds: Dataset, batch: int, cfg: TrainConfig, device: torch.device, sampler: EpochSampler) -> Any:
    """Batched in-memory augmentation where the data allows it (see ``cfg.aug_backend``), else a DataLoader."""
    src = tensor_source(ds) if cfg.aug_backend != "per-sample" else None
    augment = getattr(src[0], "batch_transform", None) if src is not None else None
    if augment is None:
        if cfg.aug_backend == "batched":
            raise InputError(
                "aug_backend='batched' needs an in-memory dataset (digits, shapes, fashion-mnist, "
                "mnist, cifar) and no RandAugment (randaug_n=0); use aug_backend='auto'"
            )
        return _loader(SeededView(ds, cfg.seed), batch, cfg, device, sampler)
    base, index = src  # type: ignore[misc]
    return TensorBatchLoader(base.images[index], base.labels[index], sampler, batch, augment, cfg.seed)


_EVAL_CACHE_BYTES = 1 << 30  # cache evaluation tensors up to 1 GiB; larger sets stream per image


def eval_loader(ds: Dataset, batch: int, cfg: TrainConfig, device: torch.device) -> Any:
    """Cached tensors for a small in-memory validation set, else a DataLoader."""
    src = tensor_source(ds)
    if src is not None and cfg.aug_backend != "per-sample":
        c, size = 3, cfg.image_size
        if len(ds) * c * size * size * 4 <= _EVAL_CACHE_BYTES:  # type: ignore[arg-type]
            return CachedEvalLoader(ds, batch)
    return _loader(ds, batch, cfg, device)


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
