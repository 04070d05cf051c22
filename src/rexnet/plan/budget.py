"""Meet a MAC or parameter budget by solving for one scalar of a plan family.

The scalar is usually the width multiplier (``rexnet_plan``) or the slope ``a`` of a
piecewise-linear rule. Costs are computed from plans alone, so solving takes milliseconds.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ..errors import BudgetError
from .cost import Cost, plan_cost
from .spec import NetworkPlan

__all__ = ["BudgetSolution", "solve_for_budget"]


@dataclass(frozen=True)
class BudgetSolution:
    """The largest scalar whose plan fits the budget, with that plan and its cost."""

    value: float
    plan: NetworkPlan
    cost: Cost


def solve_for_budget(
    make_plan: Callable[[float], NetworkPlan],
    *,
    macs: float | None = None,
    params: float | None = None,
    lo: float = 0.05,
    hi: float = 8.0,
    image_size: int = 224,
    num_classes: int = 1000,
    iterations: int = 60,
) -> BudgetSolution:
    """Find the largest ``x`` in ``[lo, hi]`` whose ``make_plan(x)`` stays within every budget.

    Costs grow with ``x`` up to rounding, so bisection finds the boundary; the result never
    exceeds a budget.

    Args:
        make_plan: Maps the scalar to a plan, e.g. ``lambda w: rexnet_plan(w)``.
        macs: MAC budget (multiply-accumulates at ``image_size``), or ``None``.
        params: Parameter budget, or ``None``.
        lo: Smallest scalar tried.
        hi: Largest scalar tried.
        image_size: Input size for the MAC count.
        num_classes: Classifier outputs counted.
        iterations: Bisection steps.

    Returns:
        The solution at the largest feasible scalar.

    Raises:
        BudgetError: No budget given, or even ``make_plan(lo)`` exceeds it (the message gives
            the smallest achievable figures).

    Example:
        >>> from rexnet.plan import rexnet_plan
        >>> sol = solve_for_budget(rexnet_plan, macs=0.4e9)
        >>> round(sol.value, 2), sol.cost.macs <= 0.4e9
        (1.0, True)
    """
    if macs is None and params is None:
        raise BudgetError("solve_for_budget needs a budget: pass macs=... and/or params=...")
    for name, v in (("macs", macs), ("params", params)):
        if v is not None and v <= 0:
            raise BudgetError(f"budget {name} must be positive, got {v}")
    if not 0 < lo < hi:
        raise BudgetError(f"need 0 < lo < hi, got lo={lo}, hi={hi}")

    def cost_of(x: float) -> tuple[NetworkPlan, Cost]:
        plan = make_plan(x)
        return plan, plan_cost(plan, image_size, num_classes)

    def fits(c: Cost) -> bool:
        return (macs is None or c.macs <= macs) and (params is None or c.params <= params)

    plan, cost = cost_of(lo)
    if not fits(cost):
        raise BudgetError(
            f"budget below the smallest valid network: the minimum achievable is {cost.macs / 1e6:.2f} M MACs "
            f"and {cost.params / 1e6:.4f} M params (at scalar {lo}); asked for "
            f"macs={'-' if macs is None else f'{macs / 1e6:.2f} M'}, "
            f"params={'-' if params is None else f'{params / 1e6:.4f} M'}"
        )
    best = BudgetSolution(lo, plan, cost)
    plan, cost = cost_of(hi)
    if fits(cost):
        return BudgetSolution(hi, plan, cost)
    a, b = lo, hi
    for _ in range(iterations):
        mid = (a + b) / 2
        plan, cost = cost_of(mid)
        if fits(cost):
            a, best = mid, BudgetSolution(mid, plan, cost)
        else:
            b = mid
    return best
