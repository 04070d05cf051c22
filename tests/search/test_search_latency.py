"""Latency-aware search: --budget-latency end to end (stubbed timer), the Pareto mode, CPU checks, register."""

from __future__ import annotations

import csv
import json

import optuna
import pytest
from optuna.trial import TrialState

from rexnet import search
from rexnet._device import cpu_model
from rexnet.cli import main
from rexnet.deploy import timing
from rexnet.errors import ConfigError, StudyMismatchError
from rexnet.plan import plan_cost
from rexnet.search import linear_r2, parse_ms
from rexnet.zoo import get_plan

CPU = cpu_model()  # the stub reports this machine's CPU, as a real measurement would

MS_PER_MMAC = 0.25  # the stub: latency = 0.25 ms per million MACs (deterministic, monotone in MACs)


class FakeTrainer:
    """No training: accuracy rises with the linearity of the channel curve."""

    def __call__(self, plan, data, *, epochs, seed, on_epoch_end):
        acc = 50 + 10 * linear_r2(plan.out_channels)
        for e in range(epochs):
            on_epoch_end(e + 1, acc)
        return acc


def _macs(plan_or_name, size: int, num_classes: int) -> float:
    plan = get_plan(plan_or_name) if isinstance(plan_or_name, str) else plan_or_name
    return plan_cost(plan, size, num_classes).macs


@pytest.fixture
def stub_timer(monkeypatch):
    """Replace the measurement by a deterministic function of MACs; record every call."""
    calls = []

    def fake(plan_or_model, runtime="openvino", precision="fp32", image_size=224, batch=1, threads=None,
             repeats=50, *, num_classes=1000, cache=None, **kw):  # fmt: skip
        calls.append(dict(what=plan_or_model, runtime=runtime, precision=precision, size=image_size, batch=batch))
        ms = MS_PER_MMAC * _macs(plan_or_model, image_size, num_classes) / 1e6 * batch
        key = dict(cpu=CPU, runtime=runtime, precision=precision, image_size=image_size, batch=batch)
        return timing.Latency(
            ms, 0.98 * ms, 1.02 * ms, 0.01 * ms, 0.95 * ms, 1.1 * ms, 0.98 * ms, 1.02 * ms, repeats, key
        )

    monkeypatch.setattr(timing, "latency", fake)
    return calls


ARGS = [
    "--trials", "4", "--epochs", "1", "--seeds", "1", "--seed", "0",
    "--budget-macs", "10M", "--macs-fractions", "0.5", "1",
    "--max-samples", "96", "--threads", "1", "--train-options", '{"batch_size": 32}',
    "--budget-latency", "2ms", "--runtime", "openvino", "--precision", "int8",
    "--latency-size", "32", "--latency-batch", "1", "--latency-cache", "off",
    "--latency-references", "rexnet_100", "mobilenetv2_100",
]  # fmt: skip


@pytest.fixture(scope="module")
def lat_run(tmp_path_factory):
    """A real 4-trial search on the embedded digits, timed by the stub (module-scoped: trains once)."""
    mp = pytest.MonkeyPatch()
    calls: list = []

    def fake(plan_or_model, runtime, precision, image_size, batch, threads, repeats, *, num_classes, cache, **kw):
        calls.append(dict(what=plan_or_model, runtime=runtime, precision=precision, size=image_size, cache=cache))
        ms = MS_PER_MMAC * _macs(plan_or_model, image_size, num_classes) / 1e6
        key = dict(cpu=CPU, runtime=runtime)
        return timing.Latency(
            ms, 0.98 * ms, 1.02 * ms, 0.01 * ms, 0.95 * ms, 1.1 * ms, 0.98 * ms, 1.02 * ms, repeats, key
        )

    mp.setattr(timing, "latency", fake)
    out = tmp_path_factory.mktemp("search-latency")
    try:
        assert main(["search", "run", "--out", str(out), *ARGS]) == 0
    finally:
        mp.undo()
    return out, calls


def _study(out) -> optuna.Study:
    return optuna.load_study(study_name=search.DEFAULT_STUDY, storage=search.default_storage(out))


