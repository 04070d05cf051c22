"""Channel padding for export: same logits for every variant, every inner width a multiple of 16."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import rexnet
from rexnet.deploy import fuse
from rexnet.deploy.pad import pad_channels

from .conftest import randomize


@pytest.mark.parametrize("name", ["rexnet_060", "rexnet_lite_100", "rexnetr_100", "mobilenetv2_100"])
def test_padded_equals_fused(name: str) -> None:
    torch.manual_seed(0)
    model = randomize(rexnet.create_model(name, num_classes=7))
    padded = pad_channels(fuse(model, channels_last=False), 16)
    widths = [m.out_channels for m in padded.modules() if isinstance(m, nn.Conv2d)]
    assert all(w % 16 == 0 for w in widths), widths
    assert any(m.out_channels % 16 for m in model.modules() if isinstance(m, nn.Conv2d))  # padding was needed
    with torch.inference_mode():
        for shape in ((2, 3, 32, 32), (1, 3, 45, 61)):
            x = torch.randn(shape)
            torch.testing.assert_close(padded(x), model(x), atol=1e-5, rtol=1e-5)


def test_backbones_and_foreign_models_are_left_alone() -> None:
    feats = fuse(rexnet.create_model("rexnet_060", features_only=True))
    assert pad_channels(feats) is feats
    headless = fuse(rexnet.create_model("rexnet_060", num_classes=0))
    assert pad_channels(headless) is headless
    seq = nn.Sequential(nn.Conv2d(3, 5, 1))
    assert pad_channels(seq) is seq
