"""The training-checkpoint format: one dict (weights, optimiser, scheduler, scaler, EMA, RNG, progress,
history, config, plan), written atomically and read back weights-only (never plain pickle).

``rexnet.train`` writes and resumes from it; :func:`rexnet.zoo.load_model` reads a model from it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ..errors import CheckpointError
from .io import atomic_torch_save, safe_torch_load

__all__ = ["TRAINING_FORMAT", "save_training_checkpoint", "read_training_checkpoint", "is_training_checkpoint"]

#: The ``format`` field of every training checkpoint.
TRAINING_FORMAT = "rexnet.train/1"
_REQUIRED = ("model", "optimizer", "scheduler", "epoch", "step_in_epoch", "history", "config")


def save_training_checkpoint(state: dict[str, Any], path: str | os.PathLike) -> Path:
    """Write ``state`` (plus the format tag) to ``path`` atomically: a crash leaves the old file."""
    return atomic_torch_save({"format": TRAINING_FORMAT, **state}, path)


def read_training_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
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
    if not isinstance(obj, dict) or obj.get("format") != TRAINING_FORMAT:
        found = obj.get("format") if isinstance(obj, dict) else type(obj).__name__
        raise CheckpointError(
            f"{path} is not a rexnet training checkpoint (format {found!r}, expected {TRAINING_FORMAT!r})"
        )
    missing = [k for k in _REQUIRED if k not in obj]
    if missing:
        raise CheckpointError(f"{path} lacks {', '.join(missing)}; incomplete training checkpoint")
    return obj


def is_training_checkpoint(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a ``.pt``/``.pth`` file in :data:`TRAINING_FORMAT` (a cheap look, no error raised)."""
    path = Path(path)
    if path.suffix == ".safetensors" or not path.is_file():
        return False
    try:
        obj = safe_torch_load(path, mmap=True)
    except CheckpointError:
        return False
    return isinstance(obj, dict) and obj.get("format") == TRAINING_FORMAT
