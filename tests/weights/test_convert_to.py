"""``rexnet convert SRC DST --to timm|ours``: one file from any layout to timm's or ours, both ways."""

import pytest
import torch

import rexnet
from rexnet.cli import main
from rexnet.errors import CheckpointError
from rexnet.weights import convert_weights, detect_layout, read_state_dict

from ..conftest import randomize_bn

X = torch.randn(1, 3, 64, 64)


@pytest.fixture(scope="module")
def ours(tmp_path_factory):
    torch.manual_seed(0)
    model = randomize_bn(rexnet.create_model("rexnet_100", num_classes=7)).eval()
    path = tmp_path_factory.mktemp("conv") / "ours.safetensors"
    rexnet.save_weights(model, path)
    return model, path


def test_cli_to_timm_then_back_to_ours(ours, tmp_path, capsys):
    model, path = ours
    assert main(["convert", str(path), str(tmp_path / "t.safetensors"), "--to", "timm"]) == 0
    assert "wrote" in capsys.readouterr().out
    sd, meta = read_state_dict(tmp_path / "t.safetensors")
    assert detect_layout(sd) == "timm" and "head.fc.weight" in sd and meta["model"] == "rexnet_100"
    assert main(["convert", str(tmp_path / "t.safetensors"), str(tmp_path / "o.safetensors")]) == 0  # default: ours
    back, meta = read_state_dict(tmp_path / "o.safetensors")
    assert detect_layout(back) == "ours" and meta["model"] == "rexnet_100"
    for k, v in model.state_dict().items():
        assert torch.equal(back[k], v), k


def test_timm_loads_the_converted_file(ours, tmp_path):
    timm = pytest.importorskip("timm")
    model, path = ours
    assert main(["convert", str(path), str(tmp_path / "t.pth"), "--to", "timm"]) == 0
    theirs = timm.create_model("rexnet_100", num_classes=7, checkpoint_path=str(tmp_path / "t.pth")).eval()
    with torch.no_grad():
        torch.testing.assert_close(theirs(X), model(X), rtol=1e-5, atol=1e-5)


def test_lite_has_no_timm_layout_and_bad_to_is_refused(tmp_path):
    lite = rexnet.create_model("rexnet_lite_100")
    with pytest.raises(CheckpointError, match="timm has no ReXNet-lite"):
        convert_weights(lite.state_dict(), tmp_path / "l.safetensors", lite.plan, to="timm")
    assert not (tmp_path / "l.safetensors").exists()
    with pytest.raises(rexnet.InputError, match="--to must be 'ours' or 'timm', got 'onnx'"):
        convert_weights(lite.state_dict(), tmp_path / "l.safetensors", lite.plan, to="onnx")
    with pytest.raises(SystemExit):
        main(["convert", "a.pth", "b.pth", "--to", "onnx"])
