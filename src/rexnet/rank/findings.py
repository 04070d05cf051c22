"""The paper's three observations and three design guides, checked on a study's own numbers.

Each check is an explicit, numeric reading of a sentence of CVPR'21 Sec. 3; the thresholds
are stated in the check's ``criterion`` and never tuned to a particular run. A check whose
blocks or ratios are missing from the run is reported as ``not tested``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from .blocks import BLOCK_KINDS

__all__ = ["Finding", "SIMPLE", "COMPLICATED", "check_findings", "format_findings"]

#: The paper's "simple" and "complicated" nonlinearities.
SIMPLE = ("relu", "relu6", "leaky_relu")
COMPLICATED = ("elu", "silu", "softplus", "hardswish")
HOLDS, PARTLY, FAILS, UNTESTED = "holds", "partly holds", "does not hold", "not tested"

Values = dict[tuple[str, str, float], float]


@dataclass(frozen=True)
class Finding:
    """One checked statement: ``status`` is holds / partly holds / does not hold / not tested."""

    key: str
    statement: str
    criterion: str
    status: str
    detail: str


def _mean(xs: Iterable[float]) -> float:
    xs = list(xs)
    return sum(xs) / len(xs) if xs else float("nan")


class _View:
    def __init__(self, values: Values) -> None:
        self.v = values
        self.blocks = list(dict.fromkeys(k[0] for k in values))
        self.acts = list(dict.fromkeys(k[1] for k in values))
        self.ratios = sorted({k[2] for k in values})
        self.nonlin = [a for a in self.acts if a != "identity"]
        # the groups the nonlinearity findings compare: plain convs, ReLU-like and complicated activations
        self.convs = [b for b in self.blocks if b.startswith("conv")]
        self.simple = [a for a in SIMPLE if a in self.acts]
        self.complicated = [a for a in COMPLICATED if a in self.acts]
        self.compares_activations = bool(self.convs and self.simple and self.complicated)

    def get(self, b: str, a: str, r: float) -> float:
        return self.v[(b, a, r)]

    def mean(self, b: str, acts: Iterable[str], ratios: Iterable[float]) -> float:
        return _mean(self.v[(b, a, r)] for a in acts for r in ratios if (b, a, r) in self.v)


def _o1(w: _View) -> Finding:
    st = "Drastic channel expansion (small d_in/d_out) harms the rank, for convs and IBs alike."
    crit = "per block, mean rank ratio of the nonlinearities at the smallest ratio is >= 0.01 below that at the largest"
    if len(w.ratios) < 2 or not w.nonlin:
        return Finding("O1", st, crit, UNTESTED, "needs >= 2 ratios and a nonlinearity")
    lo, hi = w.ratios[0], w.ratios[-1]
    parts, ok = [], []
    for b in w.blocks:
        a, c = w.mean(b, w.nonlin, [lo]), w.mean(b, w.nonlin, [hi])
        ok.append(c - a >= 0.01)
        parts.append(f"{b} {a:.3f}@{lo:g} vs {c:.3f}@{hi:g}")
    status = HOLDS if all(ok) else PARTLY if any(ok) else FAILS
    return Finding("O1", st, crit, status, "; ".join(parts))


def _o2a(w: _View) -> Finding:
    st = "Nonlinearities expand the rank above the dimension ratio (the Linear diagonal)."
    crit = "every nonlinear curve is >= 0.01 above its ratio at every ratio < 1"
    cells = [(b, a, r) for b in w.blocks for a in w.nonlin for r in w.ratios if r < 1]
    if not cells:
        return Finding("O2a", st, crit, UNTESTED, "needs a nonlinearity and a ratio < 1")
    margin = {c: w.get(*c) - c[2] for c in cells}
    worst = min(margin, key=margin.__getitem__)
    bad = [c for c in cells if margin[c] < 0.01]
    status = HOLDS if not bad else PARTLY if len(bad) < len(cells) else FAILS
    return Finding(
        "O2a",
        st,
        crit,
        status,
        f"smallest margin {margin[worst]:+.3f} ({worst[0]}, {worst[1]}, {worst[2]:g}); "
        f"{len(bad)} of {len(cells)} cells below",
    )


def _o2b(w: _View) -> Finding:
    st = "Complicated nonlinearities (ELU, SiLU, SoftPlus, HSwish) expand the rank more than ReLU-like ones."
    crit = (
        "at the smallest ratio in each plain conv: holds if every complicated one beats every simple one, "
        "partly if only their means are ordered"
    )
    if not w.compares_activations:
        return Finding("O2b", st, crit, UNTESTED, "needs a plain conv block and simple and complicated activations")
    convs, simple, comp, r = w.convs, w.simple, w.complicated, w.ratios[0]
    strict, means, parts = True, True, []
    for b in convs:
        s_max = max(w.get(b, a, r) for a in simple)
        m_s, m_c = w.mean(b, simple, [r]), w.mean(b, comp, [r])
        losers = [a for a in comp if w.get(b, a, r) <= s_max]
        strict &= not losers
        means &= m_c > m_s
        order = sorted(simple + comp, key=lambda a: w.get(b, a, r))
        parts.append(
            f"{b}@{r:g}: simple {m_s:.3f} vs complicated {m_c:.3f}; order "
            + " < ".join(f"{a} {w.get(b, a, r):.3f}" for a in order)
            + (f"; not above ReLU-like: {', '.join(losers)}" if losers else "")
        )
    status = HOLDS if strict else PARTLY if means else FAILS
    return Finding("O2b", st, crit, status, " | ".join(parts))


def _gain(w: _View, blocks: list[str]) -> float:
    return _mean(w.get(b, a, r) - r for b in blocks for a in w.nonlin for r in w.ratios if r < 1)


def _o3(w: _View) -> Finding:
    st = "Nonlinearities matter most for plain convs: the rank expansion is larger for 1x1/3x3 convs than for IBs."
    crit = "mean gain over the diagonal (rank ratio - dim ratio, nonlinearities, ratios < 1): convs > IBs"
    convs = w.convs
    ibs = [b for b in w.blocks if b in BLOCK_KINDS and BLOCK_KINDS[b].bottleneck]
    if not convs or not ibs or not w.nonlin or not any(r < 1 for r in w.ratios):
        return Finding("O3", st, crit, UNTESTED, "needs a conv block, an IB block, a nonlinearity and a ratio < 1")
    gc, gi = _gain(w, convs), _gain(w, ibs)
    return Finding("O3", st, crit, HOLDS if gc > gi else FAILS, f"conv gain {gc:.3f} vs IB gain {gi:.3f}")


def _g1(w: _View) -> Finding:
    st = "Guide 1: expand at most 6x in a 1x1 conv (dimension ratio >= 1/6)."
    crit = (
        "conv1x1, nonlinearities: mean rank deficit (1 - rank ratio) at ratios < 1/6 is >= 2x the deficit "
        "at ratios in [1/6, 1/3] (the loss concentrates beyond 6x expansion)"
    )
    below = [r for r in w.ratios if r < 1 / 6]
    near = [r for r in w.ratios if 1 / 6 <= r <= 1 / 3]
    if "conv1x1" not in w.blocks or not below or not near or not w.nonlin:
        return Finding("G1", st, crit, UNTESTED, "needs conv1x1 with ratios below and in [1/6, 1/3]")
    d_lo = 1 - w.mean("conv1x1", w.nonlin, below)
    d_hi = 1 - w.mean("conv1x1", w.nonlin, near)
    ok = d_lo >= 2 * d_hi
    return Finding(
        "G1",
        st,
        crit,
        HOLDS if ok else FAILS,
        f"deficit {d_lo:.3f} at {', '.join(f'{r:g}' for r in below)} vs {d_hi:.3f} at "
        f"{', '.join(f'{r:g}' for r in near)}",
    )


def _g2(w: _View) -> Finding:
    st = "Guide 2: an IB with a depthwise conv needs a higher channel dimension ratio."
    crit = "mean rank ratio (nonlinearities, ratios < 1) of ib_dw is below that of ib_conv"
    rs = [r for r in w.ratios if r < 1]
    if not {"ib_dw", "ib_conv"} <= set(w.blocks) or not rs or not w.nonlin:
        return Finding("G2", st, crit, UNTESTED, "needs ib_dw and ib_conv and a ratio < 1")
    a, c = w.mean("ib_dw", w.nonlin, rs), w.mean("ib_conv", w.nonlin, rs)
    return Finding("G2", st, crit, HOLDS if a < c else FAILS, f"ib_dw {a:.3f} vs ib_conv {c:.3f}")


def _g3(w: _View) -> Finding:
    st = "Guide 3: put complicated nonlinearities after 1x1/3x3 convs, not after the depthwise conv."
    crit = (
        "advantage of complicated over ReLU-like activations at the smallest ratio is larger in the plain "
        "convs than in ib_dw (whose activations sit around the depthwise conv)"
    )
    if not w.compares_activations or "ib_dw" not in w.blocks:
        return Finding("G3", st, crit, UNTESTED, "needs a plain conv, ib_dw, simple and complicated activations")
    convs, simple, comp, r = w.convs, w.simple, w.complicated, w.ratios[0]
    adv = {b: w.mean(b, comp, [r]) - w.mean(b, simple, [r]) for b in convs + ["ib_dw"]}
    conv_adv = _mean(adv[b] for b in convs)
    return Finding(
        "G3",
        st,
        crit,
        HOLDS if conv_adv > adv["ib_dw"] else FAILS,
        f"advantage @{r:g}: convs {conv_adv:+.3f} vs ib_dw {adv['ib_dw']:+.3f}",
    )


_CHECKS: tuple[Callable[[_View], Finding], ...] = (_o1, _o2a, _o2b, _o3, _g1, _g2, _g3)


def check_findings(values: Values) -> list[Finding]:
    """Check the paper's observations (O1-O3) and design guides (G1-G3) on a study's numbers.

    Args:
        values: ``{(block, activation, ratio): mean rank ratio}``.

    Returns:
        One :class:`Finding` per check, in paper order.
    """
    w = _View(values)
    return [check(w) for check in _CHECKS]


def format_findings(findings: Iterable[Finding]) -> str:
    """Plain-text summary: one block per finding with its status, numbers and criterion."""
    lines = ["Paper findings checked on this run's numbers:"]
    for f in findings:
        lines.append(f"[{f.status.upper()}] {f.key}: {f.statement}")
        lines.append(f"    numbers:   {f.detail}")
        lines.append(f"    criterion: {f.criterion}")
    return "\n".join(lines)
