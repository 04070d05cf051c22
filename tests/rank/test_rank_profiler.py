"""Rank profiler on rexnet and torchvision models, and its CLI."""

from __future__ import annotations

import csv

import pytest
import torch
import torchvision

from rexnet import create_model
from rexnet.cli import main
from rexnet.errors import RexnetError
from rexnet.rank.profiler import build_model, default_layers, profile_rank
from rexnet.rank.report import PROFILE_COLUMNS


def test_profile_rexnet_rows_and_shapes():
    model = create_model("rexnet_100").eval()
    x = torch.randn(2, 3, 64, 64)
    layers = default_layers(model)
    assert layers[-1] == "final_conv" and layers[0] == "blocks.0" and len(layers) == len(model.blocks) + 1
    prof = profile_rank(model, x)
    assert [r.layer for r in prof.rows] == layers
    with torch.no_grad():
        feats = model.forward_features(x)
    last = prof.rows[-1]
    assert last.channels == feats.shape[1] == 1280 and last.samples == 2 * feats.shape[2] * feats.shape[3]
    for r in prof.rows:
        assert 0 < r.rank <= min(r.channels, r.samples) and r.rank_ratio == pytest.approx(r.rank / r.channels)
        assert prof.spectra[r.layer].shape == (min(r.channels, r.samples),) and r.nuclear_norm > 0


def test_profile_torchvision_mobilenet_v2():
    model = torchvision.models.mobilenet_v2().eval()
    prof = profile_rank(model, torch.randn(2, 3, 64, 64))
    assert len(prof.rows) == len(model.features) == 19
    assert prof.rows[-1].layer == "features.18" and prof.rows[-1].channels == 1280
    pooled = profile_rank(model, torch.randn(3, 3, 64, 64), layers=["features.18"], flatten="pool")
    assert len(pooled.rows) == 1 and pooled.rows[0].samples == 3


def test_profile_bad_layer_and_model():
    model = torchvision.models.mobilenet_v2()
    with pytest.raises(RexnetError, match="matches no module"):
        profile_rank(model, torch.randn(1, 3, 32, 32), layers=["nope.*"])
    with pytest.raises(RexnetError, match="unknown torchvision model"):
        build_model("tv:mobilenet_v9")
    with pytest.raises(RexnetError, match="expected one of"):
        build_model("rexnet_999")


def test_cli_rank_profile(tmp_path):
    out = tmp_path / "prof"
    rc = main(
        [
            "rank-profile",
            "rexnet_100",
            "--out",
            str(out),
            "--compare",
            "tv:mobilenet_v2",
            "-b",
            "2",
            "--image-size",
            "64",
        ]
    )
    assert rc == 0
    with open(out / "rank_profile.csv") as fh:
        rows = list(csv.reader(fh))
    assert tuple(rows[0]) == PROFILE_COLUMNS and len(rows) == 1 + 17
    with open(out / "rank_profile_compare.csv") as fh:
        assert len(list(csv.reader(fh))) == 1 + 19
    assert (out / "rank_profile.png").stat().st_size > 1000


def test_default_layers_other_models():
    assert default_layers(torchvision.models.resnet18()) == [f"layer{i}.{j}" for i in range(1, 5) for j in range(2)]
    assert default_layers(torch.nn.Sequential(torch.nn.Conv2d(3, 4, 1), torch.nn.ReLU())) == ["0", "1"]


def test_a_model_that_cannot_run_on_the_batch_is_a_clear_error():
    class FixedSize(torch.nn.Module):  # like ViT at a size it was not built for
        def __init__(self):
            super().__init__()
            self.blocks = torch.nn.Sequential(torch.nn.Sequential(torch.nn.Conv2d(3, 4, 1)))

        def forward(self, x):
            return self.blocks(x).view(-1, 7 * 7 * 4)

    with pytest.raises(RexnetError, match=r"cannot run on a batch of shape \(1, 3, 8, 8\): RuntimeError"):
        profile_rank(FixedSize(), torch.randn(1, 3, 8, 8))


def test_torchvision_checkpoint_that_does_not_fit_or_holds_integers(tmp_path):
    from safetensors.torch import save_file

    from rexnet.errors import CheckpointError

    sd = torchvision.models.mobilenet_v2().state_dict()
    save_file({k: v for k, v in sd.items() if not k.startswith("classifier")}, str(tmp_path / "headless.safetensors"))
    with pytest.raises(CheckpointError, match="does not fit torchvision's mobilenet_v2"):
        build_model("tv:mobilenet_v2", tmp_path / "headless.safetensors")
    sd["features.0.0.weight"] = sd["features.0.0.weight"].to(torch.int8)
    save_file(sd, str(tmp_path / "int8.safetensors"))
    with pytest.raises(CheckpointError, match=r"features.0.0.weight \(torch.int8\)"):
        build_model("tv:mobilenet_v2", tmp_path / "int8.safetensors")
