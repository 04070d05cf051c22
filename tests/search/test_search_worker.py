"""Workers that race: a trial failed as stale by another worker while it still ran (issue 23 item 8)."""

from __future__ import annotations

import warnings

import optuna
import pytest
from optuna.exceptions import ExperimentalWarning
from optuna.storages import RetryHeartbeatStaleTrialCallback
from optuna.trial import TrialState

from rexnet.search.study import open_storage
from rexnet.search.worker import work


@pytest.fixture
def study(tmp_path):
    storage = open_storage(f"sqlite:///{tmp_path / 's.db'}", heartbeat_interval=60)
    st = optuna.create_study(storage=storage, study_name="race", direction="maximize")
    for x in (1.0, 2.0, 3.0):
        st.enqueue_trial({"x": x})
    return st, storage


def _fail_as_stale(st: optuna.Study, storage, trial: optuna.Trial) -> None:
    """What another worker's ``fail_stale_trials`` does to a trial it thinks dead: FAIL it and enqueue a retry."""
    storage.set_trial_state_values(trial._trial_id, state=TrialState.FAIL)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ExperimentalWarning)
        RetryHeartbeatStaleTrialCallback(max_retry=3)(st, storage.get_trial(trial._trial_id))


@pytest.mark.parametrize("after", ["writes", "raises"])
def test_a_trial_failed_by_another_worker_does_not_crash_this_one(study, caplog, after):
    """Writing to (or failing) the dead trial used to raise ``Cannot tell a FAIL trial`` and end the worker."""
    st, storage = study
    calls = []

    def objective(trial: optuna.Trial) -> float:
        x = trial.suggest_float("x", 0, 10)
        calls.append(x)
        if len(calls) == 2:  # the second slot is declared dead while it trains
            _fail_as_stale(st, storage, trial)
            if after == "writes":
                trial.set_user_attr("val_curves", [[1.0]])  # raises UpdateFinishedTrialError
            raise RuntimeError("a candidate that crashes after being failed elsewhere")
        return x

    done = work(st, storage, objective, wait=False)
    assert done == {"COMPLETE": 3, "PRUNED": 0, "FAIL": 1}  # the retry ran; nothing was lost
    states = sorted((t.params["x"], t.state.name) for t in st.get_trials())
    assert states == [(1.0, "COMPLETE"), (2.0, "COMPLETE"), (2.0, "FAIL"), (3.0, "COMPLETE")]
    assert "declared dead by another worker" in caplog.text


def test_a_result_finished_after_its_trial_was_failed_goes_to_the_retry(study):
    """Training finished but the trial was failed just before the tell: the retry takes the value, no re-training."""
    st, storage = study
    calls = []

    def objective(trial: optuna.Trial) -> float:
        x = trial.suggest_float("x", 0, 10)
        calls.append(x)
        trial.set_user_attr("seed_accuracies", [x])
        if len(calls) == 1:
            _fail_as_stale(st, storage, trial)
        return x * 10

    done = work(st, storage, objective, wait=False)
    assert calls == [1.0, 2.0, 3.0]  # slot 1 was not trained twice
    assert done["COMPLETE"] == 3 and done["FAIL"] == 0
    retry = next(t for t in st.get_trials() if t.user_attrs.get("result_of_trial") == 0)
    assert retry.state == TrialState.COMPLETE and retry.value == 10.0
    assert retry.user_attrs["seed_accuracies"] == [1.0]
    assert sorted(t.value for t in st.get_trials(states=(TrialState.COMPLETE,))) == [10.0, 20.0, 30.0]
