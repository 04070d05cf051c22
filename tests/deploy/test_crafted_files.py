"""Crafted or broken files that deploy reads (ONNX, OpenVINO IR, sidecars) are refused with an InputError
naming the file and the field; an ONNX without a sidecar is not silently run at 224 px."""

from __future__ import annotations

import json
import logging
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from rexnet.cli import main
from rexnet.deploy import export_model, openvino_available
from rexnet.deploy.onnx_core import OnnxModel
from rexnet.deploy.runtime import evaluate_exported, load_exported
from rexnet.deploy.sidecar import read_sidecar
from rexnet.errors import ExportError, InputError


def _tiny_onnx(path: Path, shape: list, *, inputs: int = 1, dtype: int | None = None, classes: int = 10) -> Path:
    """A small classifier graph: mean over H, W -> [N, C] @ [C, classes] (plus a second input when asked)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    dtype = TensorProto.FLOAT if dtype is None else dtype
    ins = [helper.make_tensor_value_info(f"x{i}", dtype, shape) for i in range(inputs)]
    channels = shape[1] if isinstance(shape[1], int) else 3
    w = numpy_helper.from_array(np.ones((channels, classes), np.float32), "w")
    nodes = [helper.make_node("ReduceMean", ["x0"], ["m"], axes=[2, 3], keepdims=0)]
    if dtype != TensorProto.FLOAT:
        nodes.insert(0, helper.make_node("Cast", ["x0"], ["xf"], to=TensorProto.FLOAT))
        nodes[1].input[0] = "xf"
    nodes.append(helper.make_node("MatMul", ["m", "w"], ["logits"]))
    if inputs > 1:
        nodes[-1].output[0] = "l0"
        nodes.append(helper.make_node("ReduceMean", ["x1"], ["m1"], axes=[2, 3], keepdims=0))
        nodes.append(helper.make_node("MatMul", ["m1", "w"], ["l1"]))
        nodes.append(helper.make_node("Add", ["l0", "l1"], ["logits"]))
    out = helper.make_tensor_value_info("logits", TensorProto.FLOAT, [shape[0], classes])
    graph = helper.make_graph(nodes, "tiny", ins, [out], [w])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8)
    onnx.save(model, str(path))
    return path


@pytest.fixture(scope="module")
def exported(digits_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real export of the digits checkpoint (32 px, 10 classes) with its sidecar."""
    out = tmp_path_factory.mktemp("exp") / "m.onnx"
    return Path(export_model("rexnet_060", out, checkpoint=digits_checkpoint).path)


def _copy_with_sidecar(exported: Path, folder: Path, sidecar: str | None) -> Path:
    """``folder/m.onnx`` (the real model) next to a sidecar holding ``sidecar`` (none when ``None``)."""
    folder.mkdir(exist_ok=True)
    onnx = folder / "m.onnx"
    shutil.copy(exported, onnx)
    if sidecar is not None:
        (folder / "m.json").write_text(sidecar)
    return onnx


def _sidecar_with(exported: Path, **changes: object) -> str:
    meta = json.loads(exported.with_suffix(".json").read_text())
    meta.update(changes)
    return json.dumps(meta)


# ---- broken ONNX files ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "empty file, not an ONNX model"),
        (b"this is not a model, just text\n", "not an ONNX model onnxruntime can load"),
        (b"\x08\x07\x12\x04junk" * 50, "not an ONNX model onnxruntime can load"),  # variant: protobuf-like bytes
    ],
)
def test_empty_text_or_junk_onnx_is_an_export_error(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "m.onnx"
    path.write_bytes(content)
    with pytest.raises(ExportError, match=message) as e:
        load_exported(path)
    assert str(path) in str(e.value)


def test_cli_eval_of_a_text_onnx_is_one_line_and_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "m.onnx"
    path.write_text("hello")
    assert main(["eval", "-c", str(path), "--data", "digits"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and str(path) in err and "not an ONNX model" in err


def test_two_inputs_are_refused(tmp_path: Path) -> None:
    path = _tiny_onnx(tmp_path / "two.onnx", ["N", 3, "H", "W"], inputs=2)
    with pytest.raises(ExportError, match=r"two.onnx: the model has 2 inputs \(x0, x1\)"):
        OnnxModel(path)


def test_an_int64_input_is_refused(tmp_path: Path) -> None:  # variant: not float images
    from onnx import TensorProto

    path = _tiny_onnx(tmp_path / "int.onnx", ["N", 3, "H", "W"], dtype=TensorProto.INT64)
    with pytest.raises(ExportError, match=r"int.onnx: input 'x0' is tensor\(int64\)"):
        OnnxModel(path)


def test_a_3d_input_is_refused(tmp_path: Path) -> None:  # variant: not NCHW
    import onnx
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 32])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 3, 32])
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g", [x], [y])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8), tmp_path / "r.onnx")
    with pytest.raises(ExportError, match="expected 4-D NCHW"):
        OnnxModel(tmp_path / "r.onnx")


