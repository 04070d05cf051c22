"""The new user's path of issue 22, scripted end to end: each step is one test, in the order a user walks it.

1. a folder of the user's own images; 2. fine-tune from a weights file; 3. ``eval -c RUN`` without ``--data``;
4. ``eval`` of a whole flat folder; 5. ``predict`` of a directory to CSV; 6. ``save_pretrained``, loaded back by
rexnet and by timm with equal logits; 7. offline ``pretrained=True`` from a hub cache folder built here;
8. export to ONNX and OpenVINO, then ``eval -c FILE`` without ``--data``; 9. ``bench`` of those files;
10. ``make demo`` twice (tests/test_make_demo.py); 11. ``detect train``, ``--resume --epochs N``, ``detect eval RUN``.

The steps share one module-scoped state (a later step uses what an earlier one made), and every step checks that
rexnet's own code raised no Python warning.
"""

from __future__ import annotations

import csv
import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import rexnet
from rexnet.cli import main

from .zoo.test_hub import _cache_folder

# The steps hand their files on in order: under pytest-xdist they run in one worker (make test: --dist loadfile).
CLASSES = ("circle", "square", "triangle")
SIZE = 32  # the user's choice for the fine-tune (the weights' own is 224 px)


def _draw(kind: str, rng: np.random.Generator, px: int = 40) -> Image.Image:
    """A noisy drawing of one shape, in a random colour, at a random place."""
    img = np.full((px, px, 3), 255, np.uint8) - rng.integers(0, 40, (px, px, 3), dtype=np.uint8)
    colour = rng.integers(0, 180, 3)
    c, r = rng.integers(12, px - 12, 2), rng.integers(6, 10)
    yy, xx = np.mgrid[:px, :px]
    if kind == "circle":
        mask = (yy - c[0]) ** 2 + (xx - c[1]) ** 2 <= r * r
    elif kind == "square":
        mask = (abs(yy - c[0]) <= r) & (abs(xx - c[1]) <= r)
    else:
        mask = (yy - c[0] + r >= 0) & (yy - c[0] <= r) & (abs(xx - c[1]) * 2 <= yy - c[0] + r)
    img[mask] = colour
    return Image.fromarray(img)


def _own_folder(root: Path, per_class: int, seed: int) -> Path:
    rng = np.random.default_rng(seed)
    for kind in CLASSES:
        (root / kind).mkdir(parents=True)
        for i in range(per_class):
            _draw(kind, rng).save(root / kind / f"{i:03d}.png")
    return root


class Journey:
    """What the steps hand on: paths under one temporary folder."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.data = root / "photos"  # step 1
        self.held_out = root / "held_out"  # a flat folder of class folders, never trained on
        self.weights = root / "start.safetensors"
        self.run = root / "runs" / "photos"
        self.exports: dict[str, Path] = {}


@pytest.fixture(scope="module")
def journey(tmp_path_factory) -> Journey:
    return Journey(tmp_path_factory.mktemp("journey"))


@pytest.fixture(autouse=True)
def no_rexnet_warnings():
    """Every step: no Python warning whose origin is rexnet's own code (third-party ones are not ours)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield
    ours = [w for w in caught if "/rexnet/" in str(Path(w.filename).as_posix()) and "/tests/" not in w.filename]
    assert not ours, [f"{w.filename}:{w.lineno}: {w.message}" for w in ours]


def test_1_a_folder_of_own_images(journey):
    _own_folder(journey.data, per_class=8, seed=0)
    _own_folder(journey.held_out, per_class=4, seed=1)
    assert len(list(journey.data.rglob("*.png"))) == 24 and len(list(journey.held_out.rglob("*.png"))) == 12


