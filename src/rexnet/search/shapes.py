"""Channel curves described: how linear a curve is (R² of a line fit) and its class, linear / staircase / other."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["linear_r2", "shape_class"]

_RULE_CLASS = {"rexnet_linear": "linear", "mobilenetv2_staircase": "staircase"}


def linear_r2(values: Sequence[float]) -> float:
    """R² of a least-squares line through ``values`` against their index (1.0 for a flat curve).

    Example:
        >>> linear_r2([1, 2, 3]), round(linear_r2([1, 1, 1, 5]), 3)
        (1.0, 0.6)
    """
    y = np.asarray(values, dtype=float)
    if y.size < 3:
        return 1.0
    x = np.arange(y.size, dtype=float)
    ss_tot = float(((y - y.mean()) ** 2).sum())
    if ss_tot == 0:
        return 1.0
    fit = np.polyval(np.polyfit(x, y, 1), x)
    return 1.0 - float(((y - fit) ** 2).sum()) / ss_tot


def shape_class(channels: Sequence[int], rule: str | None = None) -> str:
    """``linear``, ``staircase`` or ``other`` for a channel curve (the seeded rules keep their own class).

    A *staircase* has flat runs: at least a third of its steps rise by at most one channel (or 2 % of
    the widest block); a *linear* curve has no flat run (or is flat throughout) and a line fits it with
    R² >= 0.95 (:func:`~rexnet.search.report.linear_r2`); anything else is *other*.

    Example:
        >>> shape_class([16, 40, 64, 88, 112]), shape_class([16, 32, 32, 64, 64]), shape_class([16, 18, 20, 90, 96])
        ('linear', 'staircase', 'other')
    """
    if rule in _RULE_CLASS:
        return _RULE_CLASS[rule]
    diffs = [b - a for a, b in zip(channels, channels[1:])]
    tol = max(1.0, 0.02 * max(channels, default=0))
    flats = sum(d <= tol for d in diffs)
    if diffs and flats < len(diffs) and flats * 3 >= len(diffs):
        return "staircase"
    return "linear" if flats == len(diffs) or linear_r2(channels) >= 0.95 else "other"
