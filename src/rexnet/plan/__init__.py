"""Channel plans: pure, torch-free descriptions of networks and their exact costs."""

from .budget import BudgetSolution, solve_for_budget
from .cost import Cost, conv_out_size, count_macs, count_params, layer_costs, plan_cost
from .describe import PLAN_COLUMNS, plan_rows
from .rules import (
    REXNET_STAGE_LAYERS,
    REXNET_STAGE_STRIDES,
    ib_plan,
    make_divisible,
    mobilenetv2_plan,
    piecewise_linear_channels,
    rexnet_lite_plan,
    rexnet_plan,
    stage_strides,
)
from .spec import ACTIVATIONS, Activation, BlockSpec, ConvSpec, HeadSpec, NetworkPlan, plan_from_dict

__all__ = [
    "ACTIVATIONS",
    "Activation",
    "PLAN_COLUMNS",
    "BlockSpec",
    "BudgetSolution",
    "ConvSpec",
    "Cost",
    "HeadSpec",
    "NetworkPlan",
    "REXNET_STAGE_LAYERS",
    "REXNET_STAGE_STRIDES",
    "conv_out_size",
    "count_macs",
    "count_params",
    "ib_plan",
    "layer_costs",
    "make_divisible",
    "mobilenetv2_plan",
    "piecewise_linear_channels",
    "plan_cost",
    "plan_from_dict",
    "plan_rows",
    "rexnet_lite_plan",
    "rexnet_plan",
    "solve_for_budget",
    "stage_strides",
]
