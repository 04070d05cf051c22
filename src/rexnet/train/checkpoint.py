"""Training checkpoints: one dict (weights, optimiser, scheduler, scaler, EMA, RNG, progress,
history, config), written atomically and read back weights-only (never plain pickle)."""

from __future__ import annotations

import os
import pickle
import random
from pathlib import Path
from typing import Any

import torch

from ..errors import CheckpointError
from ..weights import atomic_torch_save

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
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        raise CheckpointError(
            f"refused to load {path}: it is not a weights-only checkpoint (loading it would execute code). "
            f"Detail: {str(e).splitlines()[0]}"
        ) from e
    except (RuntimeError, EOFError, OSError, ValueError) as e:
        size = path.stat().st_size
        raise CheckpointError(
            f"cannot read {path} ({size:,} bytes): truncated or corrupt checkpoint ({str(e).splitlines()[0]}); "
            "delete it or resume from another checkpoint"
        ) from e
    if not isinstance(obj, dict) or obj.get("format") != FORMAT:
        found = obj.get("format") if isinstance(obj, dict) else type(obj).__name__
        raise CheckpointError(f"{path} is not a rexnet training checkpoint (format {found!r}, expected {FORMAT!r})")
    missing = [k for k in _REQUIRED if k not in obj]
    if missing:
        raise CheckpointError(f"{path} lacks {', '.join(missing)}; incomplete training checkpoint")
    return obj
