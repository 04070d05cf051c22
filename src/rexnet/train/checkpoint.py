"""Training checkpoints: one dict (weights, optimiser, scheduler, scaler, EMA, RNG, progress,
history, config), written atomically and read back weights-only (never plain pickle)."""

from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any

import torch

from ..errors import CheckpointError
from ..weights.io import atomic_torch_save, safe_torch_load

__all__ = ["FORMAT", "save_checkpoint", "load_checkpoint", "rng_state", "set_rng_state"]

FORMAT = "rexnet.train/1"
_REQUIRED = ("model", "optimizer", "scheduler", "epoch", "step_in_epoch", "history", "config")


def rng_state() -> dict[str, Any]:
    """torch (CPU and CUDA) and Python RNG states, in weights-only-loadable types."""
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "python": random.getstate(),
    }


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what :func:`rng_state` captured."""
    torch.set_rng_state(state["torch"])
    if state.get("cuda") and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state["cuda"])
    py = state.get("python")
    if py is not None:
        random.setstate((py[0], tuple(py[1]), py[2]))


def save_checkpoint(state: dict[str, Any], path: str | os.PathLike) -> Path:
    """Write ``state`` to ``path`` atomically (temp file + rename): a crash leaves the old file."""
    return atomic_torch_save({"format": FORMAT, **state}, path)


def load_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """Read a training checkpoint with ``torch.load(weights_only=True)``.

    Raises:
        CheckpointError: Missing, truncated or corrupt file, an unsafe pickle, or a file that is
            not a rexnet training checkpoint (the message says which).
    """
    path = Path(path)
    try:
        obj = safe_torch_load(path)
    except CheckpointError as e:
        if "truncated or corrupt" not in str(e):
            raise
        raise CheckpointError(f"{e}; delete it or resume from another checkpoint") from e
    if not isinstance(obj, dict) or obj.get("format") != FORMAT:
        found = obj.get("format") if isinstance(obj, dict) else type(obj).__name__
        raise CheckpointError(f"{path} is not a rexnet training checkpoint (format {found!r}, expected {FORMAT!r})")
    missing = [k for k in _REQUIRED if k not in obj]
    if missing:
        raise CheckpointError(f"{path} lacks {', '.join(missing)}; incomplete training checkpoint")
    return obj
