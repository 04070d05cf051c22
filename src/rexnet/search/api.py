"""``rexnet.search.run``: one worker of a channel-configuration search (paper Sec. 4)."""

from __future__ import annotations

import dataclasses
import logging
import signal
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import optuna

from .._memory import check_training_memory
from ..errors import RexnetError
from .objective import Objective
from .space import SearchSpace
from .study import DEFAULT_STUDY, default_storage, make_sampler, open_storage, open_study, slot_counts
from .trainer import Trainer, fit_trainer, load_data
from .worker import work

__all__ = ["SearchResult", "run"]

_log = logging.getLogger(__name__)

Objectives = Literal["accuracy", "accuracy-macs"]


@dataclass(frozen=True)
class SearchResult:
    """What one :func:`run` call did and where the study stands."""

    study: str
    storage: str
    target_trials: int
    counts: dict[str, int]
    ran_here: dict[str, int]
    report: dict[str, str] | None

    @property
    def finished(self) -> int:
        """Slots done (COMPLETE + PRUNED) in the whole study."""
        return self.counts.get("COMPLETE", 0) + self.counts.get("PRUNED", 0)


@contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """Let ``kill PID`` stop a worker like Ctrl-C: its running trial is re-enqueued."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    old = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)


def run(
    out: str | Path,
    *,
    storage: str | None = None,
    study: str = DEFAULT_STUDY,
    blocks: int = 5,
    budget_macs: float | None = None,
    budget_params: float | None = None,
    tolerance: float = 0.03,
    trials: int = 20,
    epochs: int = 30,
    seeds: int = 3,
    data: str | None = "digits",
    image_size: int = 32,
    sampler: Literal["random", "tpe", "nsga2"] = "random",
    objectives: Objectives | None = None,
    prune: bool = False,
    seed: int | None = None,
    max_samples: int | None = None,
    val_samples: int | None = None,
    threads: int | None = 1,
    train_options: Mapping[str, Any] | None = None,
    heartbeat_interval: int = 10,
    grace_period: int | None = None,
    max_retry: int = 3,
    wait: bool = True,
    seed_rules: bool = True,
    trainer: Trainer | None = None,
    write_report: bool = True,
    max_memory: float | None = None,
) -> SearchResult:
    """Run one search worker: create or join the study, train its open slots, write the report.

    Every candidate is checked against the budget with the plan arithmetic (and rescaled to it)
    before any training. Start the same call in many processes or machines with one
    ``storage`` URL and ``study`` name to share the work; a stopped run resumes when started
    again, and ``trials`` larger than the study's count adds slots.

    Args:
        out: Run folder (SQLite database, ``trials.csv``, ``table3.md``, ``figure2.png``).
        storage: SQLAlchemy URL, e.g. ``postgresql://user@host/db``; ``None`` means
            ``sqlite:///OUT/search.db``.
        study: Study name shared by the workers.
        blocks: Number of inverted bottlenecks ``d``.
        budget_macs: MAC budget at ``image_size``; ``None`` takes the paper's (30 M/100 M/300 M
            for 5/9/13 blocks) unless ``budget_params`` is given.
        budget_params: Parameter budget, or ``None``.
        tolerance: Plans use between ``1 - tolerance`` and 1 of the binding budget.
        trials: Slots of the study (total finished trials wanted, not per worker).
        epochs: Epochs per seed (paper: 30).
        seeds: Seeds averaged per candidate (paper: 3).
        data: ``"digits"`` (embedded), a CIFAR-10/100 or ImageFolder directory, or ``None`` for
            no data (only with a custom ``trainer``).
        image_size: Proxy input size.
        sampler: ``random`` (default), ``tpe`` or ``nsga2``.
        objectives: ``accuracy`` or ``accuracy-macs`` (maximise accuracy, minimise MACs); ``None``
            means ``accuracy-macs`` for ``nsga2`` and ``accuracy`` otherwise.
        prune: Median-prune hopeless trials (single objective only).
        seed: Sampler seed (give each worker its own).
        max_samples: Cut the training set to this many samples (quick runs, tests, benchmarks).
        val_samples: Cut the validation split (which ranks the candidates) to this many samples;
            default a quarter of ``max_samples`` when that is given, else the whole split.
        threads: Torch threads per trial; the default 1 suits one worker per core (small models
            scale across workers far better than across threads); ``None`` keeps torch's.
        train_options: Extra ``TrainConfig`` fields.
        heartbeat_interval: Seconds between heartbeats of a running trial.
        grace_period: Seconds of silence before a trial is declared dead (default 3 beats).
        max_retry: Retries per slot after a crash or a dead worker.
        wait: Wait for other workers' running trials (to take over their retries) before exiting.
        seed_rules: Put MobileNetV2's staircase and ReXNet's line into slots 0 and 1.
        trainer: Replaces the default :func:`~rexnet.search.trainer.fit_trainer`.
        write_report: Write the report into ``out`` when no slot is left open.
        max_memory: Bytes one candidate's training may take (parameters, gradients, optimizer
            state, activations at the training batch size); default 80 % of the available
            memory. The budget's widest flat candidate is checked before the study starts, and
            every sampled candidate before it is built (refused ones are pruned as infeasible).

    Returns:
        The study's state after this worker stopped.

    Raises:
        BudgetError: The budget is below the smallest network (the message gives the minimum).
        ResourceError: A candidate at the budget would not fit in memory (the message gives the numbers).
        StudyMismatchError: The shared study was created with other settings.

    Example:
        >>> res = run("runs/s5", trials=4, epochs=1, seeds=1)  # doctest: +SKIP
        >>> res.finished  # doctest: +SKIP
        4
    """
    if trials < 1 or epochs < 1 or seeds < 1:
        raise RexnetError(f"trials, epochs and seeds must be >= 1, got {trials}, {epochs}, {seeds}")
    for what, n in (("max_samples", max_samples), ("val_samples", val_samples)):
        if n is not None and n < 1:
            raise RexnetError(f"{what} must be >= 1 (or None for all), got {n}")
    objectives = objectives or ("accuracy-macs" if sampler == "nsga2" else "accuracy")
    if objectives not in ("accuracy", "accuracy-macs"):
        raise RexnetError(f"unknown objectives {objectives!r}; expected one of: accuracy, accuracy-macs")
    multi = objectives == "accuracy-macs"
    if prune and multi:
        raise RexnetError("prune=True needs a single objective (objectives='accuracy'); Optuna cannot prune "
                          "multi-objective trials")
    options = _check_train_options(train_options)
    space = SearchSpace(blocks=blocks, budget_macs=budget_macs, budget_params=budget_params,
                        tolerance=tolerance, image_size=image_size)
    batch = int(options.get("batch_size", _default_batch()))

    def fits(plan: Any, what: str = "candidate") -> None:
        check_training_memory(plan, space.image_size, space.num_classes, batch, max_memory, what)

    # refuse impossible budgets, and budgets whose networks would not fit in memory, before loading anything
    fits(space.check_budget().plan, "the budget's flat candidate")
    bundle = None
    if data is not None:
        from ..train.config import TrainConfig
        from ..train.run import augment_from_config

        # the augmentation fields of train_options shape the data, which is built once for all trials
        augment = augment_from_config(TrainConfig().replace(**options))
        bundle = load_data(data, image_size, max_samples, val_samples, augment)
        space = dataclasses.replace(space, num_classes=int(bundle.num_classes))
        fits(space.check_budget().plan, "the budget's flat candidate")
    elif trainer is None:
        raise RexnetError("data=None needs a custom trainer")

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    url = storage or default_storage(out)
    rdb = open_storage(url, heartbeat_interval=heartbeat_interval, grace_period=grace_period, max_retry=max_retry)
    config = {"space": space.to_dict(), "epochs": epochs, "seeds": seeds, "objectives": objectives,
              "data": str(data), "sampler": sampler,
              "samples": {"train": max_samples, "val": val_samples}}
    directions = ["maximize", "minimize"] if multi else ["maximize"]
    pruner = optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=max(0, epochs // 3)) if prune \
        else optuna.pruners.NopPruner()
    st = open_study(rdb, study, config=config, target_trials=trials, sampler=make_sampler(sampler, seed, multi),
                    directions=directions, pruner=pruner, seed_rules=seed_rules)
    done = sum(n for state, n in slot_counts(st).items() if state in ("COMPLETE", "PRUNED", "FAIL"))
    if seed is not None and done:
        # a restarted or extended study must not replay the sampler's stream (it would repeat candidates)
        st.sampler = make_sampler(sampler, seed + done, multi)
        _log.info("study %r: %d trials already finished; sampler seed %d + %d", study, done, seed, done)
    objective = Objective(space, bundle, trainer or fit_trainer(options, threads), epochs=epochs,
                          seeds=seeds, multi_objective=multi, prune=prune, memory_check=fits)
    with _sigterm_as_interrupt():
        ran = work(st, rdb, objective, wait=wait, max_retry=max_retry)
    counts = slot_counts(st)
    paths = None
    if write_report and counts["WAITING"] == 0 and counts["RUNNING"] == 0 and counts["COMPLETE"] > 0:
        from .report import report

        paths = report(out, storage=url, study=study)
    _log.info("study %r: %s (this worker: %s)", study, counts, ran)
    return SearchResult(study, url, int(st.user_attrs["target_trials"]), counts, ran, paths)


def _default_batch() -> int:
    from ..train.config import TrainConfig

    return TrainConfig().batch_size


def _check_train_options(options: Mapping[str, Any] | None) -> dict[str, Any]:
    """``train_options`` as a dict of valid ``TrainConfig`` fields (checked before any work)."""
    if options is None:
        return {}
    if not isinstance(options, Mapping):
        raise RexnetError(f"train_options must be a mapping of TrainConfig fields (a JSON object), got "
                          f"{type(options).__name__} {options!r}")
    from ..train.config import TrainConfig

    TrainConfig().replace(**dict(options))  # unknown keys and bad values raise ConfigError here
    return dict(options)