def test_2_finetune_from_a_weights_file(journey, caplog):
    torch.manual_seed(0)
    start = rexnet.create_model("rexnet_100")  # stands in for downloaded ImageNet weights (no network here)
    rexnet.weights.save_weights(start, journey.weights)
    caplog.set_level("INFO", logger="rexnet")
    args = ["finetune", "--pretrained", str(journey.weights), "--data", str(journey.data), "-o", str(journey.run)]
    args += ["--image-size", str(SIZE), "--epochs", "1", "-b", "8", "--threads", "1", "--plan", "fixed"]
    assert main([*args, "--no-progress", "--no-tensorboard"]) == 0
    summary = json.loads((journey.run / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["num_classes"] == 3
    config = json.loads((journey.run / "config.json").read_text())
    assert config["model"] == "rexnet_100" and config["image_size"] == SIZE  # the model from the file, size as set
    said = " ".join(r.getMessage() for r in caplog.records)
    assert "image_size 32 as set" in said and "mean (0.485" in said  # the log says what it chose and why


def test_3_eval_of_the_run_without_data(journey, capsys, tmp_path):
    assert main(["eval", "-c", str(journey.run), "-o", str(tmp_path / "r.json")]) == 0
    res = json.loads((tmp_path / "r.json").read_text())
    assert res["data"].endswith(str(journey.data)) and res["split"] == "val" and res["image_size"] == SIZE
    assert res["class_names"] == list(CLASSES) and 0 < res["count"] < 24  # the held-out part of the run's data
    assert "top-5" not in capsys.readouterr().out  # 3 classes: top-5 would say nothing


def test_4_eval_of_a_whole_flat_folder(journey, capsys, tmp_path):
    preds = tmp_path / "predictions.csv"
    args = ["eval", "-c", str(journey.run), "--data", str(journey.held_out), "--predictions", str(preds)]
    assert main([*args, "-o", str(tmp_path / "r.json")]) == 0
    res = json.loads((tmp_path / "r.json").read_text())
    assert res["split"] == "all" and res["count"] == 12  # every image, none held back for a split
    assert len(res["per_class_precision"]) == 3 and len(res["per_class_recall"]) == 3
    assert (tmp_path / "r.png").stat().st_size > 0  # the confusion matrix, drawn
    rows = list(csv.DictReader(preds.open()))
    assert len(rows) == 12 and {r["label"] for r in rows} == set(CLASSES)
    assert all(r["prediction"] in CLASSES for r in rows)
    assert "recall" in capsys.readouterr().out  # the per-class table is printed


def test_5_predict_a_directory_to_csv(journey, tmp_path):
    out = tmp_path / "pred.csv"
    assert main(["predict", "-c", str(journey.run), str(journey.held_out), "-o", str(out)]) == 0
    rows = list(csv.reader(out.open()))
    header, body = rows[0], rows[1:]
    assert len(body) == 12  # every image under the folder, found recursively
    assert sum(h.startswith("prob") or h.startswith("top") for h in header) <= 2 * 3  # top-k capped at 3 classes


def test_6_save_pretrained_loads_in_rexnet_and_timm_with_equal_logits(journey, tmp_path):
    timm = pytest.importorskip("timm")
    model, _ = rexnet.load_model(journey.run)
    folder = tmp_path / "shared"
    rexnet.save_pretrained(model, folder, label_names=list(CLASSES))
    cfg = json.loads((folder / "config.json").read_text())
    assert cfg["architecture"] == "rexnet_100" and cfg["num_classes"] == 3 and cfg["label_names"] == list(CLASSES)
    assert cfg["pretrained_cfg"]["input_size"] == [3, SIZE, SIZE]  # what the run trained at, not the registry's 224
    x = torch.randn(2, 3, SIZE, SIZE)
    ours = rexnet.create_model(f"local-dir:{folder}").eval()
    theirs = timm.create_model(f"local-dir:{folder}", pretrained=True).eval()  # timm loads weights when asked
    with torch.no_grad():
        ref = model.eval()(x)
        assert torch.allclose(ours(x), ref, atol=1e-5) and torch.allclose(theirs(x), ref, atol=1e-5)


def test_7_pretrained_true_offline_from_a_hub_cache(tmp_path, monkeypatch):
    from rexnet.weights import from_our_layout, write_safetensors

    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf_home"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    torch.manual_seed(1)
    ref = rexnet.create_model("rexnet_100").eval()
    snap = _cache_folder(tmp_path / "hub", "timm/rexnet_100.nav_in1k")
    write_safetensors(from_our_layout(ref.state_dict(), ref.plan, "timm"), snap / "model.safetensors")  # as on the hub
    model = rexnet.create_model("rexnet_100", pretrained=True).eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.allclose(model(x), ref(x), atol=1e-5)


@pytest.mark.parametrize("fmt", ["onnx", "openvino"])
def test_8_export_then_eval_the_file_without_data(journey, fmt, capsys, tmp_path):
    pytest.importorskip("openvino" if fmt == "openvino" else "onnxruntime")
    path = journey.root / ("model.onnx" if fmt == "onnx" else "model.xml")
    assert main(["export", str(journey.run), "-o", str(path), "--format", fmt]) == 0
    journey.exports[fmt] = path
    assert main(["eval", "-c", str(path), "-o", str(tmp_path / "r.json")]) == 0
    res = json.loads((tmp_path / "r.json").read_text())
    assert res["data"].endswith(str(journey.data)) and res["image_size"] == SIZE and res["class_names"] == list(CLASSES)


def test_9_bench_of_the_exported_files(journey, tmp_path, capsys):
    if set(journey.exports) != {"onnx", "openvino"}:
        pytest.skip("step 8 did not export both files")
    args = ["bench", "--tiny", "--allow-spinning", "--out", str(tmp_path / "bench"), "--rounds", "1", "--no-train"]
    args += ["--checkpoint", str(journey.run), "--only", "ours eager"]
    args += ["--onnx", str(journey.exports["onnx"]), "--openvino", str(journey.exports["openvino"])]
    assert main(args) == 0
    table = capsys.readouterr().out
    assert journey.exports["onnx"].name in table and journey.exports["openvino"].name in table
    assert not table.lstrip().startswith("{")  # a table, not raw JSON


def test_11_detect_train_resume_with_more_epochs_then_eval_the_run(tmp_path, capsys):
    out = tmp_path / "det"
    tiny = ["-m", "rexnet_060", "--image-size", "80", "--batch-size", "4", "--train-limit", "8", "--val-limit", "4"]
    tiny += ["--threads", "1", "--no-progress", "--warmup-iters", "2"]
    assert main(["detect", "train", "-o", str(out), *tiny, "--epochs", "1"]) == 0
    resume = ["detect", "train", "-o", str(out), "--resume", "--no-progress", "--epochs", "2"]
    assert main(resume) == 2  # a changed epoch count is refused unless allowed, as in classification
    assert main([*resume, "--allow-change", "epochs"]) == 0
    assert json.loads((out / "summary.json").read_text())["epochs_run"] == 2
    capsys.readouterr()
    assert main(["detect", "eval", str(out), "--limit", "2"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert 0 <= res["bbox_AP"] <= 100 and res["num_detections"] > 0
