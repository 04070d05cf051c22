"""Search space: monotone, budget-checked plans; staircase and line reachable; impossible budgets refused."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rexnet.errors import BudgetError, RexnetError
from rexnet.plan import plan_cost
from rexnet.search import (
    MAX_RISE,
    OutOfToleranceError,
    SearchSpace,
    Shape,
    linear_params,
    linear_r2,
    plan_for_budget,
    search_strides,
    shape_from_params,
    staircase_params,
)


@st.composite
def spaces_and_params(draw: st.DrawFn) -> tuple[SearchSpace, dict]:
    d = draw(st.sampled_from([2, 3, 5, 9, 13]))
    smallest = plan_cost(SearchSpace(blocks=d, budget_macs=1e9).plan([8] * d), 32, 10).macs
    budget = smallest * draw(st.floats(1.5, 40.0))
    params: dict = {f"break_{i}": draw(st.sampled_from([0, 1])) for i in range(1, d - 1)}
    breaks = [i for i in range(1, d - 1) if params[f"break_{i}"]] + [d - 1]
    for j in breaks:
        params[f"rise_{j}"] = draw(st.integers(0, MAX_RISE))
    params["ratio"] = draw(st.floats(0.05, 1.0))
    return SearchSpace(blocks=d, budget_macs=budget), params


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(spaces_and_params())
def test_every_sampled_plan_is_monotone_and_within_tolerance(case: tuple[SearchSpace, dict]) -> None:
    space, params = case
    try:
        plan, info = plan_for_budget(shape_from_params(params, space.blocks), space)
    except OutOfToleranceError:  # allowed by contract, but must stay rare: see the next test
        return
    ch = list(plan.out_channels)
    assert ch == sorted(ch) and min(ch) >= space.min_channels
    cost = plan_cost(plan, space.image_size, space.num_classes)
    assert cost.macs == info["macs"]
    assert (1 - space.tolerance) * space.budget_macs <= cost.macs <= space.budget_macs
    assert plan.blocks[0].in_channels == 16 and plan.stem.act == "relu"  # the paper's fixed stem
    assert all(b.exp_channels == 6 * b.in_channels for b in plan.blocks)
    assert plan.final_conv.out_channels == 1280


def test_tolerance_failures_are_rare_at_paper_budgets() -> None:
    import random

    rng = random.Random(0)
    for d in (5, 9):
        space = SearchSpace(blocks=d)
        for _ in range(25):
            breaks = [0] + [i for i in range(1, d - 1) if rng.random() < 0.5] + [d - 1]
            shape = Shape(tuple(breaks), tuple(rng.randint(0, MAX_RISE) for _ in breaks[1:]), rng.uniform(0.05, 1))
            plan_for_budget(shape, space)  # raises OutOfToleranceError if not


def test_param_budget_is_met() -> None:
    space = SearchSpace(blocks=5, budget_macs=40e6, budget_params=0.25e6)
    plan, info = plan_for_budget(shape_from_params(linear_params(5), 5), space)
    assert info["params"] <= 0.25e6 and info["macs"] <= 40e6 and info["utilisation"] >= 0.97


@pytest.mark.parametrize("d", [5, 9, 13])
def test_staircase_and_line_are_reachable(d: int) -> None:
    space = SearchSpace(blocks=d)
    stair, _ = plan_for_budget(shape_from_params(staircase_params(d), d), space)
    line, _ = plan_for_budget(shape_from_params(linear_params(d), d), space)
    s, ln = list(stair.out_channels), list(line.out_channels)
    steps = [b - a for a, b in zip(s, s[1:])]
    if d >= 9:  # stage-wise: flat runs inside stages, jumps between them
        assert steps.count(0) >= 2 and max(steps) > 3 * (sum(steps) / len(steps))
    assert linear_r2(ln) > 0.995 and linear_r2(s) < linear_r2(ln)
    # a true staircase (flat, jump, flat) is a member of the space too
    stairs, _ = plan_for_budget(Shape(tuple(range(d)), tuple(0 if i % 3 else 4 for i in range(1, d)), 0.3), space)
    assert len(set(stairs.out_channels)) < d


def test_strides_follow_mobilenetv2_cifar_layout() -> None:
    assert search_strides(17) == (1, 1, 1, 2, 1, 1, 2, 1, 1, 1, 1, 1, 1, 2, 1, 1, 1)
    assert search_strides(5) == (1, 2, 2, 1, 2)
    for d in (5, 9, 13, 30):
        assert search_strides(d).count(2) == 3
    assert search_strides(1) == (2,)


def test_impossible_budget_is_refused_with_the_minimum() -> None:
    with pytest.raises(BudgetError, match=r"minimum achievable is 4\.\d+ M MACs"):
        SearchSpace(blocks=5, budget_macs=1e6).check_budget()
    with pytest.raises(BudgetError, match="no default budget"):
        SearchSpace(blocks=7)


def test_run_refuses_impossible_budget_before_training(tmp_path) -> None:
    from rexnet import search

    def never(*a, **k):  # pragma: no cover - must not be called
        raise AssertionError("trained despite an impossible budget")

    with pytest.raises(BudgetError, match="minimum achievable"):
        search.run(tmp_path, budget_macs=1e6, trials=2, data=None, trainer=never)
    assert not (tmp_path / "search.db").exists()


def test_cli_refuses_impossible_budget(tmp_path, capsys) -> None:
    from rexnet.cli import main

    assert main(["search", "run", "--out", str(tmp_path), "--budget-macs", "1M", "--trials", "2"]) == 2
    assert "minimum achievable" in capsys.readouterr().err


def test_bad_options_raise_rexnet_errors(tmp_path) -> None:
    from rexnet import search

    with pytest.raises(RexnetError, match="single objective"):
        search.run(tmp_path, sampler="nsga2", prune=True, data=None, trainer=lambda *a, **k: 0.0)
    with pytest.raises(RexnetError, match="tolerance"):
        SearchSpace(tolerance=1.5)
