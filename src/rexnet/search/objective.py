"""The Optuna objective: trial -> plan (:func:`~rexnet.search.space.trial_plan`) -> k trained seeds."""

from __future__ import annotations

import logging
import statistics
from collections.abc import Callable, Mapping
from typing import Any

import optuna

from ..errors import ResourceError
from .latency import latency_attrs
from .space import OutOfToleranceError, SearchSpace, trial_plan
from .trainer import Trainer

__all__ = ["Objective"]

_log = logging.getLogger(__name__)


class Objective:
    """Train one candidate for ``epochs`` epochs with ``seeds`` seeds and return the mean accuracy.

    Per-epoch accuracies are reported at step ``seed * epochs + epoch`` (single objective), so
    every trial's step ``s`` means the same amount of training and Optuna's pruners compare like
    with like; with pruning on, a hopeless trial stops at the first pruned step.

    Args:
        space: The search space (budget, blocks, input size).
        data: The proxy dataset bundle (``.train``, ``.val``, ``.num_classes``).
        trainer: Trains one plan with one seed (see :mod:`rexnet.search.trainer`).
        epochs: Epochs per seed (paper: 30).
        seeds: Seeds averaged per candidate (paper: 3).
        multi_objective: Return ``(accuracy, MACs)`` (or ``(accuracy, latency ms)`` with
            ``minimise="latency"``) instead of the accuracy.
        prune: Ask the study's pruner after every reported epoch.
        base_seed: Seed of the first run; run ``s`` uses ``base_seed + s``.
        memory_check: Called with each candidate's plan before it is built; a
            :class:`~rexnet.errors.ResourceError` it raises prunes the trial as infeasible.
        latency: ``latency(plan) -> Latency``, called before training (see
            :func:`rexnet.search.latency.measurer`); its median and spread become trial attributes.
        budget_latency: Milliseconds; a candidate whose median latency is above it is pruned untrained.
        minimise: The second objective when ``multi_objective``: ``macs`` or ``latency``.
    """

    def __init__(
        self,
        space: SearchSpace,
        data: Any,
        trainer: Trainer,
        *,
        epochs: int,
        seeds: int,
        multi_objective: bool = False,
        prune: bool = False,
        base_seed: int = 0,
        memory_check: Callable[[Any], Any] | None = None,
        latency: Callable[[Any], Any] | None = None,
        budget_latency: float | None = None,
        minimise: str = "macs",
    ) -> None:
        if (budget_latency is not None or minimise == "latency") and latency is None:
            raise ValueError("a latency budget or objective needs a latency function")  # a bug in the caller
        self.latency, self.budget_latency, self.minimise = latency, budget_latency, minimise
        self.space, self.data, self.trainer = space, data, trainer
        self.memory_check = memory_check
        self.epochs, self.seeds = epochs, seeds
        self.multi_objective, self.prune, self.base_seed = multi_objective, prune, base_seed

    def __call__(self, trial: optuna.Trial) -> float | tuple[float, float]:
        try:
            plan, info = trial_plan(trial, self.space)
        except OutOfToleranceError as e:  # rare: rounding jumps over the tolerance band
            trial.set_user_attr("infeasible", str(e))
            raise optuna.TrialPruned(str(e)) from None
        for key, value in info.items():
            trial.set_user_attr(key, value)
        if self.memory_check is not None:
            try:
                self.memory_check(plan)
            except ResourceError as e:  # refused before it is built
                trial.set_user_attr("infeasible", str(e))
                raise optuna.TrialPruned(str(e)) from None
        _log.info(
            "trial %d: channels %s, %.2f M MACs, %.3f M params",
            trial.number,
            "-".join(map(str, info["channels"])),
            info["macs"] / 1e6,
            info["params"] / 1e6,
        )
        cost = float(info["macs"])
        if self.latency is not None:
            ms = self._time(trial, plan)
            if self.minimise == "latency":
                cost = ms

        curves: list[list[float]] = []
        finals: list[float] = []
        seed_stats: dict[str, list[float]] = {}  # extra per-seed statistics a trainer returns
        for s in range(self.seeds):
            curve: list[float] = []
            curves.append(curve)

            def on_epoch_end(epoch: int, acc: float, _s: int = s, _curve: list[float] = curve) -> None:
                _curve.append(float(acc))
                trial.set_user_attr("val_curves", curves)
                if self.multi_objective:
                    return
                trial.report(float(acc), _s * self.epochs + len(_curve) - 1)
                if self.prune and trial.should_prune():
                    raise optuna.TrialPruned(f"pruned at seed {_s}, epoch {len(_curve) - 1} (accuracy {acc:.2f})")

            out = self.trainer(plan, self.data, epochs=self.epochs, seed=self.base_seed + s, on_epoch_end=on_epoch_end)
            if isinstance(out, Mapping):
                finals.append(float(out["accuracy"]))
                for key, value in out.items():
                    if key != "accuracy":
                        seed_stats.setdefault(key, []).append(float(value))
            else:
                finals.append(float(out))
        trial.set_user_attr("val_curves", curves)
        trial.set_user_attr("seed_accuracies", finals)
        if seed_stats:
            trial.set_user_attr("seed_stats", seed_stats)
        accuracy = statistics.fmean(finals)
        return (accuracy, cost) if self.multi_objective else accuracy

    def _time(self, trial: optuna.Trial, plan: Any) -> float:
        """Measure the candidate on this worker's CPU, before any training; prune it when over the budget."""
        lat = self.latency(plan)  # type: ignore[misc]
        for key, value in latency_attrs(lat).items():
            trial.set_user_attr(key, value)
        if self.budget_latency is not None and lat.median_ms > self.budget_latency:
            msg = f"latency {lat.median_ms:.3f} ms is over the budget {self.budget_latency:g} ms"
            trial.set_user_attr("infeasible", msg)
            raise optuna.TrialPruned(msg)
        return float(lat.median_ms)
