"""rexnet.fuse: every BN folded, outputs equal to the eval-mode model for every variant."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import rexnet
from rexnet.deploy import FusedRexNet, fold_conv_bn

from .conftest import randomize

SIZES = [(2, 32, 32), (1, 45, 61)]


@pytest.mark.parametrize("name", rexnet.list_models())
def test_fused_equals_eval_every_variant(name: str) -> None:
    torch.manual_seed(0)
    model = randomize(rexnet.create_model(name, num_classes=16))
    fused = rexnet.fuse(model)
    assert isinstance(fused, FusedRexNet) and not fused.training
    assert not any(isinstance(m, (nn.BatchNorm2d, nn.Dropout)) for m in fused.modules())
    with torch.inference_mode():
        for b, h, w in SIZES:
            x = torch.randn(b, 3, h, w)
            ref = model(x)
            torch.testing.assert_close(
                fused(x.contiguous(memory_format=torch.channels_last)), ref, atol=1e-5, rtol=1e-5
            )
            torch.testing.assert_close(fused(x), ref, atol=1e-5, rtol=1e-5)


def test_fuse_leaves_the_model_alone_and_is_idempotent(rexnet_small: nn.Module) -> None:
    before = {k: v.clone() for k, v in rexnet_small.state_dict().items()}
    rexnet_small.train()
    fused = rexnet.fuse(rexnet_small)
    rexnet_small.eval()
    assert all(torch.equal(before[k], v) for k, v in rexnet_small.state_dict().items())
    assert rexnet.fuse(fused) is fused
    assert all(not p.requires_grad for p in fused.parameters())
    assert fused.stem[0].weight.is_contiguous(memory_format=torch.channels_last)


def test_se_bn_is_folded_into_the_first_se_layer(rexnet_small: nn.Module) -> None:
    fused = rexnet.fuse(rexnet_small)
    block = next(b for b in fused.blocks if b.has_se)
    assert isinstance(block.se_reduce, nn.Linear) and isinstance(block.se_expand, nn.Linear)


def test_fold_conv_bn_matches_with_stride_dilation_groups() -> None:
    conv = nn.Conv2d(8, 8, 3, stride=2, padding=2, dilation=2, groups=4, bias=True)
    bn = randomize(nn.Sequential(nn.BatchNorm2d(8)))[0]
    x = torch.randn(2, 8, 17, 19)
    with torch.no_grad():
        torch.testing.assert_close(fold_conv_bn(conv, bn)(x), bn(conv(x)), atol=1e-6, rtol=1e-5)


def test_fuse_heads_and_backbones() -> None:
    torch.manual_seed(0)
    x = torch.randn(1, 3, 64, 64)
    for model in (
        randomize(rexnet.create_model("rexnet_100", num_classes=0)),
        randomize(rexnet.create_model("rexnet_lite_100", output_stride=16)),
        randomize(rexnet.create_model("rexnet_100", features_only=True)),
    ):
        fused = rexnet.fuse(model)
        with torch.inference_mode():
            ref, out = model(x), fused(x)
        if isinstance(ref, list):
            assert len(ref) == len(out)
            for r, o in zip(ref, out):
                torch.testing.assert_close(o, r, atol=1e-5, rtol=1e-5)
        else:
            torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)


def test_fuse_rejects_foreign_models() -> None:
    with pytest.raises(rexnet.RexnetError, match="Sequential"):
        rexnet.fuse(nn.Sequential(nn.Conv2d(3, 3, 1)))
