"""The new user's path (issue 22): a 3-class folder of their own images, a tiny run on it, then ``eval -c RUN``
without ``--data``, ``eval`` of a whole folder, ``predict`` of a folder/glob to CSV, top-k capped at 3."""

from __future__ import annotations

import csv
import json
import logging

import numpy as np
import pytest
import torch
from PIL import Image

import rexnet
from rexnet.cli import main
from rexnet.data import training_data_spec
from rexnet.errors import InputError
from rexnet.train import evaluate_checkpoint, predict_files, train

from .helpers import tiny_cfg

CLASSES = ("apple", "banana", "cherry")
COLOURS = {"apple": (200, 30, 30), "banana": (220, 210, 40), "cherry": (90, 0, 60)}


def make_class_folder(root, per_class: int, size: int = 24, seed: int = 0):
    """``root/<class>/<i>.png``: noisy images of one colour per class (PNG via PIL)."""
    rng = np.random.default_rng(seed)
    for c in CLASSES:
        (root / c).mkdir(parents=True)
        for i in range(per_class):
            img = np.clip(np.array(COLOURS[c]) + rng.integers(-30, 30, (size, size, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(img).save(root / c / f"{i}.png")
    return root


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """One epoch of rexnet_060 on 15 images (12 train / 3 held out) at 32 px: a few seconds on one core."""
    base = tmp_path_factory.mktemp("evalpath")
    data = make_class_folder(base / "mine", per_class=5)
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    records: list[logging.LogRecord] = []
    handler = logging.Handler(logging.INFO)
    handler.emit = records.append  # type: ignore[method-assign]
    logger = logging.getLogger("rexnet")
    logger.addHandler(handler)
    old_level = logger.level
    logger.setLevel(logging.INFO)  # setLevel, not .level: it clears the loggers' cached levels
    try:
        cfg = tiny_cfg(data=str(data), epochs=1, train_limit=None, val_limit=None, batch_size=6, out=str(base / "run"))
        res = train(cfg)
    finally:
        torch.set_num_threads(old)
        logger.removeHandler(handler)
        logger.setLevel(old_level)
    assert res.status == "completed"
    epoch_lines = [r.getMessage() for r in records if r.getMessage().startswith("epoch 1/1")]
    assert len(epoch_lines) == 1 and "top1" in epoch_lines[0] and "top5" not in epoch_lines[0]  # 3 classes
    return base / "run", data


def test_spec_of_a_run_is_what_it_trained_on(run):
    out, data = run
    spec = training_data_spec(out)
    assert spec["data"] == str(data) and spec["image_size"] == 32 and spec["recorded"] and spec["origin"] == "run"
    assert spec["class_names"] == list(CLASSES) and spec["num_classes"] == 3
    info = rexnet.zoo.get_model_info("rexnet_060").pretrained_cfg
    assert spec["crop_pct"] == info["crop_pct"] and spec["mean"] == tuple(info["mean"])


def test_eval_of_a_run_without_data_uses_its_own_held_out_images(run, capsys, tmp_path):
    out, data = run
    assert main(["eval", "-c", str(out), "-o", str(tmp_path / "r.json")]) == 0
    text = capsys.readouterr().out
    res = json.loads((tmp_path / "r.json").read_text())
    assert res["data"] == f"folder:{data}" and res["split"] == "val" and res["count"] == 3  # 1 of 5 per class
    assert res["class_names"] == list(CLASSES) and res["image_size"] == 32
    assert "top-5" not in text and "top-1" in text  # top-5 of 3 classes says nothing
    assert all(name in text for name in CLASSES) and "precision" in text and "recall" in text
    assert set(res["per_class_precision"]) == set(CLASSES) and res["per_class_recall"] == res["per_class"]
    with Image.open(tmp_path / "r.png") as im:
        assert min(im.size) >= 600  # readable


def test_eval_of_a_whole_flat_folder_scores_every_image(run, tmp_path):
    out, data = run
    held = make_class_folder(tmp_path / "held", per_class=4, seed=1)
    preds = tmp_path / "predictions.csv"
    res = evaluate_checkpoint(out, data=str(held), predictions=preds, top_k=5)
    assert res["split"] == "all" and res["count"] == 12  # default for a folder with no split: all of it
    rows = list(csv.reader(preds.open()))
    assert rows[0] == ["path", "label", "prediction", "top1", "top1_prob", "top2", "top2_prob", "top3", "top3_prob"]
    assert len(rows) == 13 and len(res["predictions"]) == 12  # top-5 capped at the 3 classes
    for row in rows[1:]:
        assert row[0].split("/")[-2] == row[1] and row[2] == row[3]  # label from the folder, prediction = top-1
        assert sum(float(p) for p in row[4::2]) == pytest.approx(1, abs=1e-4)
    correct = sum(r[1] == r[2] for r in rows[1:])
    assert res["top1"] == pytest.approx(100 * correct / 12)
    # the training folder given explicitly: its held-out split by default, every image with --split all
    assert evaluate_checkpoint(out, data=str(data))["count"] == 3
    assert evaluate_checkpoint(out, data=str(data), split="all")["count"] == 15


def test_eval_of_a_folder_with_a_test_split(run, tmp_path):
    out, _ = run
    root = tmp_path / "split"
    make_class_folder(root / "train", per_class=5)
    make_class_folder(root / "test", per_class=2, seed=2)
    assert evaluate_checkpoint(out, data=str(root), split="test")["count"] == 6
    assert evaluate_checkpoint(out, data=str(root), split="all")["count"] == 21
    assert evaluate_checkpoint(out, data=str(root))["count"] == 3  # val: held out of train/, 1 per class
    with pytest.raises(InputError, match="no test split"):
        evaluate_checkpoint(out, data=str(make_class_folder(tmp_path / "flat", 2)), split="test")


def test_predict_a_folder_and_a_glob_to_csv_and_jsonl(run, tmp_path, capsys):
    out, _ = run
    imgs = make_class_folder(tmp_path / "imgs", per_class=3, seed=3)
    (imgs / "notes.txt").write_text("not an image")
    (imgs / "apple" / "deeper").mkdir()
    Image.new("RGB", (20, 20), (200, 30, 30)).save(imgs / "apple" / "deeper" / "x.jpg")
    csv_out = tmp_path / "p.csv"
    assert main(["predict", "-c", str(out), str(imgs), "-o", str(csv_out)]) == 0
    rows = list(csv.reader(csv_out.open()))
    assert len(rows) == 1 + 10 and rows[0][:3] == ["path", "prediction", "top1"]  # recursive, images only
    assert rows[0][-2:] == ["top3", "top3_prob"] and all(r[1] in CLASSES for r in rows[1:])
    capsys.readouterr()
    jsonl = tmp_path / "p.jsonl"
    assert main(["predict", "-c", str(out), str(imgs / "*" / "*.png"), "-o", str(jsonl)]) == 0
    lines = [json.loads(x) for x in jsonl.read_text().splitlines()]
    assert len(lines) == 9 and all(len(x["top"]) == 3 for x in lines)
    res = predict_files(out, [imgs / "banana"], top_k=2)
    assert [len(r["top"]) for r in res] == [2, 2, 2]
    with pytest.raises(InputError, match="no file matches"):
        predict_files(out, [str(imgs / "*.gif")])


def test_predict_uses_the_runs_size_and_preprocessing(run, tmp_path):
    out, _ = run
    img = tmp_path / "big.png"
    Image.new("RGB", (300, 200), (220, 210, 40)).save(img)
    model, meta = rexnet.load_model(out)
    spec = training_data_spec(meta)
    tf = rexnet.data.build_eval_transform(32, **{k: spec[k] for k in ("mean", "std", "crop_pct", "interpolation")})
    with torch.no_grad():
        want = model(tf(Image.open(img).convert("RGB"))[None]).softmax(1)[0]
    got = predict_files(out, [img], top_k=1)[0]["top"][0]
    assert got["class"] == CLASSES[int(want.argmax())] and got["prob"] == pytest.approx(float(want.max()), rel=1e-5)


def test_a_bare_weights_file_needs_data_and_warns_what_it_assumes(run, tmp_path, caplog):
    out, data = run
    model, _ = rexnet.load_model(out)
    w = tmp_path / "w.safetensors"
    rexnet.save_weights(model, w, name="rexnet_060")
    with pytest.raises(InputError, match="records no training data.*--data"):
        evaluate_checkpoint(w)
    img = next((data / "apple").iterdir())
    with caplog.at_level(logging.WARNING):
        predict_files(w, [img])
    assert "records no preprocessing" in caplog.text and "224 px" in caplog.text


def test_eval_of_a_run_whose_data_moved_names_the_fix(run, tmp_path):
    out, data = run
    moved = data.with_name("moved")
    data.rename(moved)
    try:
        with pytest.raises(InputError, match="was trained on .*pass --data"):
            evaluate_checkpoint(out)
        assert evaluate_checkpoint(out, data=str(moved))["split"] == "all"  # not the recorded path: all of it
    finally:
        moved.rename(data)


def test_training_log_and_summary_leave_out_top5_for_three_classes(run, capsys):
    out, _ = run
    summary = json.loads((out / "summary.json").read_text())
    assert summary["num_classes"] == 3
    assert main(["eval", "-c", str(out)]) == 0
    assert "top-5" not in capsys.readouterr().out


def test_a_model_folder_records_preprocessing_and_labels_but_no_data(run, tmp_path, caplog):
    out, data = run
    model, _ = rexnet.load_model(out)
    folder = rexnet.save_pretrained(model, tmp_path / "hf", label_names=list(CLASSES))
    spec = training_data_spec(folder)
    assert spec["origin"] == "folder" and spec["recorded"] and spec["class_names"] == list(CLASSES)
    with caplog.at_level(logging.WARNING):
        res = predict_files(folder, [data / "cherry"], top_k=1, image_size=32)
    assert "records no preprocessing" not in caplog.text and all(r["top"][0]["class"] in CLASSES for r in res)
    with pytest.raises(InputError, match=r"records no training data \(a model folder"):
        evaluate_checkpoint(folder)
    assert evaluate_checkpoint(folder, data=str(data), image_size=32)["split"] == "all"  # not known as its data
