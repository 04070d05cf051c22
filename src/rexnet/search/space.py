"""The search space of the paper's Sec. 4: monotone channel curves ``c_i = a*f(i) + b`` under a budget.

Pure arithmetic on :mod:`rexnet.plan`; nothing here builds a network or trains.

* **Network** (fixed): ``d`` inverted bottlenecks built by :func:`rexnet.plan.ib_plan` - stem 3x3
  with 16 channels + BN + ReLU, expansion ratio 6, ReLU6, the 1280-wide penultimate expansion
  layer, no SE.
* **Strides** (fixed, :func:`search_strides`): MobileNetV2's downsampling positions scaled to
  ``d`` blocks, in MobileNetV2's common 32x32 (CIFAR) layout.
* **Shape** (searched, :class:`Shape`): ``f`` is piecewise linear through a subset of *break
  indices* (the first and last block always included) with non-negative integer *rises* between
  consecutive breaks, normalised to ``f(0) = 0``, ``f(d-1) = 1``; the *ratio* ``c_0 / c_{d-1}``
  fixes ``b / (a + b)``. A rise of 0 gives a flat run, so staircases and lines are both members.
* **Scale** (solved, :func:`plan_for_budget`): ``a + b`` is the largest value whose plan fits the
  MAC/parameter budget (:func:`rexnet.plan.solve_for_budget`); what rounding leaves of the budget
  goes to one more channel on the longest suffix of blocks that still fits
  (:meth:`SearchSpace.fill`); the plan must land within ``tolerance`` of the binding budget.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from ..errors import BudgetError, OutOfToleranceError
from ..plan import (
    BudgetSolution,
    NetworkPlan,
    ib_plan,
    mobilenetv2_plan,
    piecewise_linear_channels,
    plan_cost,
    solve_for_budget,
)

__all__ = [
    "MAX_RISE",
    "PAPER_BUDGETS",
    "OutOfToleranceError",
    "SearchSpace",
    "Shape",
    "linear_params",
    "params_for_curve",
    "plan_for_budget",
    "search_strides",
    "shape_from_params",
    "staircase_params",
    "suggest_shape",
    "trial_plan",
]

#: Rises between break indices are integers in ``0..MAX_RISE``.
MAX_RISE = 16
#: The paper's MAC budgets per number of blocks (Table 3); other ``d`` need an explicit budget.
PAPER_BUDGETS = {5: 30e6, 9: 100e6, 13: 300e6}
# MobileNetV2 for 32x32 inputs (stem stride 1, first stride-2 stage made stride 1): its 17 blocks
# downsample at blocks 3, 6 and 13, for a total stride of 8.
_MBV2_BLOCKS = 17
_MBV2_CIFAR_DOWNSAMPLE = (3, 6, 13)


class _Suggester(Protocol):  # the part of optuna.Trial used here (keeps this module optuna-free)
    def suggest_categorical(self, name: str, choices: Sequence[Any]) -> Any: ...
    def suggest_int(self, name: str, low: int, high: int) -> int: ...
    def suggest_float(self, name: str, low: float, high: float) -> float: ...


def search_strides(num_blocks: int) -> tuple[int, ...]:
    """Block strides for ``num_blocks`` blocks: MobileNetV2's 32x32 layout scaled to ``d``.

    MobileNetV2 adapted to CIFAR (stem stride 1) downsamples at blocks 3, 6 and 13 of 17. Block
    ``round(p * d / 17)`` gets stride 2 for each such ``p`` (clamped to ``d - 1``, duplicates
    merged), so ``d = 17`` reproduces MobileNetV2 exactly and the total stride is 8 whenever
    ``d >= 5``: 32x32 inputs end at 4x4.

    Example:
        >>> search_strides(5), search_strides(9)
        ((1, 2, 2, 1, 2), (1, 1, 2, 2, 1, 1, 1, 2, 1))
    """
    if num_blocks < 1:
        raise BudgetError(f"blocks must be >= 1, got {num_blocks}")
    strided = {min(num_blocks - 1, round(p * num_blocks / _MBV2_BLOCKS)) for p in _MBV2_CIFAR_DOWNSAMPLE}
    return tuple(2 if i in strided else 1 for i in range(num_blocks))


@dataclass(frozen=True)
class Shape:
    """The searched part of a channel curve, before scaling to the budget.

    Attributes:
        breaks: Break indices, increasing, first ``0`` and last ``d - 1``.
        rises: Integer rise of ``f`` from each break to the next (``len(breaks) - 1`` values).
        ratio: ``c_0 / c_{d-1}`` in ``(0, 1]``; ignored when all rises are 0 (a flat curve).
    """

    breaks: tuple[int, ...]
    rises: tuple[int, ...]
    ratio: float

    def knots(self) -> list[tuple[float, float]]:
        """``(index, f)`` pairs with ``f`` normalised to run from 0 to 1 (all 0 when flat)."""
        total = sum(self.rises)
        values, acc = [0.0], 0
        for r in self.rises:
            acc += r
            values.append(acc / total if total else 0.0)
        return [(float(i), v) for i, v in zip(self.breaks, values)]

    @property
    def flat(self) -> bool:
        return sum(self.rises) == 0


@dataclass(frozen=True)
class SearchSpace:
    """Everything fixed during a search: depth, input, budget, tolerance.

    Args:
        blocks: Number of inverted bottlenecks ``d``.
        budget_macs: MAC budget at ``image_size`` (``None``: the paper's for ``d`` in 5/9/13).
        budget_params: Parameter budget, or ``None`` for none.
        tolerance: A plan must reach at least ``1 - tolerance`` of its binding budget.
        image_size: Proxy input size (32 for CIFAR).
        num_classes: Classifier outputs counted in the costs.
        min_channels: Narrowest block; the smallest network has every block this wide.
        max_channels: Widest last block the scale solver tries.
        stem_stride: 1 for 32x32 proxies (MobileNetV2's CIFAR layout), 2 for larger inputs.
        macs_fractions: When given, each candidate also samples its budget among these fractions of
            the budget (``macs_fraction``): the width becomes a searched choice, for latency budgets.
    """

    blocks: int = 5
    budget_macs: float | None = None
    budget_params: float | None = None
    tolerance: float = 0.03
    image_size: int = 32
    num_classes: int = 10
    min_channels: int = 8
    max_channels: int = 4096
    stem_stride: int = 1
    macs_fractions: tuple[float, ...] = ()

    def __post_init__(self) -> None:
        if self.blocks < 1:
            raise BudgetError(f"blocks must be >= 1, got {self.blocks}")
        if self.budget_macs is None and self.budget_params is None:
            if self.blocks not in PAPER_BUDGETS:
                raise BudgetError(
                    f"no default budget for blocks={self.blocks} (the paper's are for "
                    f"{', '.join(map(str, PAPER_BUDGETS))}); pass budget_macs=... or budget_params=..."
                )
            object.__setattr__(self, "budget_macs", PAPER_BUDGETS[self.blocks])
        for name in ("budget_macs", "budget_params"):
            v = getattr(self, name)
            if v is not None and v <= 0:
                raise BudgetError(f"{name} must be positive, got {v}")
        if not 0 < self.tolerance < 1:
            raise BudgetError(f"tolerance must be in (0, 1), got {self.tolerance}")
        if not 1 <= self.min_channels < self.max_channels:
            raise BudgetError(f"need 1 <= min_channels < max_channels, got {self.min_channels}, {self.max_channels}")
        if self.image_size < 8:
            raise BudgetError(f"image_size must be >= 8, got {self.image_size}")
        if self.num_classes < 1:
            raise BudgetError(f"num_classes must be >= 1, got {self.num_classes}")
        if self.stem_stride not in (1, 2):
            raise BudgetError(f"stem_stride must be 1 or 2, got {self.stem_stride}")
        if any(not 0 < f <= 1 for f in self.macs_fractions):
            raise BudgetError(f"macs_fractions must be in (0, 1], got {self.macs_fractions}")

    @property
    def strides(self) -> tuple[int, ...]:
        return search_strides(self.blocks)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        if not self.macs_fractions:  # absent, as in studies created before the field existed (they still open)
            d.pop("macs_fractions")
        else:
            d["macs_fractions"] = list(self.macs_fractions)
        return d

    def scaled(self, fraction: float) -> SearchSpace:
        """This space with its budgets times ``fraction`` and no further fractions (one candidate's target)."""
        return dataclasses.replace(
            self,
            budget_macs=None if self.budget_macs is None else self.budget_macs * fraction,
            budget_params=None if self.budget_params is None else self.budget_params * fraction,
            macs_fractions=(),
        )

    def smallest(self) -> SearchSpace:
        """The space at its smallest sampled budget (the one :meth:`check_budget` must pass)."""
        return self.scaled(min(self.macs_fractions)) if self.macs_fractions else self

    def plan(self, channels: Sequence[int]) -> NetworkPlan:
        """The network of the space with block output channels ``channels``."""
        plan = ib_plan(channels, self.strides, family="search")
        return dataclasses.replace(plan, stem=dataclasses.replace(plan.stem, stride=self.stem_stride))

    def channels(self, shape: Shape, scale: float) -> list[int]:
        """``c_i = max(min_channels, round(a*f(i) + b))`` with ``a + b = scale``, ``b = ratio * scale``."""
        if len(shape.breaks) != len(shape.rises) + 1 or shape.breaks[0] != 0 or shape.breaks[-1] != self.blocks - 1:
            raise BudgetError(f"shape {shape} does not fit {self.blocks} blocks")
        ratio = 1.0 if shape.flat else shape.ratio
        a, b = scale * (1 - ratio), scale * ratio
        return [max(self.min_channels, c) for c in piecewise_linear_channels(self.blocks, shape.knots(), a, b)]

    def solve(self, shape: Shape) -> BudgetSolution:
        """The largest scale whose plan fits the budget (no tolerance check)."""
        return solve_for_budget(
            lambda s: self.plan(self.channels(shape, s)),
            macs=self.budget_macs,
            params=self.budget_params,
            lo=float(self.min_channels),
            hi=float(self.max_channels),
            image_size=self.image_size,
            num_classes=self.num_classes,
        )

    def fill(self, sol: BudgetSolution) -> BudgetSolution:
        """Spend what rounding left of the budget: add 1 channel to the longest suffix of blocks that fits.

        Adding to a suffix keeps the curve monotone and moves each block by at most a channel or two
        past ``round(a*f(i) + b)``; it lifts the budget use of narrow, flat curves, whose channels all
        cross a rounding step at once.
        """
        channels = list(sol.plan.out_channels)
        while True:
            for k in range(self.blocks):
                cand = [c + (i >= k) for i, c in enumerate(channels)]
                plan = self.plan(cand)
                cost = plan_cost(plan, self.image_size, self.num_classes)
                if self.utilisation(cost.macs, cost.params) <= 1.0:
                    channels, sol = cand, BudgetSolution(sol.value, plan, cost)
                    break
            else:
                return sol

    def utilisation(self, macs: float, params: float) -> float:
        """Fraction of the binding budget used: ``max(macs / M, params / P)``."""
        used = []
        if self.budget_macs is not None:
            used.append(macs / self.budget_macs)
        if self.budget_params is not None:
            used.append(params / self.budget_params)
        return max(used)

    def check_budget(self) -> BudgetSolution:
        """Refuse a budget below the smallest network of the space (every block ``min_channels`` wide).

        Raises:
            BudgetError: The budget is impossible; the message gives the minimum achievable figures.
        """
        flat = Shape(tuple(sorted({0, self.blocks - 1})), (0,) if self.blocks > 1 else (), 1.0)
        try:
            return self.solve(flat)
        except BudgetError as e:
            raise BudgetError(f"{self.blocks} blocks at {self.image_size}x{self.image_size}: {e}") from None


def plan_for_budget(shape: Shape, space: SearchSpace) -> tuple[NetworkPlan, dict[str, Any]]:
    """Rescale ``shape`` to the budget: solve for ``a``, ``b`` and check the tolerance.

    Returns:
        The plan and a record of it (channels, a, b, MACs, params, budget utilisation).

    Raises:
        BudgetError: The budget is below the smallest network.
        OutOfToleranceError: The best fitting plan uses less than ``1 - tolerance`` of the budget.

    Example:
        >>> plan, info = plan_for_budget(Shape((0, 4), (1,), 0.5), SearchSpace(blocks=5))
        >>> info["channels"] == sorted(info["channels"]), 0.97 <= info["utilisation"] <= 1
        (True, True)
    """
    sol = space.fill(space.solve(shape))
    use = space.utilisation(sol.cost.macs, sol.cost.params)
    if use < 1 - space.tolerance:
        raise OutOfToleranceError(
            f"shape {shape} reaches only {use:.1%} of the budget (tolerance {space.tolerance:.0%}) "
            f"at {sol.cost.macs / 1e6:.2f} M MACs, {sol.cost.params / 1e6:.4f} M params"
        )
    ratio = 1.0 if shape.flat else shape.ratio
    info = {
        "channels": list(sol.plan.out_channels),
        "a": sol.value * (1 - ratio),
        "b": sol.value * ratio,
        "macs": sol.cost.macs,
        "params": sol.cost.params,
        "utilisation": use,
        "breaks": list(shape.breaks),
        "rises": list(shape.rises),
        "ratio": ratio,
    }
    return sol.plan, info


def suggest_shape(trial: _Suggester, blocks: int) -> Shape:
    """Sample a :class:`Shape` through Optuna's suggest API (the trial -> shape function).

    Parameters: ``break_i`` in {0, 1} for interior blocks ``i``, ``rise_j`` in ``0..MAX_RISE`` for
    each break ``j > 0``, ``ratio`` in [0.05, 1].
    """
    breaks = [0] + [i for i in range(1, blocks - 1) if trial.suggest_categorical(f"break_{i}", [0, 1])]
    if blocks > 1:
        breaks.append(blocks - 1)
    rises = tuple(int(trial.suggest_int(f"rise_{j}", 0, MAX_RISE)) for j in breaks[1:])
    ratio = float(trial.suggest_float("ratio", 0.05, 1.0))
    return Shape(tuple(breaks), rises, ratio)


def trial_plan(trial: _Suggester, space: SearchSpace) -> tuple[NetworkPlan, dict[str, Any]]:
    """Trial -> plan: sample a shape (and, with ``macs_fractions``, a budget fraction) and rescale it
    to the budget (no training, no torch)."""
    shape = suggest_shape(trial, space.blocks)
    if not space.macs_fractions:
        return plan_for_budget(shape, space)
    fraction = float(trial.suggest_categorical("macs_fraction", list(space.macs_fractions)))
    plan, info = plan_for_budget(shape, space.scaled(fraction))
    return plan, {**info, "macs_fraction": fraction}


class _Fixed:
    """Replays a parameter dict through the suggest API."""

    def __init__(self, params: Mapping[str, Any]) -> None:
        self.params = params

    def suggest_categorical(self, name: str, choices: Sequence[Any]) -> Any:
        return self.params[name]

    def suggest_int(self, name: str, low: int, high: int) -> int:
        return self.params[name]

    def suggest_float(self, name: str, low: float, high: float) -> float:
        return self.params[name]


def shape_from_params(params: Mapping[str, Any], blocks: int) -> Shape:
    """The :class:`Shape` a finished trial's parameters describe."""
    return suggest_shape(_Fixed(params), blocks)


def params_for_curve(curve: Sequence[float], blocks: int) -> dict[str, Any]:
    """Parameters of the shape nearest to a monotone curve (every index a break, rises quantised).

    Example:
        >>> p = params_for_curve([16, 32, 48, 64, 80], 5)
        >>> [p[f"rise_{j}"] for j in range(1, 5)], p["ratio"]
        ([16, 16, 16, 16], 0.2)
    """
    deltas = [max(0.0, y1 - y0) for y0, y1 in zip(curve, curve[1:])]
    top = max(deltas, default=0.0)
    params: dict[str, Any] = {f"break_{i}": 1 for i in range(1, blocks - 1)}
    for j, dlt in enumerate(deltas, start=1):
        params[f"rise_{j}"] = int(round(MAX_RISE * dlt / top)) if top else 0
    params["ratio"] = min(1.0, max(0.05, curve[0] / curve[-1]))
    return params


def staircase_params(blocks: int) -> dict[str, Any]:
    """MobileNetV2's stage-wise staircase resampled to ``blocks`` blocks, as search parameters.

    Block ``i`` takes the output channels of MobileNetV2 block ``floor((i + 0.5) * 17 / d)``
    (16, 24, 24, 32, 32, 32, 64, 64, 64, 64, 96, 96, 96, 160, 160, 160, 320), rises quantised to
    the ``0..MAX_RISE`` grid; the budget solver then rescales it like any sample.
    """
    mbv2 = mobilenetv2_plan().out_channels
    curve = [float(mbv2[int((i + 0.5) * len(mbv2) / blocks)]) for i in range(blocks)]
    return params_for_curve(curve, blocks)


def linear_params(blocks: int) -> dict[str, Any]:
    """ReXNet's linear rule ``16 + 180*i/d`` as search parameters (breaks only at the ends)."""
    params: dict[str, Any] = {f"break_{i}": 0 for i in range(1, blocks - 1)}
    if blocks > 1:
        params[f"rise_{blocks - 1}"] = MAX_RISE
    params["ratio"] = 16 / (16 + 180 * (blocks - 1) / blocks)
    return params
