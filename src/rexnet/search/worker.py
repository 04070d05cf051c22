"""The worker loop: claim a WAITING slot, beat while training it, tell the result; repeat.

Unlike ``Study.optimize(n_trials=...)``, which counts per process, the loop runs until the
*study* has no WAITING and no RUNNING trials left, so any number of workers finish exactly the
study's slots. While others are still running it waits (``wait=True``): a trial whose worker dies
becomes stale, is failed and re-enqueued (:mod:`rexnet.search.study`), and a waiting worker
picks it up.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import warnings
from collections.abc import Callable
from typing import Any

import optuna
from optuna.exceptions import ExperimentalWarning, UpdateFinishedTrialError
from optuna.storages import BaseStorage, RetryHeartbeatStaleTrialCallback
from optuna.trial import TrialState

from ..errors import RexnetError

__all__ = ["work", "worker_id"]

_log = logging.getLogger(__name__)


def worker_id() -> str:
    """``host:pid`` of this process, stored on every trial it runs."""
    return f"{socket.gethostname()}:{os.getpid()}"


class _Heartbeat:
    def __init__(self, storage: BaseStorage, trial_id: int, interval: float) -> None:
        self._storage, self._trial_id, self._interval = storage, trial_id, interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, daemon=True, name=f"heartbeat-{trial_id}")

    def _beat(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                self._storage.record_heartbeat(self._trial_id)
            except Exception as e:  # noqa: BLE001 - a missed beat is retried next interval
                _log.warning("heartbeat of trial id %d failed: %s", self._trial_id, e)

    def __enter__(self) -> _Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


with warnings.catch_warnings():
    warnings.simplefilter("ignore", ExperimentalWarning)
    _REQUEUE = RetryHeartbeatStaleTrialCallback(max_retry=None)  # stops do not use up a slot's retries


def _fail_stale(study: optuna.Study) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)


def _claim(storage: BaseStorage, study_id: int) -> int | None:
    """Atomically move one WAITING trial to RUNNING; its id, or ``None`` when none is left."""
    for t in storage.get_all_trials(study_id, deepcopy=False, states=(TrialState.WAITING,)):
        trial_id = storage.get_trial_id_from_study_id_trial_number(study_id, t.number)
        try:
            if storage.set_trial_state_values(trial_id, state=TrialState.RUNNING):
                storage.record_heartbeat(trial_id)  # at once: a trial without beats never goes stale
                return trial_id
        except UpdateFinishedTrialError:
            continue
    return None


def _finished_elsewhere(storage: BaseStorage, trial_id: int) -> bool:
    """Whether another worker has already finished (failed as stale) this worker's running trial."""
    return storage.get_trial(trial_id).state.is_finished()


def _tell(study: optuna.Study, trial: optuna.Trial, **kwargs: Any) -> bool:
    """Tell ``trial``'s end; ``False`` (logged, no raise) when another worker already failed it as stale."""
    try:
        study.tell(trial, **kwargs)
        return True
    except (UpdateFinishedTrialError, ValueError) as e:  # optuna: ValueError("Cannot tell a FAIL trial.")
        if isinstance(e, ValueError) and not _finished_elsewhere(study._storage, trial._trial_id):
            raise  # a bad value, not a race: a bug
        _log.warning(
            "trial %d was declared dead by another worker while it ran (a stalled process, or a grace period too "
            "short for the heartbeat); %s",
            trial.number,
            "its result goes to its retry" if "values" in kwargs else "its retry runs instead",
        )
        return False


def _hand_over(study: optuna.Study, storage: BaseStorage, trial: optuna.Trial, values: Any) -> bool:
    """Give a finished result whose trial another worker failed to that trial's retry, if no one claimed it yet.

    The stale-trial callback enqueued the retry (same parameters, ``retry_history`` ending in this
    trial's number); telling it the result keeps the work done and saves training the slot again.
    """
    study_id = storage.get_study_id_from_name(study.study_name)
    for t in storage.get_all_trials(study_id, deepcopy=False, states=(TrialState.WAITING,)):
        if (t.system_attrs.get("retry_history") or [None])[-1] != trial.number:
            continue
        retry_id = storage.get_trial_id_from_study_id_trial_number(study_id, t.number)
        try:
            if not storage.set_trial_state_values(retry_id, state=TrialState.RUNNING):
                return False
            for key, value in storage.get_trial(trial._trial_id).user_attrs.items():
                storage.set_trial_user_attr(retry_id, key, value)
            storage.set_trial_user_attr(retry_id, "result_of_trial", trial.number)
        except UpdateFinishedTrialError:
            return False
        _log.info("trial %d: the result of trial %d (failed by another worker) is kept", t.number, trial.number)
        return _tell(study, optuna.trial.Trial(study, retry_id), values=values)
    return False


