"""OpenVINO target: IR export at f32/bf16/int8 (NNCF), reproduces PyTorch, CLI; skipped without openvino."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch import nn

import rexnet
from rexnet.cli import main
from rexnet.deploy import OpenVinoModel, agreement, export_model, openvino_available, predict_logits, to_openvino

pytestmark = pytest.mark.skipif(not openvino_available(with_nncf=True), reason="openvino/nncf not installed")


def _images(n: int, seed: int, size: int = 64) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return list(torch.randn(n, 3, size, size, generator=g).split(16))


def test_f32_and_bf16_reproduce_pytorch(rexnet_small: nn.Module, tmp_path: Path) -> None:
    test = _images(32, 1)
    ref = predict_logits(rexnet_small, test)
    f32 = OpenVinoModel(to_openvino(rexnet_small, "f32", image_size=64), threads=1)
    assert f32.precision_hint == "f32"
    torch.testing.assert_close(predict_logits(f32, test), ref, atol=1e-4, rtol=1e-4)
    assert f32(torch.randn(3, 3, 40, 56)).shape == (3, 1000)  # dynamic batch and size
    bf16 = OpenVinoModel(to_openvino(rexnet_small, "bf16", image_size=64), threads=1)
    out = predict_logits(bf16, test)
    a = agreement(ref, out)
    # bf16 really ran (not equal to f32), and stays close
    assert a["max_abs_diff"] > 1e-4 and a["cosine_mean"] > 0.999 and a["top1_agreement"] >= 0.9, a


@pytest.mark.slow
def test_int8_nncf_agrees_with_fp32(rexnet_small: nn.Module, tmp_path: Path) -> None:
    q = OpenVinoModel(to_openvino(rexnet_small, "int8", calibration=_images(32, 2), image_size=64), threads=1)
    test = _images(64, 3)
    ref, out = predict_logits(rexnet_small, test), predict_logits(q, test)
    a = agreement(ref, out)
    assert a["max_abs_diff"] > 1e-4, "no quantization happened"
    assert a["cosine_mean"] > 0.99 and a["top1_agreement"] >= 0.9, a
    ops = {op.get_type_name() for op in q.model.get_ops()}
    assert "FakeQuantize" in ops or "FakeConvert" in ops, ops


def test_export_openvino_folder_with_sidecar(tmp_path: Path) -> None:
    torch.manual_seed(2)
    from .conftest import randomize

    model = randomize(rexnet.create_model("rexnet_060", num_classes=10))
    ck = rexnet.save_weights(model, tmp_path / "w.safetensors", name="rexnet_060")
    res = export_model("rexnet_060", tmp_path / "ov", "openvino", checkpoint=ck, image_size=64)
    xml = Path(res.path)
    assert xml.suffix == ".xml" and xml.with_suffix(".bin").is_file() and res.max_abs_diff <= 1e-3
    meta = json.loads(xml.with_suffix(".json").read_text())
    assert meta["model"] == "rexnet_060" and meta["num_classes"] == 10 and meta["image_size"] == 64
    assert meta["precision"] == "f32"
    x = torch.randn(2, 3, 64, 64)
    with torch.inference_mode():
        torch.testing.assert_close(OpenVinoModel(xml)(x), model(x), atol=1e-4, rtol=1e-4)


@pytest.mark.slow
def test_cli_openvino_int8_and_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc = main(
        [
            "export",
            "rexnet_060",
            "--format",
            "openvino",
            "--precision",
            "int8",
            "--calib-data",
            "digits",
            "--calib-images",
            "16",
            "--image-size",
            "64",
            "--out",
            str(tmp_path / "q"),
        ]
    )
    out = capsys.readouterr().out
    assert rc == 0 and (tmp_path / "q" / "rexnet_060.xml").is_file() and "openvino int8" in out
    assert (
        main(["export", "rexnet_060", "--format", "openvino", "--precision", "int8", "--out", str(tmp_path / "n")]) == 2
    )
    assert "--calib-data" in capsys.readouterr().err
    assert (
        main(
            ["export", "rexnet_060", "--format", "torchscript", "--precision", "bf16", "--out", str(tmp_path / "t.pt")]
        )
        == 2
    )
    with pytest.raises(rexnet.RexnetError, match="precision"):
        to_openvino(nn.Conv2d(3, 3, 1), "fp8")


_CTRL_C_AFTER_OPENVINO = """
import os, signal, torch, rexnet
from rexnet.deploy import OpenVinoModel, to_openvino
torch.set_num_threads(1)
m = rexnet.create_model("rexnet_060").eval()
f32 = OpenVinoModel(to_openvino(m, "f32", image_size=64), threads=1)
bf16 = OpenVinoModel(to_openvino(m, "bf16", image_size=64), threads=1)
f32(torch.randn(2, 3, 64, 64)); bf16(torch.randn(2, 3, 64, 64))
del f32, bf16  # freed in creation order: the plugin restores a stack that is already gone
got = []
signal.signal(signal.SIGINT, lambda s, f: got.append(s))
os.kill(os.getpid(), signal.SIGINT)
print("handled", got, flush=True)
"""


def test_ctrl_c_after_openvino_models_is_handled_not_a_segfault() -> None:
    import subprocess
    import sys

    r = subprocess.run([sys.executable, "-c", _CTRL_C_AFTER_OPENVINO], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0 and "handled [2]" in r.stdout, (r.returncode, r.stdout[-500:], r.stderr[-2000:])


_NO_NETWORK = """
import socket, sys
asked = []
def refuse(host, *args, **kwargs):
    asked.append(host)
    raise OSError("network blocked by the test")
socket.getaddrinfo = refuse
from rexnet.deploy.openvino_ir import openvino_available, to_openvino
from rexnet import create_model
assert openvino_available(with_nncf=True)
import torch
torch.manual_seed(0)
model = create_model("rexnet_060", num_classes=3).eval()
to_openvino(model, precision="int8", image_size=32, calibration=[torch.randn(4, 3, 32, 32)])
import time
time.sleep(1)  # telemetry is sent from a background thread
print("asked:", asked)
"""


def test_openvino_and_nncf_send_no_telemetry():
    """NNCF's import and OpenVINO's converter send Google Analytics events unless declined (a subprocess: NNCF
    switches its telemetry off by itself when pytest is loaded)."""
    pytest.importorskip("openvino")
    pytest.importorskip("nncf")
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-c", _NO_NETWORK], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "asked: []" in out.stdout, out.stdout + out.stderr[-2000:]
