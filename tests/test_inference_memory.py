"""Memory guards outside training (issue 12): every CLI path that builds a model refuses sizes that cannot fit."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import save_file

import rexnet
from rexnet._memory import check_inference_memory, inference_memory
from rexnet.cli import main
from rexnet.errors import ResourceError
from rexnet.zoo import get_plan


def test_estimate_is_near_the_measured_eager_peak():
    # rexnet_100, batch 32, 224 px: `rexnet bench` measured 416 MiB resident added by one eager call
    est = inference_memory(get_plan("rexnet_100"), 224, 1000, 32)
    assert 250 * 2**20 < est.total < 800 * 2**20
    assert inference_memory(get_plan("rexnet_100"), 224, 1000, 64).activations == 2 * est.activations


def test_check_names_the_numbers():
    with pytest.raises(ResourceError, match=r"rexnet_100 at 4096x4096, batch 8, needs about [\d,.]+ GiB .* 1\.0 GiB"):
        check_inference_memory(get_plan("rexnet_100"), 4096, 1000, 8, limit=2**30, what="rexnet_100")
    check_inference_memory(get_plan("rexnet_100"), 224, 1000, 8, limit=2**30)  # fits: no error


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    path = tmp_path_factory.mktemp("w") / "rexnet_100.safetensors"
    save_file(rexnet.create_model("rexnet_100", num_classes=10).state_dict(), str(path))
    img = path.parent / "x.png"
    from PIL import Image

    Image.new("RGB", (8, 8)).save(img)
    return path, img


@pytest.mark.parametrize("case", ["eval", "predict", "export", "bench", "rank-profile"])
def test_cli_refuses_sizes_that_cannot_fit(case, weights, tmp_path, capsys):
    w, img = weights
    argv = {
        "eval": ["eval", "-c", str(w), "-m", "rexnet_100", "--data", "digits", "--image-size", "30000"],
        "predict": ["predict", "-c", str(w), "-m", "rexnet_100", "--image-size", "60000", str(img)],
        "export": ["export", "rexnet_100", "-o", str(tmp_path / "m.onnx"), "--image-size", "40000"],
        "bench": ["bench", "--image-size", "40000", "--out", str(tmp_path / "b")],
        "rank-profile": ["rank-profile", "rexnet_100", "--image-size", "16000", "-b", "64", "--out", str(tmp_path)],
    }[case]
    torch.manual_seed(0)
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "needs about" in err and "GiB" in err and "Traceback" not in err
    assert not (tmp_path / "m.onnx").exists() and not (tmp_path / "b").exists()
