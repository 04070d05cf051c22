"""Exported models run on data and image files (rexnet.deploy.runtime) and every precision path is scored."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import rexnet
from rexnet.cli import main
from rexnet.deploy import export_model, openvino_available
from rexnet.deploy.accuracy import accuracy_markdown, precision_accuracy
from rexnet.deploy.runtime import evaluate_exported, load_exported, predict_exported


def test_onnx_eval_equals_pytorch_eval(digits_checkpoint: Path, tmp_path: Path) -> None:
    from rexnet.train import evaluate_checkpoint

    res = export_model("rexnet_060", tmp_path / "m.onnx", checkpoint=digits_checkpoint)
    assert res.check_shapes[0][-1] == 32  # the checkpoint's training size
    ours = evaluate_exported(res.path, "digits")
    ref = evaluate_checkpoint(digits_checkpoint, data="digits", device="cpu")
    assert ours["count"] == ref["count"] > 300 and ours["runtime"] == "onnxruntime"
    assert ours["top1"] == pytest.approx(ref["top1"], abs=0.3)  # at most one image of 360 may flip
    assert ours["confusion"] != [] and ours["image_size"] == 32


def test_predict_exported_and_errors(digits_checkpoint: Path, tmp_path: Path) -> None:
    from PIL import Image

    res = export_model("rexnet_060", tmp_path / "m.onnx", checkpoint=digits_checkpoint)
    img = tmp_path / "a.png"
    Image.new("RGB", (40, 40), (200, 10, 10)).save(img)
    (tmp_path / "bad.png").write_text("not an image")
    out = predict_exported(res.path, [img, tmp_path / "bad.png"], top_k=3)
    assert len(out[0]["top"]) == 3 and out[0]["top"][0]["class"] in {str(i) for i in range(10)}
    assert sum(t["prob"] for t in out[0]["top"]) <= 1.0 + 1e-6 and "error" in out[1]
    with pytest.raises(rexnet.RexnetError, match="not found"):
        load_exported(tmp_path / "nope.onnx")
    with pytest.raises(rexnet.RexnetError, match="unknown runtime"):
        load_exported(res.path, "tensorrt")
    with pytest.raises(rexnet.RexnetError, match="not an exported model; expected a file ending in .onnx"):
        load_exported(digits_checkpoint)
    with pytest.raises(rexnet.RexnetError, match="no test split"):
        evaluate_exported(res.path, "digits", split="test")


def test_cli_eval_and_predict_exported(
    digits_checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from rexnet.cli.deploy import eval_exported
    from rexnet.cli.deploy import predict_exported as cli_predict

    res = export_model("rexnet_060", tmp_path / "m.onnx", checkpoint=digits_checkpoint)
    import argparse

    args = argparse.Namespace(
        checkpoint=res.path,
        data="digits",
        runtime="onnxruntime",
        image_size=None,
        batch_size=64,
        strict=False,
        per_class=False,
        out=str(tmp_path / "r.json"),
        confusion=None,
    )
    assert eval_exported(args) == 0 and (tmp_path / "r.json").is_file() and (tmp_path / "r.png").is_file()
    assert "onnxruntime, f32" in capsys.readouterr().out
    from PIL import Image

    Image.new("RGB", (32, 32)).save(tmp_path / "b.png")
    args = argparse.Namespace(
        checkpoint=res.path, images=[str(tmp_path / "b.png")], runtime=None, top_k=2, image_size=None, json=True
    )
    assert cli_predict(args) == 0 and '"class"' in capsys.readouterr().out
    assert (
        main(
            [
                "export",
                "rexnet_060",
                "--checkpoint",
                str(digits_checkpoint),
                "--out",
                str(tmp_path / "x.onnx"),
                "--precision",
                "bf16",
            ]
        )
        == 2
    )


@pytest.mark.skipif(not openvino_available(), reason="openvino not installed")
def test_openvino_runtime_reads_ir_and_onnx(digits_checkpoint: Path, tmp_path: Path) -> None:
    ir = export_model("rexnet_060", tmp_path / "ov", "openvino", checkpoint=digits_checkpoint)
    onnx = export_model("rexnet_060", tmp_path / "m.onnx", checkpoint=digits_checkpoint)
    a = evaluate_exported(ir.path, "digits")
    b = evaluate_exported(onnx.path, "digits", runtime="openvino")
    c = evaluate_exported(onnx.path, "digits")
    assert a["runtime"] == b["runtime"] == "openvino" and a["count"] > 300
    assert abs(a["top1"] - c["top1"]) <= 0.3 and abs(b["top1"] - c["top1"]) <= 0.3
    with pytest.raises(rexnet.RexnetError, match="cannot run .xml files.*--runtime openvino"):
        load_exported(ir.path, "onnxruntime")


def test_precision_accuracy_scores_paths(digits_checkpoint: Path) -> None:
    res = precision_accuracy(
        digits_checkpoint, "digits", split="val", paths=("fused fp32", "onnxruntime fp32", "bf16 eager"), limit=96
    )
    assert (
        res["images"] == 96
        and res["image_size"] == 32
        and set(res["paths"]) == {"fused fp32", "onnxruntime fp32", "bf16 eager"}
    )
    for name in ("fused fp32", "onnxruntime fp32"):
        assert res["paths"][name]["top1_agreement"] == 1.0 and res["paths"][name]["delta_pt"] == 0.0
    bf16 = res["paths"]["bf16 eager"]
    assert bf16["max_abs_diff"] > 0 and bf16["cosine_mean"] > 0.99
    assert "| bf16 eager |" in accuracy_markdown(res)
    with pytest.raises(rexnet.RexnetError, match="unknown precision path"):
        precision_accuracy(digits_checkpoint, "digits", split="val", paths=("fp4",), limit=8)


def test_rexnet_eval_and_predict_dispatch_exported(
    digits_checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from PIL import Image

    res = export_model("rexnet_060", tmp_path / "m.onnx", checkpoint=digits_checkpoint)
    assert main(["eval", "-c", res.path, "--data", "digits"]) == 0
    assert "(onnxruntime, f32) on digits val" in capsys.readouterr().out
    Image.new("RGB", (32, 32)).save(tmp_path / "c.png")
    assert main(["predict", str(tmp_path / "c.png"), "-c", res.path, "--runtime", "onnxruntime", "-k", "1"]) == 0
    assert "c.png:" in capsys.readouterr().out
    assert main(["eval", "-c", str(tmp_path / "missing.xml")]) == 2


def test_bench_candidates_load_the_checkpoint_once_with_its_size(digits_checkpoint: Path) -> None:
    from rexnet.deploy import tiny_config
    from rexnet.deploy.candidates import build_candidates
    from rexnet.zoo import load_model

    cfg = tiny_config(
        model="rexnet_060",
        only=("ours eager",),
        timm=False,
        onnx=False,
        openvino=False,
        bf16=False,
        int8=False,
        calib_images=8,
    )
    cands, extra = build_candidates(cfg, digits_checkpoint)
    assert [c.name for c in cands] == ["ours eager"]
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        want = load_model(digits_checkpoint)[0](x)
        torch.testing.assert_close(cands[0].fn(x), want, rtol=0, atol=0)  # the checkpoint's weights, 10 classes
    assert "fused" in extra["agreement"]