def test_budget_latency_prunes_slow_candidates_before_training(lat_run) -> None:
    out, calls = lat_run
    trials = _study(out).get_trials()
    assert len(trials) == 4
    for t in trials:
        u = t.user_attrs
        expected = MS_PER_MMAC * u["macs"] / 1e6  # the stub's figure for this very plan, recorded in the worker
        assert u["latency_ms"] == pytest.approx(expected, rel=0.02)
        assert u["latency_cpu"] == CPU and u["macs_fraction"] in (0.5, 1.0)
        if u["latency_ms"] > 2:
            assert t.state == TrialState.PRUNED and "over the budget" in u["infeasible"]
            assert "val_curves" not in u  # pruned before any training
        else:
            assert t.state == TrialState.COMPLETE and len(u["seed_accuracies"]) == 1
    assert {t.state for t in trials} == {TrialState.PRUNED, TrialState.COMPLETE}  # seed 0 gives both
    plans = [c for c in calls if not isinstance(c["what"], str)]
    assert len(plans) == 4 and all(c["runtime"] == "openvino" and c["precision"] == "int8" for c in calls)
    assert all(c["size"] == 32 and c["cache"] == "off" for c in calls)


def test_references_are_timed_once_in_the_same_study(lat_run) -> None:
    out, calls = lat_run
    names = [c["what"] for c in calls if isinstance(c["what"], str)]
    assert sorted(names) == ["mobilenetv2_100", "rexnet_100"]
    refs = _study(out).user_attrs["reference_latency"][CPU]
    assert refs["rexnet_100"]["median_ms"] == pytest.approx(MS_PER_MMAC * _macs("rexnet_100", 32, 10) / 1e6)
    assert _study(out).user_attrs["latency"] == {
        "budget_ms": 2.0, "runtime": "openvino", "precision": "int8", "image_size": 32, "batch": 1
    }  # fmt: skip


def test_report_draws_the_pareto_figure_and_table(lat_run) -> None:
    out, _ = lat_run
    assert (out / "pareto.png").read_bytes()[:4] == b"\x89PNG"
    table = (out / "pareto.md").read_text()
    assert "Pareto front" in table and "rexnet_100" in table and CPU in table
    rows = list(csv.DictReader(open(out / "trials.csv")))
    assert all(float(r["latency_ms"]) > 0 and r["shape"] in ("linear", "staircase", "other") for r in rows)


def test_register_writes_a_named_model_the_zoo_builds(lat_run, tmp_path, capsys) -> None:
    from rexnet.zoo import create_model, list_models, unregister_model

    out, _ = lat_run
    reg = tmp_path / "models.json"
    name = "rexnet_lat_stub_openvino"
    try:
        assert main(["search", "register", "--out", str(out), "--name", name, "--registry", str(reg)]) == 0
        assert f"registered {name}" in capsys.readouterr().out
        rec = json.loads(reg.read_text())["models"][name]
        best = max((t for t in _study(out).get_trials() if t.state == TrialState.COMPLETE), key=lambda t: t.values[0])
        assert rec["channels"] == best.user_attrs["channels"] and rec["search"]["trial"] == best.number
        assert rec["latency"]["median_ms"] == best.user_attrs["latency_ms"] and rec["latency"]["runtime"] == "openvino"
        assert rec["recipe"]["epochs"] == 1 and rec["recipe"]["data"] == "digits"
        assert name in list_models()
        model = create_model(name, num_classes=10)
        assert list(model.plan.out_channels) == best.user_attrs["channels"]
        # a second registration under the same name needs --overwrite
        assert main(["search", "register", "--out", str(out), "--name", name, "--registry", str(reg)]) == 2
        assert "already exists" in capsys.readouterr().err
        assert main(["search", "register", "--out", str(out), "--name", "rexnet_100", "--registry", str(reg)]) == 2
    finally:
        unregister_model(name)
    assert name not in list_models()


def test_nsga2_pareto_mode_minimises_measured_latency(tmp_path, stub_timer) -> None:
    res = search.run(
        tmp_path, trials=3, sampler="nsga2", budget_latency="50ms", latency_references=(),
        data=None, epochs=1, seeds=1, trainer=FakeTrainer(), heartbeat_interval=1,
    )  # fmt: skip
    assert res.counts["COMPLETE"] == 3
    st = _study(tmp_path)
    assert [d.name for d in st.directions] == ["MAXIMIZE", "MINIMIZE"]
    assert st.user_attrs["objectives"] == "accuracy-latency"
    assert st.user_attrs["sampler"] == "nsga2"  # run() drives the study with NSGAIISampler (study.make_sampler)
    for t in st.get_trials():
        assert t.values[1] == t.user_attrs["latency_ms"] and t.values[0] == pytest.approx(
            50 + 10 * linear_r2(t.user_attrs["channels"])
        )
    assert (tmp_path / "pareto.png").exists() and len(stub_timer) == 3