def test_fixed_input_size_must_match_the_size_asked_for(tmp_path: Path) -> None:
    path = _tiny_onnx(tmp_path / "fixed.onnx", [1, 3, 224, 224])
    (tmp_path / "fixed.json").write_text(json.dumps({"image_size": 32, "num_classes": 10}))
    with pytest.raises(ExportError, match=r"input is fixed at 224x224 px but its sidecar .*fixed.json asks for 32"):
        load_exported(path)
    with pytest.raises(ExportError, match="fixed at 224x224 px but --image-size asks for 64"):
        load_exported(path, image_size=64)
    # without a sidecar it runs at its own fixed size, and a fixed batch of 1 serves any batch
    (tmp_path / "fixed.json").unlink()
    fn, meta = load_exported(path)
    assert meta["image_size"] == 224 and meta["num_classes"] == 10
    assert fn(torch.ones(3, 3, 224, 224)).shape == (3, 10)


def test_non_square_fixed_input_is_refused(tmp_path: Path) -> None:  # variant
    path = _tiny_onnx(tmp_path / "wide.onnx", ["N", 3, 32, 64])
    with pytest.raises(ExportError, match="fixed 32x64 size"):
        OnnxModel(path)


@pytest.mark.skipif(not openvino_available(), reason="openvino not installed")
def test_openvino_xml_without_its_bin(tmp_path: Path, digits_checkpoint: Path, capsys) -> None:
    ir = Path(export_model("rexnet_060", tmp_path / "ir", "openvino", checkpoint=digits_checkpoint, verify=False).path)
    ir.with_suffix(".bin").unlink()
    with pytest.raises(ExportError, match=r"rexnet_060.xml: its weights file rexnet_060.bin is missing"):
        load_exported(ir)
    assert main(["eval", "-c", str(ir)]) == 2 and "Traceback" not in capsys.readouterr().err
    ir.with_suffix(".bin").write_bytes(b"")  # variant: a truncated .bin next to a valid .xml
    ir.write_text("<net>not an IR")  # and a broken .xml
    with pytest.raises(ExportError, match="not a model OpenVINO can read"):
        load_exported(ir)


# ---- crafted sidecars -------------------------------------------------------------------------------
def _plan_with(exported: Path, **block_changes: object) -> dict:
    plan = json.loads(exported.with_suffix(".json").read_text())["plan"]
    plan["blocks"][1].update(block_changes)
    return plan


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("not json", r"m.json: export metadata is not JSON"),
        ("list", r"m.json: export metadata must be a JSON object, got list"),
        ("unknown plan key", r"m.json: field 'plan' is not a valid channel plan: .*colour"),
        ("stride 0", r"m.json: field 'plan' is not a valid channel plan: .*stride must be >= 1, got 0"),
        ("2 names for 10", r"m.json: field 'class_names' has 2 names for num_classes 10"),
        ("image_size abc", r"m.json: field 'image_size' must be an integer in \[8, 4096\], got 'abc'"),
        ("unknown key", r"m.json: unknown field\(s\) 'imagesize'"),  # variant: a typo is not ignored
        ("std 0", r"m.json: field 'std' must be a list of 1-4 finite numbers, each > 0"),  # variant
        ("NaN mean", r"m.json: field 'mean' must be a list of 1-4 finite numbers, got \[nan"),  # variant
        ("bool classes", r"m.json: field 'num_classes' must be an integer >= 1 or null, got True"),  # variant
    ],
)
def test_crafted_sidecar_names_the_file_and_the_field(exported: Path, tmp_path: Path, case: str, message: str) -> None:
    text = {
        "not json": "{model: rexnet_060",
        "list": "[1, 2, 3]",
        "unknown plan key": _sidecar_with(exported, plan=_plan_with(exported, colour="red")),
        "stride 0": _sidecar_with(exported, plan=_plan_with(exported, stride=0)),
        "2 names for 10": _sidecar_with(exported, class_names=["a", "b"]),
        "image_size abc": _sidecar_with(exported, image_size="abc"),
        "unknown key": _sidecar_with(exported, imagesize=32),
        "std 0": _sidecar_with(exported, std=[0, 0, 0]),
        "NaN mean": _sidecar_with(exported, mean=[float("nan"), 0.5, 0.5]),
        "bool classes": _sidecar_with(exported, num_classes=True),
    }[case]
    onnx = _copy_with_sidecar(exported, tmp_path, text)
    with pytest.raises(ExportError, match=message):
        load_exported(onnx)
    assert main(["eval", "-c", str(onnx), "--data", "digits"]) == 2  # the CLI: a message, no traceback


