"""The Hugging Face folder convention: save_pretrained, then rexnet and timm read the folder back."""

import json

import pytest
import torch

import rexnet
from rexnet.errors import CheckpointError, InputError, OutputExistsError
from rexnet.plan import rexnet_plan
from rexnet.weights import read_state_dict
from rexnet.zoo import create_model, is_pretrained_folder, load_model, read_pretrained_config

from ..conftest import randomize_bn

X = torch.randn(2, 3, 64, 64)


@pytest.fixture(scope="module")
def three_class(tmp_path_factory):
    torch.manual_seed(0)
    model = randomize_bn(rexnet.create_model("rexnet_100", num_classes=3)).eval()
    folder = model.save_pretrained(tmp_path_factory.mktemp("hf") / "ft", label_names=["cat", "dog", "owl"])
    return model, folder


def test_folder_holds_timm_config_and_timm_keys(three_class):
    model, folder = three_class
    cfg = json.loads((folder / "config.json").read_text())
    assert cfg["architecture"] == "rexnet_100" and cfg["num_classes"] == 3
    assert cfg["num_features"] == model.num_features == 1280 and cfg["global_pool"] == "avg"
    assert cfg["label_names"] == ["cat", "dog", "owl"]
    assert cfg["pretrained_cfg"]["classifier"] == "head.fc" and cfg["pretrained_cfg"]["crop_pct"] == 0.875
    sd, meta = read_state_dict(folder / "model.safetensors")
    assert "head.fc.weight" in sd and "features.0.conv_exp.conv.weight" not in sd  # block 0 has no expansion
    assert "features.1.conv_exp.conv.weight" in sd and not any(k.startswith("blocks.") for k in sd)
    assert meta["layout"] == "timm" and meta["model"] == "rexnet_100"
    assert is_pretrained_folder(folder)


def test_timm_loads_the_folder_with_every_key_and_equal_logits(three_class):
    timm = pytest.importorskip("timm")
    model, folder = three_class
    theirs = timm.create_model(f"local-dir:{folder}", pretrained=True).eval()
    # every key matched: timm's strict load would have raised otherwise; check the sets too
    ours_keys = set(read_state_dict(folder / "model.safetensors")[0])
    assert ours_keys == set(theirs.state_dict())
    assert theirs.pretrained_cfg["label_names"] == ["cat", "dog", "owl"]
    with torch.no_grad():
        torch.testing.assert_close(theirs(X), model(X), rtol=1e-5, atol=1e-5)


def test_rexnet_reads_the_folder_both_ways(three_class):
    model, folder = three_class
    again = create_model(f"local-dir:{folder}").eval()
    loaded, meta = load_model(folder)
    assert meta.name == "rexnet_100" and meta.num_classes == 3 and meta.class_names == ("cat", "dog", "owl")
    assert again.pretrained_cfg["label_names"] == ["cat", "dog", "owl"]
    with torch.no_grad():
        torch.testing.assert_close(again(X), model(X))
        torch.testing.assert_close(loaded(X), model(X))
    # pretrained=False: the architecture only, random weights
    blank = create_model(f"local-dir:{folder}", pretrained=False).eval()
    with torch.no_grad():
        assert not torch.allclose(blank(X), model(X))
    # another class count for fine-tuning drops the folder's head and keeps the backbone
    ft = create_model(f"local-dir:{folder}", num_classes=5)
    assert ft.num_classes == 5 and "label_names" not in ft.pretrained_cfg
    torch.testing.assert_close(ft.final_conv.conv.weight, model.final_conv.conv.weight)


def test_rexnetr_with_no_head_is_timm_layout_too(tmp_path):
    timm = pytest.importorskip("timm")
    model = randomize_bn(rexnet.create_model("rexnetr_100", num_classes=0)).eval()
    rexnet.save_pretrained(model, tmp_path / "r")
    theirs = timm.create_model(f"local-dir:{tmp_path / 'r'}", pretrained=True).eval()
    with torch.no_grad():
        torch.testing.assert_close(theirs(X), model(X), rtol=1e-5, atol=1e-5)


def test_lite_and_custom_plans_are_written_in_our_layout_with_the_plan(tmp_path):
    lite = randomize_bn(rexnet.create_model("rexnet_lite_100", num_classes=4)).eval()
    rexnet.save_pretrained(lite, tmp_path / "lite")
    sd, meta = read_state_dict(tmp_path / "lite" / "model.safetensors")
    assert meta["layout"] == "ours" and "plan" in meta and "classifier.weight" in sd
    loaded, info = load_model(tmp_path / "lite")
    assert info.name == "rexnet_lite_100" and info.class_names is None
    custom = randomize_bn(rexnet.RexNet(rexnet_plan(0.7, depth_mult=0.5), num_classes=2)).eval()
    rexnet.save_pretrained(custom, tmp_path / "custom")
    again = create_model(f"local-dir:{tmp_path / 'custom'}").eval()
    with torch.no_grad():
        torch.testing.assert_close(loaded(X), lite(X))
        torch.testing.assert_close(again(X), custom(X))


def test_output_policy_and_bad_input(three_class, tmp_path):
    model, folder = three_class
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "model.safetensors").write_bytes(b"theirs")
    with pytest.raises(OutputExistsError, match="overwrite"):
        model.save_pretrained(tmp_path / "taken")
    assert (tmp_path / "taken" / "model.safetensors").read_bytes() == b"theirs"
    model.save_pretrained(tmp_path / "taken", overwrite=True)
    assert is_pretrained_folder(tmp_path / "taken")
    with pytest.raises(InputError, match="label_names: 2 names for a 3-class model"):
        model.save_pretrained(tmp_path / "x", label_names=["a", "b"])
    with pytest.raises(InputError, match="features_only|RexNetFeatures"):
        rexnet.save_pretrained(rexnet.create_model("rexnet_100", features_only=True), tmp_path / "y")


def test_malformed_config_names_the_field(three_class, tmp_path):
    _, folder = three_class
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "model.safetensors").write_bytes((folder / "model.safetensors").read_bytes())
    cfg = json.loads((folder / "config.json").read_text())
    (bad / "config.json").write_text(json.dumps(dict(cfg, label_names=["only-one"])))
    with pytest.raises(CheckpointError, match="label_names.*3 strings"):
        read_pretrained_config(bad)
    (bad / "config.json").write_text(json.dumps(dict(cfg, num_classes="3")))
    with pytest.raises(CheckpointError, match="num_classes"):
        load_model(bad)
    (bad / "config.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="config.json: not readable JSON"):
        create_model(f"local-dir:{bad}")
    with pytest.raises(CheckpointError, match="is not a folder"):
        create_model(f"local-dir:{tmp_path / 'absent'}")


def test_save_weights_records_the_model_name(tmp_path):
    model = rexnet.create_model("rexnet_130", num_classes=5)
    rexnet.save_weights(model, tmp_path / "w.safetensors")
    assert read_state_dict(tmp_path / "w.safetensors")[1]["model"] == "rexnet_130"
    _, meta = load_model(tmp_path / "w.safetensors")
    assert meta.name == "rexnet_130" and meta.num_classes == 5
