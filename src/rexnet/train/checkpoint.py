"""Training checkpoints: the format lives in :mod:`rexnet.weights.training`; the RNG state helpers here.

A checkpoint is one dict (weights, optimiser, scheduler, scaler, EMA, RNG, progress, history,
config), written atomically and read back weights-only (never plain pickle).
"""

from __future__ import annotations

import random
from typing import Any

import torch

from ..weights.training import TRAINING_FORMAT as FORMAT
from ..weights.training import read_training_checkpoint as load_checkpoint
from ..weights.training import save_training_checkpoint as save_checkpoint

__all__ = ["FORMAT", "save_checkpoint", "load_checkpoint", "rng_state", "set_rng_state"]


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
