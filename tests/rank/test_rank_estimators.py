"""Rank estimators, paper scoring and the findings checks on synthetic numbers."""

from __future__ import annotations

import pytest
import torch

from rexnet.errors import RexnetError
from rexnet.rank import check_findings, format_findings, parse_estimator, rank_from_singular_values, singular_values
from rexnet.rank.paper import paper_reading, score_against_paper


def _matrix(sv: list[float], m: int = 6, n: int = 10) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    u, _ = torch.linalg.qr(torch.randn(m, m, generator=g, dtype=torch.float64))
    v, _ = torch.linalg.qr(torch.randn(n, n, generator=g, dtype=torch.float64))
    s = torch.zeros(m, n, dtype=torch.float64)
    s[range(len(sv)), range(len(sv))] = torch.tensor(sv, dtype=torch.float64)
    return u @ s @ v.T


def test_estimators_on_known_spectrum():
    a = _matrix([1.0, 0.5, 0.05, 5e-3, 1e-9, 0.0])[None]
    for method in ("svd", "gram"):
        s = singular_values(a, method)
        assert s.shape == (1, 6) and torch.all(s[0, :-1] >= s[0, 1:])
        assert rank_from_singular_values(s, (6, 10), "matrix_rank", torch.float32).item() == 4
        assert rank_from_singular_values(s, (6, 10), "rtol:1e-2").item() == 3
        assert rank_from_singular_values(s, (6, 10), "rtol:0.1").item() == 2
        assert rank_from_singular_values(s, (6, 10), "energy:0.99").item() == 2
        assert rank_from_singular_values(s, (6, 10), "stable").item() == pytest.approx(1.2525, abs=1e-3)
    eye = singular_values(torch.eye(5)[None])
    assert rank_from_singular_values(eye, (5, 5), "erank").item() == pytest.approx(5.0)


def test_matrix_rank_matches_torch():
    g = torch.Generator().manual_seed(1)
    x = torch.relu(torch.randn(4, 40, 3, generator=g) @ torch.randn(4, 3, 80, generator=g)) ** 2
    s = singular_values(x)
    ours = rank_from_singular_values(s, (40, 80), "matrix_rank")
    assert ours.tolist() == torch.linalg.matrix_rank(x).double().tolist()


@pytest.mark.parametrize("spec", ["rank", "rtol", "rtol:2", "energy:x", "erank:3"])
def test_bad_estimator(spec):
    with pytest.raises(RexnetError):
        parse_estimator(spec)


def test_paper_scoring():
    assert paper_reading("conv1x1", "identity", 0.3) == (0.3, 0.3)
    assert paper_reading("conv1x1", "silu", 0.1) == (0.955, 0.955)
    assert paper_reading("conv1x1", "silu", 0.7) is None
    exact = {("conv1x1", "relu", 0.1): 0.855, ("ib_dw", "silu", 0.1): 0.2, ("conv1x1", "silu", 0.1): 0.955}
    score, panels, order = score_against_paper(exact)
    assert score == 0 and {p.block for p in panels} == {"conv1x1", "ib_dw"} and order == 1.0
    off = {**exact, ("ib_dw", "silu", 0.1): 0.36}
    assert score_against_paper(off)[0] == pytest.approx(0.1 / 2)


def test_findings_say_does_not_hold():
    ratios = (0.1, 0.2, 0.3, 1.0)
    vals = {}
    for b in ("conv1x1", "conv3x3", "ib_conv", "ib_dw"):
        for a in ("identity", "relu", "silu"):
            for r in ratios:
                vals[(b, a, r)] = r if a == "identity" else 0.5  # flat curves: nothing the paper claims
    f = {x.key: x for x in check_findings(vals)}
    assert f["O1"].status == "does not hold" and f["O2b"].status == "does not hold"
    assert f["O2a"].status == "holds"  # 0.5 is above every ratio < 1
    assert "DOES NOT HOLD" in format_findings(f.values())


@pytest.mark.parametrize("protocol", ["P4_wide", "P1"])
def test_inertia_ranks_equal_gram_ranks(protocol):
    """The LDL^T inertia count (with the eigvalsh fallback) gives the Gram path's ranks exactly."""
    from rexnet.rank.blocks import _input, block_outputs
    from rexnet.rank.estimators import threshold_ranks
    from rexnet.rank.protocols import get_protocol, resolve_activation

    p = get_protocol(protocol)
    gen = torch.Generator().manual_seed(3)
    fs = [resolve_activation(a) for a in ("identity", "relu", "hardswish", "softplus")]
    for ratio in (0.05, 0.3, 1.0):  # rank-deficient to full rank
        x = _input((2, max(1, round(ratio * 170)), 340), p, gen)
        outs = torch.cat(block_outputs("conv1x1", x, 170, fs, p, gen))
        ests = ["matrix_rank", "rtol:1e-2"]
        fast = threshold_ranks(outs, ests)
        s = singular_values(outs, "gram")
        for e in ests:
            assert fast[e].tolist() == rank_from_singular_values(s, (170, 340), e).tolist(), (ratio, e)
    zero = threshold_ranks(torch.zeros(2, 170, 200), ["matrix_rank"])["matrix_rank"]
    assert zero.tolist() == [0.0, 0.0]
