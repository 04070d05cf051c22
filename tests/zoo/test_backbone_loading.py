"""Issue 16, items 1-4: backbones load full checkpoints; timm's pretrained / num_classes / in_chans / out_indices."""

import logging

import pytest
import timm
import torch

from rexnet import CheckpointError, RexnetError, create_model, load_weights, save_weights
from rexnet.weights import adapt_input_conv

from ..conftest import randomize_bn


@pytest.fixture(scope="module")
def full_file(tmp_path_factory):
    """A full rexnet_100 checkpoint in our layout, with non-trivial BN statistics."""
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("w") / "rexnet_100.safetensors"
    save_weights(randomize_bn(create_model("rexnet_100")), path, name="rexnet_100")
    return path


@pytest.fixture(scope="module")
def timm_file(tmp_path_factory):
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("t") / "timm.pth"
    torch.save(randomize_bn(timm.create_model("rexnet_100")).state_dict(), path)
    return path


@pytest.mark.parametrize("out_indices", [(0, 1, 2, 3, 4), (1, 2), (0,), (3, 4)])
def test_features_only_loads_full_checkpoint(full_file, out_indices, caplog):
    full = load_weights(create_model("rexnet_100"), full_file).eval()
    with caplog.at_level(logging.INFO, logger="rexnet.weights"):
        backbone = create_model("rexnet_100", pretrained=full_file, features_only=True, out_indices=out_indices)
    assert "skipped" in caplog.text and "final_conv" in caplog.text
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        maps = backbone.eval()(x)
        _, ref = full.forward_intermediates(x, indices=list(out_indices))
    assert len(maps) == len(ref) == len(out_indices)
    for a, b in zip(maps, ref):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_features_only_loads_timm_checkpoint_with_drop_head(timm_file):
    # timm's own backbone from the same local file (its flattened module names differ from the file's)
    overlay = dict(file=str(timm_file), num_classes=1000)
    ref = timm.create_model(
        "rexnet_100", pretrained=True, pretrained_cfg_overlay=overlay, features_only=True, out_indices=(1, 2)
    )
    assert torch.equal(ref.stem.conv.weight, torch.load(timm_file)["stem.conv.weight"])
    backbone = create_model("rexnet_100", features_only=True, out_indices=(1, 2))
    load_weights(backbone, timm_file, drop_head=True)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        for a, b in zip(backbone.eval()(x), ref.eval()(x)):
            assert (a - b).abs().max().item() <= 1e-5


def test_backbone_checkpoint_loads_into_shorter_backbone(tmp_path, full_file):
    """A saved backbone (no head) is again a full-enough checkpoint for any shallower backbone."""
    five = create_model("rexnet_100", pretrained=full_file, features_only=True)
    save_weights(five, tmp_path / "backbone.safetensors")
    two = create_model("rexnet_100", pretrained=tmp_path / "backbone.safetensors", features_only=True, out_indices=2)
    assert torch.equal(two.blocks[-1].project.conv.weight, five.blocks[len(two.blocks) - 1].project.conv.weight)
    with pytest.raises(CheckpointError, match="missing keys"):  # a full model still needs its head
        create_model("rexnet_100", pretrained=tmp_path / "backbone.safetensors")


def test_backbone_still_rejects_foreign_and_misshapen_tensors(tmp_path, full_file):
    from rexnet.weights import read_state_dict

    sd, _ = read_state_dict(full_file)
    torch.save(dict(sd, **{"bogus.weight": torch.zeros(1)}), tmp_path / "extra.pth")
    with pytest.raises(CheckpointError, match="unexpected keys.*bogus.weight"):
        create_model("rexnet_100", pretrained=tmp_path / "extra.pth", features_only=True)
    with pytest.raises(CheckpointError, match="stem.conv.weight: expected shape"):
        save_weights(create_model("rexnet_130"), tmp_path / "w130.safetensors")
        create_model("rexnet_100", pretrained=tmp_path / "w130.safetensors", features_only=True, out_indices=(0,))


