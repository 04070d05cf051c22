"""The epoch loop every training job shares; a job brings its own steps (:class:`Steps`).

Each epoch: train (``None`` when a stop signal ended it early, after a mid-epoch checkpoint) ->
validate -> check that the weights and losses are finite -> close the epoch (history, best) ->
``metrics.jsonl`` -> ``checkpoints/last.pt`` (and ``best.pt``) -> the caller's hook -> stop if asked.
Classification (:func:`rexnet.train.fit`) and detection (:func:`rexnet.detection.fit_detector`)
differ only in their steps.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from ..errors import DivergedError
from .finite import check_finite
from .folder import Run
from .progress import StopFlag

__all__ = ["Steps", "run_epochs", "failure_status"]


class Steps(Protocol):
    """What a job supplies to :func:`run_epochs`; ``state`` has at least ``epoch`` (epochs completed)."""

    def train_epoch(self, state: Any, stop: StopFlag) -> dict[str, Any] | None:
        """Train epoch ``state.epoch``; its metrics, or ``None`` when ``stop`` ended it early."""

    def validate(self, state: Any, train: dict[str, Any]) -> dict[str, Any]:
        """The epoch's metrics row (``epoch``, ``train_loss``, ``val_loss`` where there is one, ...)."""

    def end_epoch(self, state: Any, metrics: dict[str, Any]) -> bool:
        """Close the epoch in ``state`` (count, history, best); whether it is the best so far."""

    def weights(self, state: Any) -> Mapping[str, Any]:
        """The tensors that must stay finite (weights and buffers, the EMA's too)."""

    def checkpoint(self, state: Any) -> dict[str, Any]:
        """The checkpoint of ``state`` (its ``model`` entry is checked again before writing)."""

    def stop_requested(self, stop: StopFlag) -> bool:
        """Whether any process asked to stop (a collective under DDP: every rank calls it)."""


def run_epochs(
    run: Run,
    steps: Steps,
    state: Any,
    epochs: int,
    on_epoch_end: Callable[[int, dict[str, Any]], None] | None = None,
) -> str:
    """Train ``state`` up to ``epochs`` completed epochs; ``completed`` or ``interrupted``.

    Raises:
        DivergedError: A loss, a validation loss or a weight became NaN/inf; nothing non-finite was
            saved (the last finite checkpoint stays).
    """
    with StopFlag() as stop:
        while state.epoch < epochs:
            t0 = time.time()
            train = steps.train_epoch(state, stop)
            if train is None:  # stopped mid-epoch; last.pt holds the place
                return "interrupted"
            metrics = steps.validate(state, train)
            metrics["seconds"] = time.time() - t0
            where = f"in epoch {state.epoch + 1}"
            losses = {k: v for k, v in metrics.items() if k.endswith("loss")}
            check_finite(where, steps.weights(state), **losses)
            best = steps.end_epoch(state, metrics)
            run.log_epoch(metrics)
            run.save_checkpoint(steps.checkpoint(state), "last.pt", where=where)
            if best:
                run.copy_checkpoint("last.pt", "best.pt")
            if on_epoch_end is not None:
                on_epoch_end(state.epoch, dict(metrics))
            if steps.stop_requested(stop):
                return "interrupted" if state.epoch < epochs else "completed"
    return "completed"


def failure_status(e: BaseException) -> str:
    """The ``status`` a summary records for a run that raised ``e``."""
    if isinstance(e, DivergedError):
        return "diverged"
    if isinstance(e, KeyboardInterrupt):
        return "interrupted"
    return f"failed: {type(e).__name__}: {e}"
