"""torchrun/DDP plumbing: process-group setup from the environment and a few collectives.

Start-up never hangs: the variables torchrun sets (``WORLD_SIZE``, ``RANK``, ``LOCAL_RANK``,
``MASTER_ADDR``, ``MASTER_PORT``) are checked first, and joining the group waits at most
``REXNET_DIST_TIMEOUT`` seconds (default 60) for the peers, then fails naming what it found.
"""

from __future__ import annotations

import datetime
import math
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist

from .._env import dist_env, env_str
from ..errors import InputError, WaitTimeoutError

__all__ = [
    "DistInfo",
    "init_distributed",
    "dist_timeout",
    "all_reduce_sum",
    "all_gather_objects",
    "average_buffers",
    "DEFAULT_DIST_TIMEOUT",
]

#: Seconds to wait for the other processes at start-up (``REXNET_DIST_TIMEOUT`` overrides it).
DEFAULT_DIST_TIMEOUT = 60.0
_VARS = ("WORLD_SIZE", "RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")


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


def dist_timeout() -> float:
    """Seconds to wait for the peers at start-up: ``REXNET_DIST_TIMEOUT``, else :data:`DEFAULT_DIST_TIMEOUT`.

    Raises:
        InputError: A value that is not a positive finite number.
    """
    raw = env_str("REXNET_DIST_TIMEOUT")
    if raw is None:
        return DEFAULT_DIST_TIMEOUT
    try:
        value = float(raw)
    except ValueError:
        value = float("nan")
    if not (math.isfinite(value) and value > 0):
        raise InputError(f"environment variable REXNET_DIST_TIMEOUT={raw!r} must be a positive number of seconds")
    return value


def _found() -> str:
    return ", ".join(f"{k}={env_str(k)}" if env_str(k) is not None else f"{k} unset" for k in _VARS)


def init_distributed(device: str = "auto") -> DistInfo:
    """Join the process group that ``torchrun`` describes (``RANK``/``WORLD_SIZE``), once.

    Uses NCCL when CUDA is used, else gloo. Without torchrun's variables this is a no-op.

    Raises:
        InputError: A variable that is not an integer, a rank outside the world, or no ``MASTER_ADDR``
            / ``MASTER_PORT`` (e.g. ``WORLD_SIZE`` left in the environment without torchrun).
        WaitTimeoutError: The other processes did not join within :func:`dist_timeout` seconds.
    """
    env = dist_env()  # WORLD_SIZE, RANK, LOCAL_RANK checked: a bad value is a ConfigError naming it
    if dist.is_available() and dist.is_initialized():
        return DistInfo(dist.get_rank(), dist.get_world_size(), env.local_rank)
    if not env.distributed:
        return DistInfo()
    local_rank = env.local_rank
    missing = [k for k in ("MASTER_ADDR", "MASTER_PORT") if env_str(k) is None]
    if missing:
        raise InputError(
            f"distributed run asked for ({_found()}) but {' and '.join(missing)} not set: start it with torchrun, "
            "or unset WORLD_SIZE and RANK for one process"
        )
    timeout = dist_timeout()
    use_cuda = torch.cuda.is_available() and device != "cpu"
    if use_cuda:
        torch.cuda.set_device(local_rank)
    try:
        dist.init_process_group(backend="nccl" if use_cuda else "gloo", timeout=datetime.timedelta(seconds=timeout))
    except (RuntimeError, ValueError) as e:  # DistStoreError / DistNetworkError are RuntimeErrors
        raise WaitTimeoutError(
            f"distributed start-up failed or timed out after {timeout:g} s ({_found()}): {str(e).splitlines()[0]}. "
            "Are the other processes running? Set REXNET_DIST_TIMEOUT to wait longer, or unset WORLD_SIZE and RANK"
        ) from None
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