def test_workers_on_another_cpu_are_refused_unless_allowed(tmp_path, stub_timer, caplog) -> None:
    kw = dict(budget_latency="50ms", latency_references=(), data=None, epochs=1, seeds=1, heartbeat_interval=1)
    search.run(tmp_path, trials=1, trainer=FakeTrainer(), write_report=False, **kw)
    st = _study(tmp_path)
    assert st.user_attrs["latency_cpu"]  # the first worker's CPU model
    st.set_user_attr("latency_cpu", "Some Other CPU")
    with pytest.raises(StudyMismatchError, match="its own CPU"):
        search.run(tmp_path, trials=2, trainer=FakeTrainer(), write_report=False, **kw)
    res = search.run(tmp_path, trials=2, trainer=FakeTrainer(), write_report=False, mixed_cpus=True, **kw)
    assert res.counts["COMPLETE"] == 2 and "own CPU" in caplog.text


def test_a_latency_worker_cannot_join_a_study_without_latency(tmp_path, stub_timer) -> None:
    # same space (an explicit MAC budget: no sampled fractions), only the latency settings differ
    kw = dict(data=None, epochs=1, seeds=1, heartbeat_interval=1, write_report=False, budget_macs="30M")
    search.run(tmp_path, trials=1, trainer=FakeTrainer(), **kw)
    with pytest.raises(StudyMismatchError, match="latency"):
        search.run(tmp_path, trials=1, budget_latency="5ms", latency_references=(), trainer=FakeTrainer(), **kw)
    assert stub_timer == []


@pytest.mark.parametrize(
    ("text", "ms"), [("3ms", 3.0), ("0.003s", 3.0), ("3", 3.0), (" 2.5 ms ", 2.5), ("750us", 0.75), ("1e-3s", 1.0)]
)
def test_parse_ms_units(text, ms) -> None:
    assert parse_ms(text) == pytest.approx(ms)


@pytest.mark.parametrize("text", ["3 fps", "ms", "-3ms", "3 ms ms", "", "3h"])
def test_parse_ms_errors_name_the_format(text) -> None:
    with pytest.raises(ConfigError, match="expected a latency like 3ms"):
        parse_ms(text)


def test_bad_latency_flags_exit_2(tmp_path, capsys) -> None:
    assert main(["search", "run", "--out", str(tmp_path), "--budget-latency", "3fps"]) == 2
    assert "--budget-latency" in capsys.readouterr().err
    assert main(["search", "run", "--out", str(tmp_path), "--budget-latency", "0"]) == 2
    assert main(["search", "run", "--out", str(tmp_path), "--latency-references", "rexnet_999"]) == 2
    assert "rexnet_999" in capsys.readouterr().err
    assert not (tmp_path / "search.db").exists()


def test_a_latency_budget_alone_searches_the_width_too() -> None:
    cfg = search.SearchConfig(budget_latency="3ms")
    space = cfg.space()
    assert space.budget_macs == 30e6 and space.macs_fractions == search.config.LATENCY_FRACTIONS
    assert cfg.objective == "accuracy" and cfg.uses_latency
    assert search.SearchConfig(budget_latency="3ms", budget_macs="20M").space().macs_fractions == ()
    assert search.SearchConfig(sampler="nsga2", budget_latency=3).objective == "accuracy-latency"
    assert search.SearchConfig(sampler="nsga2").objective == "accuracy-macs"


@pytest.mark.parametrize(
    ("channels", "rule", "cls"),
    [
        ([16, 40, 64, 88, 112], None, "linear"),
        ([16, 41, 64, 89, 112], None, "linear"),
        ([32, 32, 32, 32, 32], None, "linear"),
        ([16, 32, 32, 64, 64], None, "staircase"),
        ([16, 16, 16, 17, 96], None, "staircase"),
        ([16, 18, 20, 90, 96], None, "other"),
        ([16, 18, 20, 90, 96], "rexnet_linear", "linear"),
    ],
)
def test_shape_classes(channels, rule, cls) -> None:
    assert search.shape_class(channels, rule) == cls


def test_pareto_front_keeps_only_undominated_points() -> None:
    pts = [(1.0, 80.0), (2.0, 85.0), (2.0, 70.0), (0.5, 60.0), (1.0, 79.0), (3.0, 85.0)]
    assert search.pareto_front(pts) == [3, 0, 1]
