"""torchrun/DDP plumbing: process-group setup from the environment and a few collectives."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist

from .._env import dist_env

__all__ = ["DistInfo", "init_distributed", "all_reduce_sum", "all_gather_objects", "average_buffers"]


@dataclass(frozen=True)
class DistInfo:
    """Rank, world size and local rank; ``is_main`` gates logging and checkpoints."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def init_distributed(device: str = "auto") -> DistInfo:
    """Join the process group that ``torchrun`` describes (``RANK``/``WORLD_SIZE``), once.

    Uses NCCL when CUDA is used, else gloo. Without torchrun's variables this is a no-op.
    """
    env = dist_env()  # WORLD_SIZE, RANK, LOCAL_RANK checked: a bad value is a ConfigError naming it
    if dist.is_available() and dist.is_initialized():
        return DistInfo(dist.get_rank(), dist.get_world_size(), env.local_rank)
    if not env.distributed:
        return DistInfo()
    local_rank = env.local_rank
    use_cuda = torch.cuda.is_available() and device != "cpu"
    if use_cuda:
        torch.cuda.set_device(local_rank)
    dist.init_process_group(backend="nccl" if use_cuda else "gloo")
    return DistInfo(dist.get_rank(), dist.get_world_size(), local_rank)


def all_reduce_sum(t: torch.Tensor, info: DistInfo) -> torch.Tensor:
    """Sum ``t`` over processes (in place; returns it)."""
    if info.enabled:
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t


def all_gather_objects(obj: Any, info: DistInfo) -> list[Any]:
    """Every process's ``obj`` (a one-element list without DDP)."""
    if not info.enabled:
        return [obj]
    out: list[Any] = [None] * info.world_size
    dist.all_gather_object(out, obj)
    return out


@torch.no_grad()
def average_buffers(model: torch.nn.Module, info: DistInfo) -> None:
    """Average floating-point buffers (BN running statistics) over processes, so every rank
    evaluates the same network (timm's ``distribute_bn(reduce=True)``)."""
    if not info.enabled:
        return
    for b in model.buffers():
        if b.is_floating_point():
            dist.all_reduce(b, op=dist.ReduceOp.SUM)
            b.div_(info.world_size)
