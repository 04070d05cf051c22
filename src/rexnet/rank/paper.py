"""The paper's Figure 1, as read by eye (shared/reference/rexnet-facts.md Sec. 3), and scoring against it.

Each reading is an interval ``(lo, hi)``; a study value's residual is its distance to the
interval (0 inside). The IB panels were read as one band for all nonlinearities, so every
nonlinearity is scored against the band. Linear is the diagonal in every panel.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

__all__ = ["PAPER_FIG1", "PAPER_ORDER_CONV1X1", "paper_reading", "PanelScore", "score_against_paper"]

_R = tuple[float, float]


def _iv(lo: float, hi: float | None = None) -> _R:
    return (lo, lo if hi is None else hi)


_IB_CONV = {
    0.1: _iv(0.30, 0.38),
    0.2: _iv(0.55, 0.69),
    0.3: _iv(0.75, 0.84),
    0.4: _iv(0.85, 0.91),
    0.5: _iv(0.92, 0.96),
    0.6: _iv(0.95, 0.97),
    0.8: _iv(0.99),
    1.0: _iv(1.0),
}
_IB_DW = {
    0.1: _iv(0.19, 0.26),
    0.2: _iv(0.36, 0.44),
    0.3: _iv(0.48, 0.58),
    0.5: _iv(0.70, 0.76),
    0.7: _iv(0.84, 0.87),
    1.0: _iv(1.0),
}
_NONLIN = ("relu6", "relu", "leaky_relu", "elu", "softplus", "hardswish", "silu")
_RELU = {0.1: _iv(0.85, 0.86), 0.2: _iv(0.90, 0.91), 0.4: _iv(0.94), 1.0: _iv(0.96, 0.965)}

#: ``{block: {activation: {ratio: (lo, hi)}}}``; identity is handled by :func:`paper_reading`.
PAPER_FIG1: dict[str, dict[str, dict[float, _R]]] = {
    "conv1x1": {
        "relu": _RELU,
        "relu6": _RELU,
        "leaky_relu": {0.1: _iv(0.875), 0.2: _iv(0.93), 1.0: _iv(0.99)},
        "elu": {0.1: _iv(0.915), 0.2: _iv(0.96)},
        "softplus": {0.1: _iv(0.935)},
        "hardswish": {0.1: _iv(0.945)},
        "silu": {0.1: _iv(0.955), 0.2: _iv(0.985), 0.4: _iv(0.99, 1.0)},
    },
    "conv3x3": {
        "relu": {0.1: _iv(0.87), 1.0: _iv(0.97)},
        "relu6": {0.1: _iv(0.87), 1.0: _iv(0.97)},
        "elu": {0.1: _iv(0.92)},
        "hardswish": {0.1: _iv(0.96), 1.0: _iv(1.0)},
        "silu": {0.1: _iv(0.96), 1.0: _iv(1.0)},
    },
    "ib_conv": {a: _IB_CONV for a in _NONLIN},
    "ib_dw": {a: _IB_DW for a in _NONLIN},
}

#: The paper's order at ratio 0.1 in panel (a), lowest first (ReLU6 = ReLU).
PAPER_ORDER_CONV1X1 = ("relu", "leaky_relu", "elu", "softplus", "hardswish", "silu")


def paper_reading(block: str, activation: str, ratio: float) -> _R | None:
    """The paper's reading at one point, or ``None`` where Fig. 1 was not read there."""
    if activation == "identity":
        return (ratio, ratio)
    return PAPER_FIG1.get(block, {}).get(activation, {}).get(round(ratio, 6))


@dataclass(frozen=True)
class PanelScore:
    """RMS residual to the paper over the panel's read cells, and the number of cells."""

    block: str
    rms: float
    cells: int


def score_against_paper(values: Mapping[tuple[str, str, float], float]) -> tuple[float, list[PanelScore], float]:
    """Score a study against Fig. 1.

    Args:
        values: ``{(block, activation, ratio): mean rank ratio}``.

    Returns:
        ``(overall, panels, order_agreement)``: the mean of the per-panel RMS residuals; the
        panels; and the fraction of pairs of :data:`PAPER_ORDER_CONV1X1` whose order at ratio
        0.1 in conv1x1 agrees with the paper (NaN if not measured).
    """
    by_block: dict[str, list[float]] = {}
    for (b, a, r), v in values.items():
        iv = paper_reading(b, a, r)
        if iv is None:
            continue
        res = max(iv[0] - v, 0.0, v - iv[1])
        by_block.setdefault(b, []).append(res * res)
    panels = [PanelScore(b, math.sqrt(sum(x) / len(x)), len(x)) for b, x in by_block.items()]
    overall = sum(p.rms for p in panels) / len(panels) if panels else float("nan")
    acts = [a for a in PAPER_ORDER_CONV1X1 if ("conv1x1", a, 0.1) in values]
    pairs = [(acts[i], acts[j]) for i in range(len(acts)) for j in range(i + 1, len(acts))]
    agree = sum(values[("conv1x1", lo, 0.1)] < values[("conv1x1", hi, 0.1)] for lo, hi in pairs)
    order = agree / len(pairs) if pairs else float("nan")
    return overall, panels, order
