"""Search engine on SQLite with a stand-in trainer: slots, resume, retries, mismatch, report."""

from __future__ import annotations

import csv

import optuna
import pytest
from optuna.trial import TrialState

from rexnet import search
from rexnet.search import StudyMismatchError, linear_r2

FAST = dict(data=None, epochs=2, seeds=2, heartbeat_interval=1, write_report=False)


class FakeTrainer:
    """Accuracy rises with linearity; ``stop_at`` raises KeyboardInterrupt on that call."""

    def __init__(self, stop_at: int | None = None, fail_at: int | None = None) -> None:
        self.calls, self.stop_at, self.fail_at = 0, stop_at, fail_at

    def __call__(self, plan, data, *, epochs, seed, on_epoch_end):
        self.calls += 1
        if self.calls == self.stop_at:
            raise KeyboardInterrupt
        if self.calls == self.fail_at:
            raise RuntimeError("boom")
        acc = 50 + 10 * linear_r2(plan.out_channels) + seed * 0.1
        for e in range(epochs):
            on_epoch_end(e + 1, acc - (epochs - 1 - e))
        return acc


def _study(tmp_path) -> optuna.Study:
    return optuna.load_study(study_name=search.DEFAULT_STUDY, storage=search.default_storage(tmp_path))


def test_slots_seeded_rules_and_per_epoch_reports(tmp_path) -> None:
    res = search.run(tmp_path, trials=5, trainer=FakeTrainer(), **FAST)
    assert res.finished == 5 and res.counts["COMPLETE"] == 5
    st = _study(tmp_path)
    trials = st.get_trials()
    assert sorted(t.user_attrs["slot"] for t in trials) == list(range(5))
    assert trials[0].user_attrs["rule"] == "mobilenetv2_staircase"
    assert trials[1].user_attrs["rule"] == "rexnet_linear"
    for t in trials:
        assert sorted(t.intermediate_values) == [0, 1, 2, 3]  # seed * epochs + epoch
        assert len(t.user_attrs["val_curves"]) == 2 and len(t.user_attrs["seed_accuracies"]) == 2
        assert 0.97 * 30e6 <= t.user_attrs["macs"] <= 30e6


def test_resume_after_stop_continues_counting(tmp_path) -> None:
    with pytest.raises(KeyboardInterrupt):
        search.run(tmp_path, trials=5, trainer=FakeTrainer(stop_at=5), **FAST)  # 3rd trial, 1st seed
    st = _study(tmp_path)
    states = [t.state for t in st.get_trials()]
    assert states.count(TrialState.COMPLETE) == 2 and states.count(TrialState.FAIL) == 1
    interrupted = next(t for t in st.get_trials() if t.state == TrialState.FAIL)

    res = search.run(tmp_path, trials=5, trainer=FakeTrainer(), **FAST)
    assert res.counts["COMPLETE"] == 5 and res.counts["WAITING"] == res.counts["RUNNING"] == 0
    trials = _study(tmp_path).get_trials()
    assert [t.number for t in trials] == list(range(6))  # numbering continued, nothing restarted
    done = [t for t in trials if t.state == TrialState.COMPLETE]
    assert sorted(t.user_attrs["slot"] for t in done) == list(range(5))
    retried = [t for t in done if t.system_attrs.get("failed_trial") == interrupted.number]
    assert len(retried) == 1 and retried[0].user_attrs["slot"] == interrupted.user_attrs["slot"]
    assert retried[0].params == interrupted.params

    res = search.run(tmp_path, trials=7, trainer=FakeTrainer(), **FAST)  # more slots later
    assert res.counts["COMPLETE"] == 7 and res.ran_here["COMPLETE"] == 2


def test_crashing_trial_is_retried(tmp_path) -> None:
    res = search.run(tmp_path, trials=3, trainer=FakeTrainer(fail_at=1), **FAST)
    assert res.counts["COMPLETE"] == 3 and res.counts["FAIL"] == 1
    failed = next(t for t in _study(tmp_path).get_trials() if t.state == TrialState.FAIL)
    assert "boom" in failed.user_attrs["error"]


def test_joining_with_other_settings_is_refused(tmp_path) -> None:
    search.run(tmp_path, trials=2, trainer=FakeTrainer(), **FAST)
    with pytest.raises(StudyMismatchError, match="blocks"):
        search.run(tmp_path, trials=2, blocks=9, trainer=FakeTrainer(), **FAST)


@pytest.mark.parametrize("sampler", ["tpe", "nsga2"])
def test_other_samplers(tmp_path, sampler: str) -> None:
    res = search.run(tmp_path, trials=4, sampler=sampler, seed=0, trainer=FakeTrainer(), **FAST)
    st = _study(tmp_path)
    assert res.counts["COMPLETE"] == 4
    assert len(st.directions) == (2 if sampler == "nsga2" else 1)


