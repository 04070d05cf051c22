"""Storage and study set-up: one study shared by any number of workers, with a fixed set of slots.

A study holds ``target_trials`` *slots*: trials enqueued in state WAITING when the study is created
(slot 0 is MobileNetV2's staircase, slot 1 ReXNet's line, the rest are sampled when a worker picks
them up). Workers only ever claim WAITING trials (an atomic state change in the database), never
create new ones, so N slots give exactly N finished trials however many workers share them.
A killed worker's RUNNING trial stops beating; after the grace period any worker marks it FAIL and
:class:`optuna.storages.RetryHeartbeatStaleTrialCallback` re-enqueues it (same slot and parameters).
"""

from __future__ import annotations

import functools
import logging
import sqlite3
import time
import typing
import warnings
from pathlib import Path
from typing import Any

import optuna
from optuna.exceptions import DuplicatedStudyError, ExperimentalWarning
from optuna.storages import BaseStorage, RDBStorage, RetryHeartbeatStaleTrialCallback
from optuna.trial import TrialState

from ..errors import InputError, StudyMismatchError
from .config import DEFAULT_STUDY, Sampler
from .space import linear_params, staircase_params

__all__ = [
    "DEFAULT_STUDY",
    "SAMPLERS",
    "StudyMismatchError",
    "database_url",
    "default_storage",
    "make_sampler",
    "open_storage",
    "open_study",
    "slot_counts",
]

_log = logging.getLogger(__name__)

SAMPLERS: tuple[str, ...] = typing.get_args(Sampler)
# Keys of the study's stored config that every joining worker must match.
_MUST_MATCH = ("space", "epochs", "seeds", "objectives")
# Checked only when the study recorded them (studies created before they were stored still open).
_MUST_MATCH_IF_RECORDED = ("data", "samples")
# Absent means None: a latency worker may not join a study without latency, nor the other way round.
_MUST_MATCH_ABSENT_NONE = ("latency",)


def default_storage(out: str | Path) -> str:
    """``sqlite:///OUT/search.db`` - the embedded default storage of a run folder."""
    return f"sqlite:///{Path(out).resolve() / 'search.db'}"


def database_url(url: str) -> str:
    """``postgresql://`` -> ``postgresql+psycopg2://`` when only psycopg2 is installed (SQLAlchemy >= 2.1
    defaults to psycopg 3)."""
    if not url.startswith(("postgresql://", "postgres://")):
        return url
    try:
        import psycopg  # noqa: F401

        return url
    except ImportError:
        return "postgresql+psycopg2://" + url.split("://", 1)[1]


def _sqlite_connect(path: str) -> sqlite3.Connection:
    """SQLite in WAL mode without a sync per commit: trials write many small attributes."""
    conn = sqlite3.connect(path, timeout=60, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    return conn


def open_storage(
    url: str, *, heartbeat_interval: int = 10, grace_period: int | None = None, max_retry: int = 3, attempts: int = 5
) -> BaseStorage:
    """An RDB storage (SQLite file or any SQLAlchemy URL, e.g. ``postgresql://...``) with heartbeats.

    Returned wrapped in Optuna's trial cache (``optuna.storages.get_storage``), the object studies
    use; workers must claim and update trials through this same object.

    Args:
        url: SQLAlchemy database URL.
        heartbeat_interval: Seconds between a running trial's heartbeats.
        grace_period: Seconds without a heartbeat before a trial counts as dead (default 3 beats).
        max_retry: How often one slot is retried after its worker died or it raised.
        attempts: Connection attempts (workers starting together race to create the tables).
    """
    url = database_url(url)
    engine_kwargs: dict[str, Any] = {"pool_pre_ping": True}
    if url.startswith("sqlite:///") and len(url) > len("sqlite:///"):
        engine_kwargs["creator"] = functools.partial(_sqlite_connect, url[len("sqlite:///") :])
    last: Exception | None = None
    for i in range(attempts):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ExperimentalWarning)
                return optuna.storages.get_storage(
                    RDBStorage(
                        url,
                        engine_kwargs=engine_kwargs,
                        heartbeat_interval=heartbeat_interval,
                        grace_period=grace_period or 3 * heartbeat_interval,
                        heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(max_retry=max_retry),
                    )
                )
        except ImportError as e:
            raise InputError(f"storage {url!r}: database driver missing ({e})") from e
        except Exception as e:  # noqa: BLE001 - concurrent table creation; retry
            last = e
            time.sleep(0.5 * (i + 1))
    raise InputError(f"cannot open storage {url!r}: {last}")


