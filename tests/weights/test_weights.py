"""Checkpoints: timm and official layouts give timm's logits; safety; clear errors."""

import logging
import pickle

import pytest
import timm
import torch

import rexnet
from rexnet import CheckpointError, UnknownModelError, create_model, load_weights, save_weights
from rexnet.cli import main as cli_main
from rexnet.weights import detect_layout, from_our_layout, guess_variant, read_state_dict, to_our_layout
from rexnet.zoo import registry_plans

from ..conftest import randomize_bn

TIMM_NAMES = [
    "rexnet_100",
    "rexnet_130",
    "rexnet_150",
    "rexnet_200",
    "rexnet_300",
    "rexnetr_100",
    "rexnetr_130",
    "rexnetr_150",
    "rexnetr_200",
    "rexnetr_300",
]


@pytest.fixture(scope="module")
def x():
    return torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))


@pytest.mark.parametrize("name", TIMM_NAMES)
def test_logits_equal_timm_from_timm_and_official_layouts(name, x, tmp_path):
    ref = randomize_bn(timm.create_model(name)).eval()
    timm_file = tmp_path / "timm.pth"
    torch.save(ref.state_dict(), timm_file)
    ours = load_weights(create_model(name), timm_file).eval()
    with torch.no_grad():
        expected = ref(x)
        assert (ours(x) - expected).abs().max().item() <= 1e-5
    # the official layout, produced by the documented key map, loads to the same logits
    official = from_our_layout(ours.state_dict(), ours.plan, "official")
    assert detect_layout(official) == "official" and official["output.1.weight"].ndim == 4
    off_file = tmp_path / "official.pth"
    torch.save({"state_dict": official}, off_file)
    again = load_weights(create_model(name), off_file).eval()
    with torch.no_grad():
        assert (again(x) - expected).abs().max().item() <= 1e-5


def test_official_key_names_rexnet_100():
    model = create_model("rexnet_100")
    keys = set(from_our_layout(model.state_dict(), model.plan, "official"))
    # stem, block 0 (t=1: dw, BN, ReLU6, project), block 3 (expand, dw, SE, ReLU6, project), penultimate, classifier
    for k in [
        "features.0.weight",
        "features.1.running_var",
        "features.3.out.0.weight",
        "features.3.out.3.weight",
        "features.6.out.0.weight",
        "features.6.out.3.weight",
        "features.6.out.5.fc.0.bias",
        "features.6.out.5.fc.1.weight",
        "features.6.out.5.fc.3.weight",
        "features.6.out.7.weight",
        "features.6.out.8.running_mean",
        "features.19.weight",
        "features.20.bias",
        "output.1.bias",
    ]:
        assert k in keys, k


def test_lite_official_roundtrip(tmp_path):
    model = randomize_bn(create_model("rexnet_lite_100")).eval()
    sd = from_our_layout(model.state_dict(), model.plan, "official")
    assert "output.0.weight" in sd and "output.4.weight" in sd and "features.4.out.6.weight" in sd
    torch.save(sd, tmp_path / "lite.pth")
    assert guess_variant(sd, registry_plans()) == ["rexnet_lite_100"]
    again = load_weights(create_model("rexnet_lite_100"), tmp_path / "lite.pth").eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(again(x), model(x), rtol=0, atol=0)


def test_safetensors_roundtrip_and_convert_cli(tmp_path, capsys):
    ref = randomize_bn(timm.create_model("rexnet_100")).eval()
    torch.save(ref.state_dict(), tmp_path / "timm.pth")
    assert cli_main(["convert", str(tmp_path / "timm.pth"), str(tmp_path / "ours.safetensors")]) == 0
    tensors, meta = read_state_dict(tmp_path / "ours.safetensors")
    assert meta["model"] == "rexnet_100" and detect_layout(tensors) == "ours"
    model = create_model("rexnet_100", pretrained=tmp_path / "ours.safetensors").eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(model(x), ref(x), rtol=0, atol=1e-5)
    save_weights(model, tmp_path / "again.safetensors")
    assert not list(tmp_path.glob(".*.tmp"))  # atomic write leaves no temp file


