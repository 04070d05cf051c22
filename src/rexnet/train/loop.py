"""``fit``: classification training on the shared run machinery, in one sitting (nanoGPT style).

``fit`` builds the steps (:class:`~rexnet.train.steps.ClassifySteps`: data, device, DDP) and the
state (model, optimiser, schedule, EMA), restores a checkpoint when resuming, then runs the shared
epoch loop (:func:`rexnet.run.run_epochs`): train -> validate -> finite check -> ``metrics.jsonl``
-> ``checkpoints/last.pt`` / ``best.pt``. A SIGINT/SIGTERM finishes the current optimiser step,
saves a mid-epoch checkpoint and returns; ``resume`` continues from it exactly. A run whose loss or
weights become NaN/inf ends with status ``diverged`` and raises :class:`~rexnet.errors.DivergedError`;
its last finite checkpoint stays.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from typing import Any

import torch
from torch import nn
from torch.utils.data import Dataset

from .._env import dist_env
from ..errors import NonFiniteLossError
from ..run import Run, run_epochs
from ..run.loop import failure_status
from .config import TrainConfig
from .distributed import DistInfo, all_gather_objects
from .loaders import default_threads
from .outputs import plot_curves
from .state import TrainState
from .steps import ClassifySteps

__all__ = ["fit", "TrainState", "NonFiniteLossError", "default_threads"]

log = logging.getLogger(__name__)


def fit(
    model: nn.Module,
    train_set: Dataset,
    val_set: Dataset,
    cfg: TrainConfig,
    out_dir: str | os.PathLike | Run | None = None,
    on_epoch_end: Callable[[int, dict[str, Any]], None] | None = None,
    *,
    resume: bool | str | os.PathLike = False,
    class_names: list[str] | None = None,
    run_info: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Train ``model`` in place with the recipe in ``cfg``; validate after every epoch.

    Args:
        model: Any classifier; modified in place (use it after ``fit`` returns).
        train_set / val_set: Yield ``(image tensor, label)``; see :func:`rexnet.data.build_datasets`.
        cfg: Epochs, batch size (global), LR, seed, workers, precision, ... (:class:`TrainConfig`).
        out_dir: Run folder (config.json, metrics.jsonl, summary.json, checkpoints/, curves.png), or
            a :class:`~rexnet.run.Run` already opened on it; ``None`` writes nothing (in-memory trials).
            A folder given by path is opened here (run lock, kind ``train``).
        on_epoch_end: Called as ``on_epoch_end(epoch, metrics)`` (epoch from 1) on every process
            after validation and checkpointing; an exception it raises propagates (pruning).
        resume: ``True`` continues from ``out_dir/checkpoints/last.pt``, a path from that file.
            The LR schedule is the one ``cfg`` describes (e.g. more epochs), at the saved step.
        class_names: Names for per-class metrics and the checkpoint.
        run_info: Extra keys for ``config.json`` (e.g. ``resume_changes``).

    Returns:
        The last epoch's metrics (``val_top1``, ``val_top5`` in %, ``val_loss``, ...) plus
        ``best_top1``, ``best_epoch``, ``status`` (``completed`` or ``interrupted``),
        ``history`` and ``skipped_images``.

    Raises:
        DivergedError: The loss, the validation loss or a weight became NaN/inf (status ``diverged``;
            the last finite checkpoint is kept). ``NonFiniteLossError`` is the same class.
        CheckpointError: ``resume`` names a missing, truncated or foreign checkpoint.
        RunLockedError: Another live process holds ``out_dir``.
    """
    saved = (
        torch.get_num_threads(),
        torch.are_deterministic_algorithms_enabled(),
        torch.is_deterministic_algorithms_warn_only_enabled(),
        torch.backends.cudnn.benchmark,
    )
    try:
        if isinstance(out_dir, Run) or out_dir is None:
            run = out_dir if out_dir is not None else Run(None, "train")
            return _fit(model, train_set, val_set, cfg, run, on_epoch_end, resume, class_names, run_info)
        with Run(out_dir, "train", main=_is_main()).open(resume=bool(resume)) as run:
            return _fit(model, train_set, val_set, cfg, run, on_epoch_end, resume, class_names, run_info)
    finally:  # leave the process's global torch settings as we found them
        torch.set_num_threads(saved[0])
        torch.use_deterministic_algorithms(saved[1], warn_only=saved[2])
        torch.backends.cudnn.benchmark = saved[3]


def _is_main() -> bool:
    return dist_env().rank == 0


def _fit(
    model: nn.Module,
    train_set: Dataset,
    val_set: Dataset,
    cfg: TrainConfig,
    run: Run,
    on_epoch_end: Callable[[int, dict[str, Any]], None] | None,
    resume: bool | str | os.PathLike,
    class_names: list[str] | None,
    run_info: dict[str, Any] | None,
) -> dict[str, Any]:
    t_start = time.time()
    steps = ClassifySteps(model, train_set, val_set, cfg, run, class_names)
    state = steps.new_state(model)
    steps.restore(state, resume)
    run.reset_metrics(state.history, tensorboard=cfg.tensorboard)
    run.write_config(
        {
            **cfg.to_dict(),
            "world_size": steps.info.world_size,
            "device": str(steps.device),
            "class_names": class_names,
            **steps.sizes,
            **(run_info or {}),
        }
    )
    steps.wrap(state.model)
    status = "completed"
    try:
        status = run_epochs(run, steps, state, cfg.epochs, on_epoch_end)
    except BaseException as e:
        status = failure_status(e)
        raise
    finally:
        summary = _finish(steps, run, state, status, time.time() - t_start)
    return {**summary, "history": state.history}


def _finish(steps: ClassifySteps, run: Run, state: TrainState, status: str, seconds: float) -> dict[str, Any]:
    """``summary.json``, ``curves.png`` and the skipped-image report; returns the summary."""
    # gather skipped files from all ranks only on a clean exit (a collective could hang otherwise)
    info = steps.info
    skipped = _dedupe(steps.skipped, info if status in ("completed", "interrupted") else DistInfo())
    last = state.history[-1] if state.history else {}
    summary = dict(
        status=status,
        **last,
        best_top1=state.best["top1"],
        best_epoch=state.best["epoch"],
        epochs_completed=len(state.history),
        total_seconds=seconds,
        skipped_images=[{"path": p, "reason": r} for p, r in skipped],
        model=getattr(state.model, "model_name", steps.cfg.model),
        data=steps.cfg.data,
        num_classes=steps.num_classes,
        world_size=info.world_size,
        device=str(steps.device),
        torch=torch.__version__,
        threads=torch.get_num_threads(),
        **steps.time_report(seconds),
    )
    if info.is_main:
        run.write_json("summary.json", summary)
        if state.history:
            run.plot("curves.png", lambda path: plot_curves(state.history, path, num_classes=steps.num_classes))
        if skipped:
            log.warning(
                "skipped %d unreadable image(s):\n  %s", len(skipped), "\n  ".join(f"{p} ({r})" for p, r in skipped)
            )
    return summary


def _dedupe(skipped: list[tuple[str, str]], info: DistInfo) -> list[tuple[str, str]]:
    if info.enabled:
        skipped = [s for part in all_gather_objects(skipped, info) for s in part]
    seen: dict[str, str] = {}
    for p, r in skipped:
        seen.setdefault(p, r)
    return sorted(seen.items())