def test_report_from_fake_study(tmp_path) -> None:
    search.run(tmp_path, trials=10, trainer=FakeTrainer(), **FAST)
    paths = search.report(tmp_path)
    rows = list(csv.DictReader(open(paths["csv"])))
    assert len(rows) == 10 and all(r["state"] == "COMPLETE" for r in rows)
    table = open(paths["table"]).read()
    for word in ("Top-10%", "Mid-10%", "Bot-10%", "Best:", "Worst:", "Spearman"):
        assert word in table
    assert open(paths["figure"], "rb").read(8) == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(search.StudyMismatchError.__mro__[1], match="no study"):
        search.report(tmp_path, study="nope")


def test_pruning_stops_hopeless_trials(tmp_path) -> None:
    calls = []

    def worse_each_time(plan, data, *, epochs, seed, on_epoch_end):
        calls.append(1)
        for e in range(epochs):
            on_epoch_end(e + 1, 100.0 - len(calls))
        return 100.0 - len(calls)

    res = search.run(tmp_path, trials=8, prune=True, trainer=worse_each_time, **FAST)
    assert res.counts["PRUNED"] >= 1 and res.finished == 8
    pruned = [t for t in _study(tmp_path).get_trials() if t.state == TrialState.PRUNED]
    assert all(len(t.intermediate_values) == 1 for t in pruned)  # stopped after its first report


def test_bad_training_settings_stop_the_worker_and_keep_the_slot(tmp_path) -> None:
    from rexnet.errors import RexnetError

    def misconfigured(plan, data, *, epochs, seed, on_epoch_end):
        raise RexnetError("the training set (32 images) is smaller than one batch (64)")

    with pytest.raises(RexnetError, match="smaller than one batch"):
        search.run(tmp_path, trials=3, trainer=misconfigured, **FAST)
    res = search.run(tmp_path, trials=3, trainer=FakeTrainer(), **FAST)
    assert res.counts["COMPLETE"] == 3


class StatsTrainer(FakeTrainer):
    """Returns a mapping, as the default trainer does: accuracy plus per-seed statistics."""

    def __call__(self, plan, data, *, epochs, seed, on_epoch_end):
        acc = super().__call__(plan, data, epochs=epochs, seed=seed, on_epoch_end=on_epoch_end)
        return {"accuracy": acc, "test_accuracy": acc - 1.0, "nuclear_norm": 10.0 + seed}


def test_per_seed_statistics_are_recorded_and_reported(tmp_path) -> None:
    search.run(tmp_path, trials=3, trainer=StatsTrainer(), **FAST)
    for t in _study(tmp_path).get_trials():
        assert t.user_attrs["seed_stats"] == {
            "test_accuracy": [v - 1.0 for v in t.user_attrs["seed_accuracies"]],
            "nuclear_norm": [10.0, 11.0],
        }
        assert t.value == pytest.approx(sum(t.user_attrs["seed_accuracies"]) / 2)  # ranked on validation only
    paths = search.report(tmp_path)
    rows = list(csv.DictReader(open(paths["csv"])))
    assert [float(r["nuclear_norm"]) for r in rows] == [10.5] * 3
    assert open(paths["rank_figure"], "rb").read(4) == b"\x89PNG"
    assert "Rank vs. accuracy" in open(paths["table"]).read()
    assert all(float(r["test_accuracy"]) == pytest.approx(float(r["accuracy"]) - 1.0) for r in rows)


def test_joining_with_other_sample_counts_is_refused(tmp_path) -> None:
    search.run(tmp_path, trials=2, max_samples=100, trainer=FakeTrainer(), **FAST)
    with pytest.raises(StudyMismatchError, match="samples"):
        search.run(tmp_path, trials=2, max_samples=200, trainer=FakeTrainer(), **FAST)
    search.run(tmp_path, trials=2, max_samples=100, trainer=FakeTrainer(), **FAST)  # same settings: joins


def test_bad_sample_counts_are_refused(tmp_path) -> None:
    with pytest.raises(search.StudyMismatchError.__mro__[1], match="val_samples"):
        search.run(tmp_path, trials=2, val_samples=0, trainer=FakeTrainer(), **FAST)


def test_validation_split_size_follows_val_samples() -> None:
    from rexnet.search.trainer import load_data

    assert len(load_data("digits", 32, max_samples=200).val) == 50  # a quarter of max_samples by default
    assert len(load_data("digits", 32, max_samples=200, val_samples=120).val) == 120


def test_augmentation_train_options_shape_the_search_data(tmp_path, monkeypatch) -> None:
    """aug_* train options reach the datasets (built once per worker), not only the TrainConfig."""
    from rexnet.search import api

    seen = {}

    def fake_load(data, image_size, max_samples=None, val_samples=None, augment=None):
        seen["augment"] = augment
        raise KeyboardInterrupt  # stop before training: only the data settings matter here

    monkeypatch.setattr(api, "load_data", fake_load)
    with pytest.raises(KeyboardInterrupt):
        search.run(
            tmp_path,
            data="digits",
            trials=1,
            epochs=1,
            seeds=1,
            train_options={"aug_scale": [0.85, 1.0], "hflip": 0.5, "reprob": 0.1},
        )
    aug = seen["augment"]
    assert tuple(aug.scale) == (0.85, 1.0) and aug.hflip == 0.5 and aug.reprob == 0.1 and aug.randaug_n == 0