def _run_one(
    study: optuna.Study,
    storage: BaseStorage,
    trial_id: int,
    objective: Callable[[optuna.Trial], Any],
    retry: RetryHeartbeatStaleTrialCallback,
    interval: float,
) -> TrialState:
    storage.set_trial_user_attr(trial_id, "worker", worker_id())
    trial = optuna.trial.Trial(study, trial_id)
    start = time.perf_counter()
    with _Heartbeat(storage, trial_id, interval):
        try:
            value = objective(trial)
        except optuna.TrialPruned as e:
            _log.info("trial %d pruned: %s", trial.number, e)
            _tell(study, trial, state=TrialState.PRUNED)
            return TrialState.PRUNED
        except UpdateFinishedTrialError:  # another worker failed this trial as stale; its retry runs it again
            _log.warning(
                "trial %d was declared dead by another worker while it ran; its retry runs instead, this worker "
                "moves on",
                trial.number,
            )
            return TrialState.FAIL
        except (KeyboardInterrupt, RexnetError) as e:  # a stop, or bad settings: stop the worker, keep the slot
            _log.warning(
                "trial %d %s; re-enqueued for the next run",
                trial.number,
                "interrupted" if isinstance(e, KeyboardInterrupt) else f"stopped by bad input ({e})",
            )
            if _tell(study, trial, state=TrialState.FAIL):
                _REQUEUE(study, storage.get_trial(trial_id))
            raise
        except Exception as e:  # noqa: BLE001 - a failing candidate must not stop the study
            _log.exception("trial %d failed: %s", trial.number, e)
            try:
                storage.set_trial_user_attr(trial_id, "error", repr(e))
            except UpdateFinishedTrialError:
                pass
            if _tell(study, trial, state=TrialState.FAIL):
                retry(study, storage.get_trial(trial_id))
            return TrialState.FAIL
    try:
        storage.set_trial_user_attr(trial_id, "duration_s", time.perf_counter() - start)
    except UpdateFinishedTrialError:
        pass  # failed by another worker: the result still goes to the retry below
    if _tell(study, trial, values=value) or _hand_over(study, storage, trial, value):
        return TrialState.COMPLETE
    return TrialState.FAIL


def work(
    study: optuna.Study,
    storage: BaseStorage,
    objective: Callable[[optuna.Trial], Any],
    *,
    wait: bool = True,
    poll: float = 1.0,
    max_retry: int = 3,
    max_trials: int | None = None,
) -> dict[str, int]:
    """Run slots of ``study`` until none is left (or ``max_trials`` were run here).

    Args:
        study: The shared study (see :func:`rexnet.search.study.open_study`).
        storage: Its storage, the object the study was opened with (see
            :func:`~rexnet.search.study.open_storage`); heartbeats are recorded through it.
        objective: Called with each claimed trial.
        wait: Keep polling while other workers still run trials (to take over retries).
        poll: Seconds between polls while waiting.
        max_retry: Retries of a trial that raised (stale trials use the storage's callback).
        max_trials: Stop after this many trials in this process (``None``: no limit).

    Returns:
        How many trials this worker finished, by final state name.
    """
    study_id = storage.get_study_id_from_name(study.study_name)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ExperimentalWarning)
        retry = RetryHeartbeatStaleTrialCallback(max_retry=max_retry)
    interval = float(storage.get_heartbeat_interval() or 10)  # type: ignore[attr-defined]
    done = {s.name: 0 for s in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)}
    while max_trials is None or sum(done.values()) < max_trials:
        _fail_stale(study)
        trial_id = _claim(storage, study_id)
        if trial_id is None:
            running = storage.get_all_trials(study_id, deepcopy=False, states=(TrialState.RUNNING,))
            if not running or not wait:
                break
            time.sleep(poll)
            continue
        state = _run_one(study, storage, trial_id, objective, retry, interval)
        done[state.name] += 1
    return done
