"""Channel plans: exact channel lists, costs against the fact sheet, budgets, properties."""

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rexnet.errors import BudgetError
from rexnet.plan import (
    count_macs,
    count_params,
    ib_plan,
    make_divisible,
    piecewise_linear_channels,
    plan_from_dict,
    rexnet_lite_plan,
    rexnet_plan,
    solve_for_budget,
)
from rexnet.zoo import get_plan, list_models

GOLDEN = {
    k: v for k, v in json.loads((Path(__file__).parent / "golden_counts.json").read_text()).items() if k[0] != "_"
}


def test_registry_matches_golden_names():
    assert set(GOLDEN) == set(list_models())


@pytest.mark.parametrize("name", sorted(GOLDEN))
def test_counts_equal_fact_sheet(name):
    params_m, gmacs = GOLDEN[name]
    plan = get_plan(name)
    assert round(count_params(plan) / 1e6, 3) == pytest.approx(params_m, abs=1e-9)
    assert round(count_macs(plan, 224) / 1e9, 3) == pytest.approx(gmacs, abs=1e-9)


def test_rexnet_100_channels_shortcuts_and_se():
    plan = rexnet_plan(1.0)
    assert plan.out_channels == (16, 27, 38, 50, 61, 72, 84, 95, 106, 117, 128, 140, 151, 162, 174, 185)
    assert [i for i, b in enumerate(plan.blocks) if not b.shortcut] == [0, 1, 3, 5, 11]
    assert [i for i, b in enumerate(plan.blocks) if b.se_channels] == list(range(3, 16))
    assert plan.blocks[3].se_channels == 228 // 12 == 19
    assert plan.blocks[15].exp_channels == 1044 and plan.blocks[15].se_channels == 87
    assert [i for i, b in enumerate(plan.blocks) if b.stride == 2] == [1, 3, 5, 11]
    assert plan.stem.out_channels == 32 and plan.num_features == 1280
    # activations: SiLU only after the expansion conv, ReLU6 after the depthwise conv
    assert {b.act_exp for b in plan.blocks[1:]} == {"silu"} and {b.act_dw for b in plan.blocks} == {"relu6"}
    assert not plan.blocks[0].has_expansion


@pytest.mark.parametrize(
    "width,stem,channels,pen",
    [
        (0.6, 32, "16,23,30,36,43,50,56,63,70,77,84,90,97,104,111,117", 768),
        (1.3, 42, "21,35,50,65,79,94,109,123,138,152,167,182,196,211,226,240", 1664),
        (3.0, 96, "48,82,116,149,183,217,250,284,318,352,386,419,453,487,520,554", 3840),
    ],
)
def test_width_rule(width, stem, channels, pen):
    plan = rexnet_plan(width)
    assert plan.stem.out_channels == stem
    assert plan.out_channels == tuple(int(c) for c in channels.split(","))
    assert plan.num_features == pen


def test_lite_rule():
    plan = rexnet_lite_plan(1.0)
    assert plan.out_channels == (16, 32, 40, 48, 64, 72, 80, 96, 104, 112, 128, 136, 144, 160, 168, 184)
    assert plan.head.hidden_channels == 1024
    assert all(b.se_channels == 0 and b.act_exp == "relu6" for b in plan.blocks)


def test_make_divisible():
    assert make_divisible(27, 8) == 32 and make_divisible(20, 8) == 24 and make_divisible(3, 8) == 8
    assert make_divisible(91, 8) == 88 and make_divisible(18, 16) == 32  # never > 10 % below


def test_plan_roundtrip_dict():
    plan = rexnet_lite_plan(1.5)
    assert plan_from_dict(json.loads(json.dumps(plan.to_dict()))) == plan


def test_piecewise_linear_covers_line_and_staircase():
    assert piecewise_linear_channels(5, [(0, 0.0), (4, 1.0)], a=40, b=20) == [20, 30, 40, 50, 60]
    stairs = piecewise_linear_channels(6, [(0, 0), (1, 0), (2, 1), (3, 1), (4, 2), (5, 2)], a=16, b=16)
    assert stairs == [16, 16, 32, 32, 48, 48]
    with pytest.raises(ValueError, match="strictly increasing"):
        piecewise_linear_channels(4, [(2, 0), (1, 1)], 1, 1)


def test_budget_solver_meets_budget_and_refuses_impossible():
    sol = solve_for_budget(rexnet_plan, macs=0.4e9)
    assert sol.cost.macs <= 0.4e9 and sol.value == pytest.approx(1.0, abs=0.02)
    sol = solve_for_budget(rexnet_plan, params=10e6, macs=2e9)
    assert sol.cost.params <= 10e6 and sol.cost.macs <= 2e9
    with pytest.raises(BudgetError, match="minimum achievable"):
        solve_for_budget(lambda a: ib_plan([int(16 + a)] * 5, [1, 2, 2, 2, 1]), macs=1e5, lo=1, hi=100, image_size=32)


@pytest.mark.parametrize("bad", [dict(width_mult=0), dict(width_mult=-1.0), dict(depth_mult=0)])
def test_bad_multipliers(bad):
    with pytest.raises(ValueError, match="must be a positive number"):
        rexnet_plan(**bad)


@settings(max_examples=40, deadline=None)
@given(width=st.floats(0.25, 4.0), depth=st.floats(0.5, 2.0))
def test_any_width_depth_is_valid_and_monotone(width, depth):
    plan = rexnet_plan(width, depth)
    chans = plan.out_channels
    assert all(c >= 1 for c in chans) and list(chans) == sorted(chans)
    assert count_macs(plan) > 0 and count_params(plan) > 0