def test_class_names_that_do_not_fit_the_model_outputs(exported: Path, tmp_path: Path) -> None:  # variant
    meta = json.loads(exported.with_suffix(".json").read_text())
    del meta["num_classes"]
    meta["class_names"] = ["a", "b"]  # consistent inside the sidecar, but the model has 10 outputs
    onnx = _copy_with_sidecar(exported, tmp_path, json.dumps(meta))
    with pytest.raises(ExportError, match=r"m.json: num_classes 2, but the model has 10 outputs"):
        load_exported(onnx)
    meta["num_classes"], meta["class_names"] = 7, None  # and a class count alone that does not fit
    (tmp_path / "m.json").write_text(json.dumps(meta))
    with pytest.raises(ExportError, match=r"m.json: num_classes 7, but the model has 10 outputs"):
        load_exported(onnx)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs here")
def test_a_fifo_sidecar_is_refused_not_read(exported: Path, tmp_path: Path) -> None:  # variant: would block
    onnx = _copy_with_sidecar(exported, tmp_path, None)
    os.mkfifo(tmp_path / "m.json")
    with pytest.raises(InputError, match="is a FIFO"):
        read_sidecar(onnx)


def test_a_valid_sidecar_round_trips(exported: Path) -> None:
    meta = read_sidecar(exported)
    assert meta["image_size"] == 32 and meta["num_classes"] == 10 and meta["plan"]["blocks"]
    assert meta["class_names"] == [str(i) for i in range(10)] and meta["format"] == "onnx"


# ---- no sidecar: never a silent 224 px ---------------------------------------------------------------
def _strip_metadata(onnx_path: Path) -> None:
    """Remove the facts export embeds in the file (``metadata_props``): a file from another exporter."""
    import onnx

    model = onnx.load(str(onnx_path))
    del model.metadata_props[:]
    onnx.save(model, str(onnx_path))


def test_onnx_without_sidecar_or_metadata_warns_with_what_it_assumed(
    exported: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    onnx = _copy_with_sidecar(exported, tmp_path, None)
    with caplog.at_level(logging.WARNING, logger="rexnet.deploy"):
        _, meta = load_exported(onnx)  # the file's own metadata_props stand in for the sidecar
    assert meta["image_size"] == 32 and meta["class_names"] == [str(i) for i in range(10)]
    assert meta["recorded_in"] == "metadata_props" and "no sidecar" not in caplog.text
    _strip_metadata(onnx)
    with caplog.at_level(logging.WARNING, logger="rexnet.deploy"):
        _, meta = load_exported(onnx)
    assert meta["image_size"] == 224 and meta["num_classes"] == 10 and meta["recorded_in"] is None
    text = caplog.text
    assert "has no sidecar m.json and no rexnet metadata in the file: running it at 224 px" in text
    assert "ImageNet normalisation (mean (0.485, 0.456, 0.406)" in text and "--image-size" in text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="rexnet.deploy"):
        _, meta = load_exported(onnx, image_size=32)  # the user named the size: nothing to warn about
    assert meta["image_size"] == 32 and "no sidecar" not in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="rexnet.deploy"):
        res = evaluate_exported(onnx, image_size=32)  # no --data and none recorded: digits, said aloud
    assert res["data"] == "digits" and "records no training data" in caplog.text and "pass --data" in caplog.text


@pytest.mark.parametrize("runtime", ["onnxruntime", "openvino"])
def test_a_one_channel_model_fails_with_the_file_named(tmp_path: Path, runtime: str) -> None:  # variant
    if runtime == "openvino" and not openvino_available():
        pytest.skip("openvino not installed")
    path = _tiny_onnx(tmp_path / "gray.onnx", ["N", 1, "H", "W"])
    with pytest.raises(ExportError, match=r"gray.onnx: .* failed on input \[1, 3, 224, 224\]"):
        load_exported(path, runtime)
