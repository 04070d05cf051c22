"""Batched random blocks: a network computed in a batch equals the same network computed alone."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from rexnet.rank import BLOCKS
from rexnet.rank.blocks import _input, apply_block, draw_weights, point_rank_ratios
from rexnet.rank.protocols import get_protocol, resolve_activation

ACTS = ["identity", "relu", "silu"]


def _reference(block, x, w, f, s):
    """One network, written plainly: NCHW images, ``F.conv2d`` without groups tricks."""
    d_in, cols = x.shape
    images = cols // (s * s)

    def img(a):  # (C, images*s*s), image-major columns -> (images, C, s, s)
        return a.reshape(a.shape[0], images, s, s).transpose(0, 1)

    def cols_of(y):
        return y.transpose(0, 1).reshape(y.shape[1], -1)

    def conv(a, wt):
        if wt.ndim == 2:
            return wt @ a
        return cols_of(F.conv2d(img(a), wt, padding=wt.shape[-1] // 2))

    if block in ("conv1x1", "conv3x3"):
        return f(conv(x, w["w"][0]))
    a1 = f(conv(x, w["w1"][0]))
    w2 = w["w2"][0]
    if block == "ib_conv":
        z2 = conv(a1, w2)
    elif w2.ndim == 2:  # dw on a 1x1 map: per-channel scale
        z2 = a1 * w2
    else:
        z2 = cols_of(F.conv2d(img(a1), w2[:, None], padding=1, groups=w2.shape[0]))
    out = conv(f(z2), w["w3"][0])
    out[:d_in] += x
    return out


@pytest.mark.parametrize("spatial", [1, 2, 4, 8])
@pytest.mark.parametrize("block", BLOCKS)
def test_batch_equals_alone(block, spatial):
    p = get_protocol("default", spatial=spatial, dtype="float64")
    gen = torch.Generator().manual_seed(spatial)
    b, d_in, d_out, images = 5, 3, 7, 3
    x = _input((b, d_in, images * spatial * spatial), p, gen)
    w = draw_weights(block, b, d_in, d_out, p, gen)
    fs = [resolve_activation(a) for a in ACTS]
    batched = apply_block(block, x, w, fs, p)
    for i in range(b):
        alone = apply_block(block, x[i : i + 1], {k: v[i : i + 1] for k, v in w.items()}, fs, p)
        for f, bat, alo in zip(fs, batched, alone):
            torch.testing.assert_close(bat[i], alo[0], rtol=1e-12, atol=1e-9)
            ref = _reference(block, x[i], {k: v[i : i + 1] for k, v in w.items()}, f, spatial)
            torch.testing.assert_close(alo[0], ref, rtol=1e-12, atol=1e-9)


def test_linear_3x3_rank_does_not_depend_on_batch_size():
    """The reported symptom: Linear 3x3 at spatial 4, d_in 4, d_out 40 has rank 9 * 4 = 36 per network."""
    p = get_protocol("default", spatial=4, d_out_min=40, d_out_max=40)
    for networks in (1, 8):
        res, _ = point_rank_ratios("conv3x3", 0.1, ["identity"], networks, p, seed=0)
        assert res["matrix_rank"]["identity"].tolist() == [0.9] * networks


def test_per_network_expansion_and_no_shortcut():
    p = get_protocol("ib_trand")
    assert p.expansion == 1.0 and p.expansion_max == 6.0 and p.shortcut is False
    res, _ = point_rank_ratios("ib_dw", 0.1, ["identity", "relu"], 40, p, seed=0)
    lin = res["matrix_rank"]["identity"]
    assert torch.allclose(lin, torch.full_like(lin, 0.1), atol=0.02)  # Linear stays on the diagonal
    # with t drawn in [1, 6], ReLU's rank ratio is at most 6 * d_in / d_out and varies between networks
    assert res["matrix_rank"]["relu"].max() <= 6 * 0.11 and res["matrix_rank"]["relu"].std() > 0


def test_a_new_block_kind_is_one_registry_entry(monkeypatch, tmp_path):
    """Registering a block kind makes it drawable, runnable in a study and a CLI choice; no other edit."""
    from rexnet.cli import main
    from rexnet.rank import BLOCK_KINDS, BlockKind, run_rank_study
    from rexnet.rank.blocks import _apply_conv, _draw_conv

    kind = BlockKind("(e) 5x5 conv", _draw_conv(5), _apply_conv, cost=lambda r: 3.0)
    monkeypatch.setitem(BLOCK_KINDS, "conv5x5", kind)
    p = get_protocol("default", spatial=4)
    w = draw_weights("conv5x5", 2, 3, 8, p, torch.Generator().manual_seed(0))
    assert w["w"].shape == (2, 8, 3, 5, 5)
    res = run_rank_study(
        blocks=["conv5x5"], activations=["identity"], ratios=[0.5], networks=4, progress=False, protocol=p
    )
    assert 0 < res.value("conv5x5", "identity", 0.5) <= 1
    assert (
        main(
            [
                "rank",
                "study",
                "--out",
                str(tmp_path / "s"),
                "--blocks",
                "conv5x5",
                "-n",
                "2",
                "--ratios",
                "1",
                "--activations",
                "relu",
                "--no-progress",
                "--no-plot",
                "--set",
                "spatial=4",
            ]
        )
        == 0
    )


def test_unknown_block_names_the_registered_ones():
    from rexnet.errors import RexnetError
    from rexnet.rank import get_block_kind

    with pytest.raises(RexnetError, match="'ib_nope'; expected one of: conv1x1, conv3x3, ib_conv, ib_dw"):
        get_block_kind("ib_nope")


def test_every_block_kind_has_a_cost_and_title():
    from rexnet.rank import BLOCK_KINDS

    for name, kind in BLOCK_KINDS.items():
        assert kind.title and kind.cost(0.5) > 0, name
