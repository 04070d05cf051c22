"""Search guards (issue 12): memory per candidate, fresh sampler streams on extend/restart, train options."""

from __future__ import annotations

import optuna
import pytest

from rexnet import search
from rexnet._memory import training_memory
from rexnet.cli import main
from rexnet.errors import ResourceError, RexnetError
from rexnet.search.objective import Objective
from rexnet.search.space import SearchSpace, linear_params

FAST = dict(data=None, epochs=1, seeds=1, heartbeat_interval=1, write_report=False, seed_rules=False)


def _fake(plan, data, *, epochs, seed, on_epoch_end):
    on_epoch_end(1, 50.0)
    return 50.0


def _never(*a, **k):
    raise AssertionError("a candidate was trained")


def test_absurd_budget_is_refused_before_anything_is_built(tmp_path):
    with pytest.raises(ResourceError, match=r"M parameters\) needs about [\d,.]+ GiB .* only 8\.0 GiB"):
        search.run(tmp_path / "s", budget_macs=1e12, trials=2, trainer=_never, max_memory=8 * 2**30, **FAST)
    assert not (tmp_path / "s").exists()  # refused before the study (and its database) existed


def test_cli_budget_1000g_is_a_message_not_an_oom(tmp_path, capsys):
    # 512 px makes the activations alone terabytes: refused on any machine
    argv = ["search", "run", "--out", str(tmp_path), "--budget-macs", "1000G", "--image-size", "512"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "needs about" in err and "GiB" in err and "Traceback" not in err


def test_memory_estimate_grows_with_batch_and_width():
    space = SearchSpace(blocks=5)
    small = training_memory(space.check_budget().plan, 32, 10, 64)
    big = training_memory(SearchSpace(blocks=5, budget_macs=1e9).check_budget().plan, 32, 10, 64)
    assert big.params > small.params and big.activations > small.activations
    assert training_memory(space.check_budget().plan, 32, 10, 128).activations == 2 * small.activations


def test_candidate_over_memory_is_pruned_unbuilt():
    space = SearchSpace(blocks=5)

    def refuse(plan):
        raise ResourceError("too big")

    obj = Objective(space, None, _never, epochs=1, seeds=1, memory_check=refuse)
    trial = optuna.trial.FixedTrial(linear_params(5))
    with pytest.raises(optuna.TrialPruned, match="too big"):
        obj(trial)
    assert trial.user_attrs["infeasible"] == "too big"


def _params(tmp_path) -> list[tuple]:
    st = optuna.load_study(study_name=search.DEFAULT_STUDY, storage=search.default_storage(tmp_path))
    return [tuple(sorted(t.params.items())) for t in st.get_trials() if t.params]


def test_extending_with_same_seed_samples_new_candidates(tmp_path):
    search.run(tmp_path, trials=4, seed=7, trainer=_fake, **FAST)
    first = _params(tmp_path)
    res = search.run(tmp_path, trials=8, seed=7, trainer=_fake, **FAST)
    assert res.finished == 8
    params = _params(tmp_path)
    assert params[:4] == first and len(set(params)) == 8


def test_restart_with_same_seed_samples_new_candidates(tmp_path):
    calls = []

    def stop_on_third(plan, data, *, epochs, seed, on_epoch_end):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return _fake(plan, data, epochs=epochs, seed=seed, on_epoch_end=on_epoch_end)

    with pytest.raises(KeyboardInterrupt):
        search.run(tmp_path, trials=5, seed=3, trainer=stop_on_third, **FAST)
    search.run(tmp_path, trials=5, seed=3, trainer=_fake, **FAST)
    st = optuna.load_study(study_name=search.DEFAULT_STUDY, storage=search.default_storage(tmp_path))
    done = [tuple(sorted(t.params.items())) for t in st.get_trials(states=(optuna.trial.TrialState.COMPLETE,))]
    assert len(done) == 5 and len(set(done)) == 5


@pytest.mark.parametrize(
    "options, match",
    [
        ([1], "must be a mapping.*list"),
        ({"nope": 1}, "unknown config key 'nope'"),
        ({"lr": "fast"}, "bad value for lr"),
    ],
)
def test_bad_train_options_are_refused_up_front(tmp_path, options, match):
    with pytest.raises(RexnetError, match=match):
        search.run(tmp_path, trials=1, trainer=_never, train_options=options, **FAST)