def test_wrong_width_names_shapes_and_variant(tmp_path):
    save_weights(create_model("rexnet_130"), tmp_path / "w130.safetensors", name="rexnet_130")
    with pytest.raises(CheckpointError) as err:
        create_model("rexnet_100", pretrained=tmp_path / "w130.safetensors")
    msg = str(err.value)
    assert "stem.conv.weight: expected shape (32, 3, 3, 3), found (42, 3, 3, 3)" in msg
    assert "rexnet_130" in msg


def test_head_mismatch_and_drop_head(tmp_path, caplog):
    save_weights(create_model("rexnet_100", num_classes=1000), tmp_path / "w.safetensors")
    # load_weights into a model of another class count refuses by default ...
    with pytest.raises(CheckpointError, match="drop_head=True"):
        load_weights(create_model("rexnet_100", num_classes=10), tmp_path / "w.safetensors")
    with pytest.raises(CheckpointError, match="drop_head=True"):
        create_model("rexnet_100", pretrained=tmp_path / "w.safetensors", num_classes=10, drop_head=False)
    model = create_model("rexnet_100", pretrained=tmp_path / "w.safetensors", num_classes=10, drop_head=True)
    assert model.classifier.out_features == 10
    # ... while create_model drops a mismatched classifier by itself, as timm, and says so
    ref = load_weights(create_model("rexnet_100"), tmp_path / "w.safetensors")
    with caplog.at_level(logging.INFO, logger="rexnet.weights"):
        model = create_model("rexnet_100", pretrained=tmp_path / "w.safetensors", num_classes=5)
    assert "dropped the checkpoint's 1000-class classifier (the model's has 5)" in caplog.text
    assert model.classifier.out_features == 5
    assert torch.equal(model.final_conv.conv.weight, ref.final_conv.conv.weight)


class _Evil:
    def __reduce__(self):
        return (print, ("pwned",))


def test_code_executing_pickle_is_refused(tmp_path, capsys):
    path = tmp_path / "evil.pth"
    with open(path, "wb") as f:
        pickle.dump({"stem.conv.weight": _Evil()}, f)
    with pytest.raises(CheckpointError, match="would execute code"):
        create_model("rexnet_100", pretrained=path)
    assert "pwned" not in capsys.readouterr().out


def test_truncated_and_missing_files(tmp_path):
    save_weights(create_model("rexnet_060"), tmp_path / "w.safetensors")
    data = (tmp_path / "w.safetensors").read_bytes()
    (tmp_path / "cut.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="not a valid safetensors"):
        create_model("rexnet_060", pretrained=tmp_path / "cut.safetensors")
    torch.save(create_model("rexnet_060").state_dict(), tmp_path / "w.pth")
    raw = (tmp_path / "w.pth").read_bytes()
    (tmp_path / "cut.pth").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        create_model("rexnet_060", pretrained=tmp_path / "cut.pth")
    with pytest.raises(CheckpointError, match="not found"):
        create_model("rexnet_060", pretrained=tmp_path / "nope.pth")


def test_unknown_model_lists_valid_names():
    with pytest.raises(UnknownModelError) as err:
        create_model("rexnet_999")
    assert "unknown model 'rexnet_999'" in str(err.value) and "rexnet_100" in str(err.value)


def test_to_our_layout_keeps_unknown_keys_for_strict_check():
    model = create_model("rexnet_060")
    sd = dict(model.state_dict())
    sd["bogus.weight"] = torch.zeros(1)
    assert "bogus.weight" in to_our_layout(sd, model.plan, "ours")


@pytest.mark.parametrize("name", rexnet.list_models())
def test_tensor_shapes_from_the_plan_equal_the_models(name):
    from rexnet.weights import tensor_shapes

    for num_classes, in_chans in ((1000, 3), (0, 1), (7, 4)):
        with torch.device("meta"):
            model = rexnet.RexNet(rexnet.get_plan(name), num_classes=num_classes, in_chans=in_chans)
        want = {k: tuple(v.shape) for k, v in model.state_dict().items()}
        assert tensor_shapes(model.plan, num_classes, in_chans) == want
