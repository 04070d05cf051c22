"""Export: ONNX round trip in onnxruntime, TorchScript script/trace, the CLI and function."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest
import torch
from torch import nn

import rexnet
from rexnet.cli import main
from rexnet.deploy import ONNX_OPSET, OnnxModel, export_model, export_onnx, export_torchscript, verify_onnx

from .conftest import randomize


def test_onnx_round_trip_dynamic_batch_and_size(rexnet_small: nn.Module, tmp_path: Path) -> None:
    path = export_onnx(rexnet_small, tmp_path / "m.onnx", image_size=64)
    import onnx

    proto = onnx.load(str(path))
    assert proto.opset_import[0].version == ONNX_OPSET
    inputs = [torch.randn(1, 3, 64, 64), torch.randn(3, 3, 48, 80)]
    assert verify_onnx(path, rexnet_small, inputs) <= 1e-4
    assert OnnxModel(path)(inputs[1]).shape == (3, 1000)


def test_onnx_lite_variant(tmp_path: Path) -> None:
    torch.manual_seed(1)
    model = randomize(rexnet.create_model("rexnet_lite_100", num_classes=10))
    path = export_onnx(model, tmp_path / "lite.onnx", image_size=64)
    assert verify_onnx(path, model, [torch.randn(2, 3, 64, 64)]) <= 1e-4


@pytest.mark.parametrize("method", ["script", "trace"])
def test_torchscript_equals_eager(rexnet_small: nn.Module, tmp_path: Path, method: str) -> None:
    path = export_torchscript(rexnet_small, tmp_path / f"{method}.pt", method=method, image_size=64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        loaded = torch.jit.load(str(path))
    with torch.inference_mode():
        for x in (torch.randn(2, 3, 64, 64), torch.randn(1, 3, 40, 56)):
            torch.testing.assert_close(loaded(x), rexnet_small(x), atol=1e-5, rtol=1e-5)


def test_export_model_function_and_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    res = export_model("rexnet_060", tmp_path / "a.onnx", "onnx", image_size=64)
    assert res.max_abs_diff <= 1e-4 and res.opset == ONNX_OPSET and Path(res.path).is_file()
    rc = main(
        ["export", "rexnet_060", "--format", "torchscript", "--out", str(tmp_path / "a.pt"), "--image-size", "64"]
    )
    assert rc == 0 and (tmp_path / "a.pt").is_file()
    assert "max |diff|" in capsys.readouterr().out


def test_export_with_checkpoint(tmp_path: Path) -> None:
    torch.manual_seed(2)
    model = randomize(rexnet.create_model("rexnet_060", num_classes=7))
    ck = rexnet.save_weights(model, tmp_path / "w.safetensors", name="rexnet_060")
    res = export_model("rexnet_060", tmp_path / "w.onnx", checkpoint=ck, image_size=64)
    assert res.max_abs_diff <= 1e-4
    # against the in-memory model that wrote the file, not the exporter's own loader: an export that
    # ignored the checkpoint's weights would still match itself, but not this
    x = torch.randn(4, 3, 64, 64, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        want = model(x)
        fresh = rexnet.create_model("rexnet_060", num_classes=7).eval()(x)
    got = OnnxModel(res.path)(x)
    assert got.shape == (4, 7)
    torch.testing.assert_close(got, want, atol=1e-4, rtol=1e-4)
    assert (got - fresh).abs().max() > 1e-2  # and the weights did matter


def test_export_errors(tmp_path: Path) -> None:
    with pytest.raises(rexnet.RexnetError, match="expected one of"):
        export_model("rexnet_060", tmp_path / "x", "tflite")
    with pytest.raises(rexnet.RexnetError, match="rexnet_999"):
        export_model("rexnet_999", tmp_path / "x.onnx")
    assert main(["export", "rexnet_060", "--out", str(tmp_path / "x.onnx"), "--checkpoint", "/nope.pt"]) == 2


def test_a_format_added_to_the_registry_reaches_export_model_and_the_cli(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from rexnet.deploy.export import EXPORT_FORMATS, ExportFormat

    written: list[Path] = []

    def write(job) -> Path:  # a "format" that writes the state dict and runs the in-memory model
        torch.save(job.model.state_dict(), job.out)
        written.append(job.out)
        return job.out

    def run(path: Path):
        model = rexnet.create_model("rexnet_060").eval()
        model.load_state_dict(torch.load(path, weights_only=True))
        return model

    monkeypatch.setitem(EXPORT_FORMATS, "statedict", ExportFormat("state dict (a test format)", ".sd", write, run))
    res = export_model("rexnet_060", tmp_path / "m.sd", "statedict", image_size=32)
    assert written == [tmp_path / "m.sd"] and res.format == "statedict" and res.max_abs_diff == 0.0
    assert res.opset is None and not (tmp_path / "m.json").exists()  # no sidecar asked for
    with pytest.raises(SystemExit):
        main(["export", "--help"])
    assert "statedict          state dict (a test format)" in capsys.readouterr().out
    with pytest.raises(rexnet.RexnetError, match="not available for statedict; expected one of: f32"):
        export_model("rexnet_060", tmp_path / "m.sd", "statedict", precision="int8", calib_data="digits")