def test_pretrained_false_none_true():
    assert create_model("rexnet_060", pretrained=False).num_classes == 1000
    assert create_model("rexnet_060", pretrained=None).num_classes == 1000
    # rexnet_060 has no weights on the hub: pretrained=True says so and names the way out, without a download
    with pytest.raises(RexnetError, match="rexnet_060 has no published weights.*local weights file"):
        create_model("rexnet_060", pretrained=True)
    with pytest.raises(RexnetError, match="pretrained must be"):
        create_model("rexnet_060", pretrained=3)


def test_pretrained_true_with_overlay_file_and_checkpoint_path(full_file):
    a = create_model("rexnet_100", pretrained=True, pretrained_cfg_overlay=dict(file=str(full_file)))
    b = create_model("rexnet_100", checkpoint_path=full_file)
    assert torch.equal(a.stem.conv.weight, b.stem.conv.weight)
    assert a.pretrained_cfg["file"] == str(full_file)


@pytest.mark.parametrize("in_chans", [1, 2, 4, 7])
def test_in_chans_adapts_first_conv_like_timm(full_file, in_chans, caplog):
    with caplog.at_level(logging.INFO, logger="rexnet.weights"):
        model = create_model("rexnet_100", pretrained=full_file, in_chans=in_chans).eval()
    assert f"from 3 to {in_chans} input channels" in caplog.text
    rgb = load_weights(create_model("rexnet_100"), full_file).eval()
    w3 = rgb.stem.conv.weight
    theirs = timm.models.adapt_input_conv(in_chans, w3.detach().clone())
    torch.testing.assert_close(model.stem.conv.weight, theirs, rtol=0, atol=0)
    # the rule's purpose: a grey image gives the response the grey RGB image gave
    if in_chans == 1:
        grey = torch.rand(1, 1, 64, 64)
        with torch.no_grad():
            torch.testing.assert_close(model(grey), rgb(grey.expand(-1, 3, -1, -1)), rtol=1e-4, atol=1e-4)
    # everything after the stem is the checkpoint's
    assert torch.equal(model.final_conv.conv.weight, rgb.final_conv.conv.weight)


def test_adapt_input_conv_rules():
    w = torch.randn(8, 3, 3, 3)
    torch.testing.assert_close(adapt_input_conv(1, w), w.sum(1, keepdim=True))
    six = adapt_input_conv(6, w)
    torch.testing.assert_close(six, torch.cat([w, w], 1) * 0.5)
    assert adapt_input_conv(3, w) is w
    assert adapt_input_conv(1, w.half()).dtype == torch.float16
    with pytest.raises(ValueError, match="4-D"):
        adapt_input_conv(1, torch.zeros(3, 3))


def test_load_weights_in_chans_hint(full_file):
    with pytest.raises(CheckpointError, match="only the input channels differ.*adapt_in_chans=True"):
        load_weights(create_model("rexnet_100", in_chans=1), full_file)


@pytest.mark.parametrize(
    ("out_indices", "levels"),
    [
        ((-2, -1), (3, 4)),
        (2, (3, 4)),
        (1, (4,)),
        (5, (0, 1, 2, 3, 4)),
        ((-5, 2), (0, 2)),
        ((3, 1), (1, 3)),
        (None, (0, 1, 2, 3, 4)),
    ],
)
def test_out_indices_negative_and_last_n(out_indices, levels):
    model = create_model("rexnet_100", features_only=True, out_indices=out_indices).eval()
    assert model.feature_info.out_indices == levels
    chans = [16, 38, 61, 128, 185]
    assert model.feature_info.channels() == [chans[i] for i in levels]
    with torch.no_grad():
        assert [m.shape[1] for m in model(torch.randn(1, 3, 64, 64))] == [chans[i] for i in levels]
    ref = timm.create_model(
        "rexnet_100", features_only=True, out_indices=out_indices if out_indices else (0, 1, 2, 3, 4)
    )
    assert sorted(ref.feature_info.channels()) == sorted(model.feature_info.channels())


@pytest.mark.parametrize("bad", [(5,), (-6,), 0, 6, (), (1, 1), True])
def test_out_indices_errors(bad):
    with pytest.raises(RexnetError, match="out_indices"):
        create_model("rexnet_100", features_only=True, out_indices=bad)
