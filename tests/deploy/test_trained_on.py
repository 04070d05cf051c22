"""An exported model knows what it was trained on (issue 22): the run's data, size, preprocessing and
classes travel in the sidecar and in the file itself (ONNX ``metadata_props``, OpenVINO ``rt_info``),
and ``eval``/``predict``/``export --precision int8``/``bench --checkpoint`` default to them."""

from __future__ import annotations

import json
import logging
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest

from rexnet.cli import main
from rexnet.deploy import export_model, openvino_available
from rexnet.deploy.facts import FACT_FIELDS, MARKER, bench_defaults, from_props
from rexnet.errors import ExportError

CLASSES = ["blue", "green", "red"]  # class folders, sorted


def _image_folder(root: Path) -> None:
    """Three classes of 10 noisy single-colour 40x40 PNGs."""
    from PIL import Image

    rng = np.random.default_rng(0)
    for name, rgb in (("red", (220, 30, 30)), ("green", (30, 220, 30)), ("blue", (30, 30, 220))):
        (root / name).mkdir(parents=True)
        for i in range(10):
            pixels = np.clip(np.array(rgb)[None, None] + rng.normal(0, 20, (40, 40, 3)), 0, 255)
            Image.fromarray(pixels.astype(np.uint8)).save(root / name / f"{i}.png")