def make_sampler(name: str, seed: int | None, multi_objective: bool) -> optuna.samplers.BaseSampler:
    """``random`` (the paper's protocol as far as known), ``tpe`` or ``nsga2``."""
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if name == "tpe":
        return optuna.samplers.TPESampler(seed=seed, n_startup_trials=10)
    if name == "nsga2":
        return optuna.samplers.NSGAIISampler(seed=seed, population_size=20)
    raise InputError(f"unknown sampler {name!r}; expected one of: {', '.join(SAMPLERS)}")


def slot_counts(study: optuna.Study) -> dict[str, int]:
    """Trials per state (``COMPLETE``, ``PRUNED``, ``FAIL``, ``RUNNING``, ``WAITING``)."""
    counts = {s.name: 0 for s in TrialState}
    for t in study.get_trials(deepcopy=False):
        counts[t.state.name] += 1
    return counts


def _enqueue_slots(study: optuna.Study, start: int, stop: int, blocks: int, seed_rules: bool) -> None:
    for slot in range(start, stop):
        params: dict[str, Any] = {}
        rule = "sampled"
        if seed_rules and slot == 0:
            params, rule = staircase_params(blocks), "mobilenetv2_staircase"
        elif seed_rules and slot == 1:
            params, rule = linear_params(blocks), "rexnet_linear"
        study.enqueue_trial(params, user_attrs={"slot": slot, "rule": rule})


def open_study(
    storage: BaseStorage,
    name: str,
    *,
    config: dict[str, Any],
    target_trials: int,
    sampler: optuna.samplers.BaseSampler,
    directions: list[str],
    pruner: optuna.pruners.BasePruner | None = None,
    seed_rules: bool = True,
    ready_timeout: float = 120.0,
) -> optuna.Study:
    """Create the study (one worker wins) or join it; make sure it has ``target_trials`` slots.

    The creator stores ``config``, enqueues the slots and only then sets ``target_trials`` - the
    mark other workers wait for. A joining worker must bring the same ``config`` (space, epochs,
    seeds, objectives); a larger ``target_trials`` adds slots (do that from one worker).

    Raises:
        StudyMismatchError: The stored study was created with different settings.
    """
    kwargs = dict(study_name=name, storage=storage, sampler=sampler, pruner=pruner)
    try:
        study = optuna.create_study(directions=directions, load_if_exists=False, **kwargs)
        for key, value in config.items():
            study.set_user_attr(key, value)
        _enqueue_slots(study, 0, target_trials, config["space"]["blocks"], seed_rules)
        study.set_user_attr("target_trials", target_trials)
        _log.info("created study %r with %d slots", name, target_trials)
        return study
    except DuplicatedStudyError:
        study = optuna.load_study(**kwargs)
    deadline = time.monotonic() + ready_timeout
    while "target_trials" not in study.user_attrs:
        if time.monotonic() > deadline:
            raise InputError(
                f"study {name!r} exists but was never initialised (no 'target_trials' after "
                f"{ready_timeout:.0f} s); delete it or use another --study"
            )
        time.sleep(0.5)
    stored = study.user_attrs
    checked = [*_MUST_MATCH, *(k for k in _MUST_MATCH_IF_RECORDED if k in stored)]
    config = {**{k: None for k in _MUST_MATCH_ABSENT_NONE}, **config}
    for key in [*checked, *_MUST_MATCH_ABSENT_NONE]:
        if key in config and stored.get(key) != config[key]:
            raise StudyMismatchError(
                f"study {name!r} was created with {key}={stored.get(key)!r}, this worker has {key}={config[key]!r}; "
                "use the same settings or another --study"
            )
    if [d.name.lower() for d in study.directions] != directions:
        raise StudyMismatchError(f"study {name!r} has directions {study.directions}, expected {directions}")
    have = int(stored["target_trials"])
    if target_trials > have:
        _enqueue_slots(study, have, target_trials, config["space"]["blocks"], seed_rules)
        study.set_user_attr("target_trials", target_trials)
        _log.info("study %r: added slots %d..%d", name, have, target_trials - 1)
    return study
