"""``rexnet.search.run``: one worker of a channel-configuration search (paper Sec. 4)."""

from __future__ import annotations

import dataclasses
import logging
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna

from .._config import ConfigError
from .._memory import check_training_memory
from ..errors import BudgetError
from ..run import Run
from .config import SearchConfig
from .latency import check_cpu, measure_references, measurer
from .objective import Objective
from .space import SearchSpace
from .study import default_storage, make_sampler, open_storage, open_study, slot_counts
from .trainer import Trainer, fit_trainer, load_data, train_config
from .worker import work

__all__ = ["SearchConfig", "SearchResult", "run"]

_log = logging.getLogger(__name__)

#: ``fits(plan, what)``: raise :class:`~rexnet.errors.ResourceError` when training ``plan`` would not fit.
MemoryCheck = Callable[..., None]


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
    config: SearchConfig | None = None,
    *,
    trainer: Trainer | None = None,
    write_report: bool = True,
    **overrides: Any,
) -> SearchResult:
    """Run one search worker: create or join the study, train its open slots, write the report.

    Every candidate is checked against the budget with the plan arithmetic (and rescaled to it)
    before any training. Start the same call in many processes or machines with one ``storage``
    URL and ``study`` name to share the work; a stopped run resumes when started again, and
    ``trials`` larger than the study's count adds slots.

    Args:
        out: Run folder (SQLite database, ``trials.csv``, ``table3.md``, ``figure2.png``).
        config: The settings (default: :class:`SearchConfig`'s defaults).
        trainer: Replaces the default :func:`~rexnet.search.trainer.fit_trainer`.
        write_report: Write the report into ``out`` when no slot is left open.
        **overrides: :class:`SearchConfig` fields applied over ``config`` (``trials=4, epochs=1``).

    Returns:
        The study's state after this worker stopped.

    Raises:
        ConfigError: An unknown option or a bad value.
        BudgetError: The budget is below the smallest network (the message gives the minimum).
        ResourceError: A candidate at the budget would not fit in memory (the message gives the numbers).
        StudyMismatchError: The shared study was created with other settings.

    Example:
        >>> res = run("runs/s5", trials=4, epochs=1, seeds=1)  # doctest: +SKIP
        >>> res.finished  # doctest: +SKIP
        4
    """
    cfg = (config or SearchConfig()).replace(**overrides)
    # impossible budgets, and budgets whose networks would not fit in memory, are refused before anything is loaded
    space, bundle, fits = _space_and_data(cfg, trainer)
    out = Path(out)
    # workers of one search share its folder (the lock is shared); another kind of run there is refused
    with Run(out, "search", shared=True).open(resume=True):
        url = cfg.storage or default_storage(out)
        rdb = open_storage(
            url, heartbeat_interval=cfg.heartbeat_interval, grace_period=cfg.grace_period, max_retry=cfg.max_retry
        )
        st = _open_study(cfg, rdb, space)
        measure = measurer(cfg, space.image_size, space.num_classes)
        if measure is not None:
            # each worker times on its own CPU: one study, one CPU model unless --mixed-cpus
            check_cpu(st, cfg.mixed_cpus)
            if cfg.latency_references:
                measure_references(st, measure, cfg.latency_references)
        objective = Objective(
            space,
            bundle,
            trainer or fit_trainer(dict(cfg.train_options or {}), cfg.threads),
            epochs=cfg.epochs,
            seeds=cfg.seeds,
            multi_objective=cfg.multi_objective,
            prune=cfg.prune,
            memory_check=fits,
            latency=measure,
            budget_latency=cfg.budget_latency,
            minimise="latency" if cfg.objective == "accuracy-latency" else "macs",
        )
        with _sigterm_as_interrupt():
            ran = work(st, rdb, objective, wait=cfg.wait, max_retry=cfg.max_retry)
        counts = slot_counts(st)
        paths = None
        if write_report and counts["WAITING"] == 0 and counts["RUNNING"] == 0 and counts["COMPLETE"] > 0:
            from .report import write_search_report

            paths = write_search_report(out, storage=url, study=cfg.study)  # the run folder is held here
        _log.info("study %r: %s (this worker: %s)", cfg.study, counts, ran)
        return SearchResult(cfg.study, url, int(st.user_attrs["target_trials"]), counts, ran, paths)


def _space_and_data(cfg: SearchConfig, trainer: Trainer | None) -> tuple[SearchSpace, Any, MemoryCheck]:
    """The space (with the data's class count), the data (built once for all trials) and the memory check."""
    space = cfg.space()
    batch = cfg.train_batch()

    def fits(plan: Any, what: str = "candidate") -> None:
        check_training_memory(plan, space.image_size, space.num_classes, batch, cfg.max_memory, what)

    fits(space.check_budget().plan, "the budget's flat candidate")
    if space.macs_fractions:  # the smallest sampled budget must hold a network too
        try:
            space.smallest().check_budget()
        except BudgetError as e:
            raise BudgetError(f"--macs-fractions {min(space.macs_fractions):g} of the MAC budget: {e}") from None
    if cfg.data is None:
        if trainer is None:
            raise ConfigError("data=None needs a custom trainer")
        return space, None, fits
    # the augmentation fields of train_options shape the data
    augment = train_config(cfg.train_options).aug
    bundle = load_data(cfg.data, cfg.image_size, cfg.max_samples, cfg.val_samples, augment)
    space = dataclasses.replace(space, num_classes=int(bundle.num_classes))
    fits(space.check_budget().plan, "the budget's flat candidate")
    return space, bundle, fits


def _open_study(cfg: SearchConfig, rdb: Any, space: SearchSpace) -> optuna.Study:
    """Create or join the study; a restarted or extended one gets a fresh sampler stream."""
    multi = cfg.multi_objective
    pruner = (
        optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=max(0, cfg.epochs // 3))
        if cfg.prune
        else optuna.pruners.NopPruner()
    )
    st = open_study(
        rdb,
        cfg.study,
        config=cfg.study_attrs(space),
        target_trials=cfg.trials,
        sampler=make_sampler(cfg.sampler, cfg.seed, multi),
        directions=["maximize", "minimize"] if multi else ["maximize"],
        pruner=pruner,
        seed_rules=cfg.seed_rules,
    )
    done = sum(n for state, n in slot_counts(st).items() if state in ("COMPLETE", "PRUNED", "FAIL"))
    if cfg.seed is not None and done:
        # replaying the sampler's stream would repeat candidates
        st.sampler = make_sampler(cfg.sampler, cfg.seed + done, multi)
        _log.info("study %r: %d trials already finished; sampler seed %d + %d", cfg.study, done, cfg.seed, done)
    return st