@contextmanager
def _in(folder: Path) -> Iterator[None]:
    """Run the body in ``folder`` as the working folder (the user's project folder)."""
    here = os.getcwd()
    os.chdir(folder)
    try:
        yield
    finally:
        os.chdir(here)


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished 1-epoch rexnet_060 run at 32 px on a 3-class folder given *relative* to the working folder."""
    base = tmp_path_factory.mktemp("user")
    _image_folder(base / "my_images")
    with _in(base):  # the run records --data as typed: "my_images"
        args = ["train", "-m", "rexnet_060", "--data", "my_images", "--epochs", "1", "--image-size", "32"]
        assert main([*args, "-b", "8", "--threads", "1", "--no-progress", "--out", str(base / "run")]) == 0
    assert json.loads((base / "run" / "config.json").read_text())["data"] == "my_images"
    return base / "run"


@pytest.fixture(scope="module")
def exports(run: Path) -> dict[str, Path]:
    """The run exported to ONNX and (when installed) OpenVINO from the folder it was trained in."""
    with _in(run.parent):
        out = {"onnx": Path(export_model("run", run.parent / "exp" / "m.onnx").path)}
        if openvino_available():
            out["openvino"] = Path(export_model("run", run.parent / "exp" / "ir", "openvino").path)
    return out


def _folder(run: Path) -> str:
    return str((run.parent / "my_images").resolve())


def _without_sidecar(path: Path, dest: Path) -> Path:
    """A copy of an exported file (an IR with its .bin) with no .json next to it."""
    dest.mkdir(parents=True, exist_ok=True)
    for f in path.parent.glob(path.stem + ".*"):
        if f.suffix != ".json":
            shutil.copy(f, dest / f.name)
    return dest / path.name


def test_export_writes_the_runs_facts_into_the_sidecar_and_the_file(run: Path, exports: dict[str, Path]) -> None:
    import onnx

    side = json.loads(exports["onnx"].with_suffix(".json").read_text())
    assert side["data"] == _folder(run)  # made absolute: eval finds it from any working folder
    assert (side["model"], side["image_size"], side["num_classes"]) == ("rexnet_060", 32, 3)
    assert side["class_names"] == CLASSES and side["interpolation"] == "bicubic"
    props = {p.key: p.value for p in onnx.load(str(exports["onnx"])).metadata_props}
    assert props[MARKER]
    for key in FACT_FIELDS:  # the same facts, JSON-encoded, in the file itself
        assert json.loads(props[key]) == side[key], key
    if "openvino" in exports:
        import openvino as ov

        ir = ov.Core().read_model(str(exports["openvino"]))
        ov_side = json.loads(exports["openvino"].with_suffix(".json").read_text())
        for key in FACT_FIELDS:
            assert json.loads(ir.get_rt_info(["rexnet", key]).astype(str)) == ov_side[key] == side[key], key


@pytest.mark.parametrize("fmt", ["onnx", "openvino"])
@pytest.mark.parametrize("sidecar", [True, False])
def test_eval_of_an_exported_file_without_data_scores_the_runs_folder(
    run: Path, exports: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str], fmt: str, sidecar: bool
) -> None:
    from rexnet.train import evaluate_checkpoint

    if fmt not in exports:
        pytest.skip("openvino not installed")
    path = exports[fmt] if sidecar else _without_sidecar(exports[fmt], tmp_path / "bare")
    capsys.readouterr()
    assert main(["eval", "-c", str(path), "--split", "val", "-o", str(tmp_path / "r.json")]) == 0
    out = capsys.readouterr().out
    assert f"on folder:{_folder(run)} val (6 images)" in out
    res = json.loads((tmp_path / "r.json").read_text())
    ref = evaluate_checkpoint(run, data=_folder(run), device="cpu", split="val")  # PyTorch, same split
    assert res["count"] == ref["count"] == 6 and res["top1"] == pytest.approx(ref["top1"])
    assert res["image_size"] == 32 and res["class_names"] == CLASSES


def test_data_overrides_and_a_mismatch_says_what_to_pass(
    exports: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["eval", "-c", str(exports["onnx"]), "--data", "digits"]) == 2
    err = capsys.readouterr().err
    assert "digits has 10 classes but the model has 3" in err and "pass --data" in err and "Traceback" not in err


def test_a_recorded_folder_that_is_not_here_is_named(
    run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # exported from another working folder, the run's relative "my_images" cannot be resolved: kept as typed
    path = export_model(str(run), tmp_path / "m.onnx", verify=False).path
    assert json.loads((tmp_path / "m.json").read_text())["data"] == "my_images"
    assert main(["eval", "-c", path]) == 2
    err = capsys.readouterr().err
    assert "'my_images'" in err and "the training data" in err and "pass --data" in err and "Traceback" not in err


def test_predict_with_an_exported_file_without_sidecar_names_the_runs_classes(
    run: Path, exports: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    image = run.parent / "my_images" / "red" / "0.png"
    for path in exports.values():
        bare = _without_sidecar(path, tmp_path / path.suffix[1:])
        capsys.readouterr()
        assert main(["predict", str(image), "-c", str(bare), "-k", "3", "--json"]) == 0
        top = json.loads(capsys.readouterr().out)[0]["top"]
        assert sorted(t["class"] for t in top) == CLASSES


def test_int8_export_calibrates_on_the_runs_data(run: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="rexnet.deploy.export"), _in(run.parent):
        res = export_model(str(run), tmp_path / "q.onnx", precision="int8", calib_images=8)
    side = json.loads((tmp_path / "q.json").read_text())
    assert side["calib_data"] == side["data"] == _folder(run) and side["precision"] == "int8"
    assert "calibrating int8 on" in caplog.text and res.top1_agreement is not None
    with pytest.raises(ExportError, match="records no training data: pass --calib-data"):
        export_model("rexnet_060", tmp_path / "r.onnx", precision="int8")  # a bare name records nothing
    assert not (tmp_path / "r.onnx").exists()


def test_bench_checkpoint_takes_the_runs_model_size_and_data(
    run: Path, exports: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with _in(run.parent):
        assert bench_defaults(run) == {"model": "rexnet_060", "image_size": 32, "calib_data": _folder(run)}
    assert bench_defaults(run / "checkpoints" / "best.pt")["image_size"] == 32
    out = tmp_path / "bench"
    args = ["bench", "--tiny", "--allow-spinning", "--out", str(out), "--checkpoint", str(run), "--rounds", "1"]
    args += ["--no-train", "--only", "ours eager", "--onnx", str(exports["onnx"])]
    if "openvino" in exports:
        args += ["--openvino", str(exports["openvino"])]
    capsys.readouterr()
    with _in(run.parent):
        assert main(args) == 0
    assert "model rexnet_060, image_size 32, calib_data" in capsys.readouterr().out
    res = json.loads((out / "bench.json").read_text())
    cfg = res["config"]
    assert (cfg["model"], cfg["image_size"], cfg["calib_data"]) == ("rexnet_060", 32, _folder(run))
    assert cfg["onnx"] is True  # --onnx FILE names a file; it does not switch the onnxruntime paths
    names = {r["name"] for r in res["inference"]}
    assert {"ours eager", "m.onnx (onnxruntime)"} <= names
    assert ("rexnet_060.xml (openvino)" in names) == ("openvino" in exports)


def test_bench_onnx_and_openvino_switches_still_switch() -> None:
    import argparse

    from rexnet.cli.deploy import add_parsers

    parser = argparse.ArgumentParser()
    add_parsers(parser.add_subparsers())
    ns = parser.parse_args(["bench", "-o", "x", "--no-onnx", "--openvino", "a.xml", "--openvino", "b.xml"])
    assert ns.cfg_onnx is False and ns.cfg_openvino is None and ns.openvino_file == ["a.xml", "b.xml"]
    ns = parser.parse_args(["bench", "-o", "x", "--onnx", "--onnx-file", "m.onnx", "--no-openvino"])
    assert ns.cfg_onnx is True and ns.onnx_file == ["m.onnx"] and ns.cfg_openvino is False
    with pytest.raises(SystemExit):
        parser.parse_args(["bench", "-o", "x", "--no-onnx=m.onnx"])


def test_embedded_metadata_is_strict_for_rexnets_files_and_lenient_for_others() -> None:
    good = {"image_size": "32", "data": '"digits"', "class_names": '["a", "b"]', MARKER: "1"}
    assert from_props(good, "m.onnx") == {
        "image_size": 32,
        "data": "digits",
        "class_names": ["a", "b"],
        "num_classes": 2,
    }
    with pytest.raises(ExportError, match=r"m.onnx: field 'image_size' must be an integer"):
        from_props({**good, "image_size": '"abc"'}, "m.onnx")
    foreign = {"model": "resnet from another tool", "image_size": "huge", "mean": "[0.5, 0.5, 0.5]"}
    assert from_props(foreign, "f.onnx") == {"model": "resnet from another tool", "mean": [0.5, 0.5, 0.5]}
    with pytest.raises(ExportError, match="has 2 names for num_classes 3"):
        from_props({**good, "num_classes": "3"}, "m.onnx")
