"""Evaluating anything (issue 22): the val/test/all splits of each layout, per-class precision and recall,
per-image predictions, top-5 left out for 5 classes or fewer, files/folders/globs for predict."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn
from torch.utils.data import TensorDataset

from rexnet.data import build_datasets, data_preprocessing, list_image_files
from rexnet.data.evaluation import evaluate, summarize, topk_label
from rexnet.errors import InputError
from rexnet.train.outputs import per_class_table, prediction_table


def _images(d, n, start=0, suffix="png"):
    d.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(start)
    for i in range(start, start + n):
        Image.fromarray(rng.integers(0, 255, (8, 8, 3), dtype=np.uint8)).save(d / f"{i}.{suffix}")


def test_precision_and_recall_hand_checked():
    # rows = true class, columns = predicted
    conf = torch.tensor([[3, 1, 0], [0, 2, 2], [0, 0, 0]])
    res = summarize(dict(top1=5.0, top5=8.0, loss_sum=0.0, count=8, confusion=conf, skipped=[]), ["a", "b", "c"])
    assert res["per_class_recall"] == {"a": 75.0, "b": 50.0, "c": None}  # c has no image
    assert res["per_class_precision"] == {
        "a": 100.0,
        "b": pytest.approx(200 / 3),
        "c": 0.0,
    }  # 2 predicted c, both wrong
    assert (
        res["per_class_images"] == {"a": 4, "b": 4, "c": 0}
        and res["per_class"] == res["per_class_recall"]
        and res["top5_k"] == 3
    )
    table = per_class_table(res).splitlines()
    assert table[0].split() == ["class", "images", "precision", "recall"]
    assert table[2].split() == ["a", "4", "100.00%", "75.00%"] and table[4].split() == ["c", "0", "0.00%", "-"]


def test_top5_is_reported_only_with_more_than_five_classes():
    three = {"top5": 100.0, "confusion": [[1, 0, 0]] * 3}
    six = {"top5": 80.0, "confusion": [[1] * 6] * 6}
    assert topk_label(three) == "" and topk_label(six) == "  top-5 80.00%"
    assert topk_label({"val_top5": 90.0}, 4, key="val_top5") == ""
    assert topk_label({"val_top5": 90.0}, 10, key="val_top5") == "  top-5 90.00%"


def test_evaluate_keeps_each_images_top_k_capped_at_the_class_count():
    x = torch.tensor([[3.0, 2.0, 1.0], [0.0, 1.0, 5.0], [1.0, 4.0, 0.0]])
    model = nn.Linear(3, 3, bias=False)
    with torch.no_grad():
        model.weight.copy_(torch.eye(3))
    res = evaluate(model, TensorDataset(x, torch.tensor([0, 1, 1])), num_classes=3, device="cpu", keep_top=5)
    rows = res["predictions"]
    assert [r["prediction"] for r in rows] == ["0", "2", "1"] and [r["label"] for r in rows] == ["0", "1", "1"]
    assert [r["path"] for r in rows] == ["#0", "#1", "#2"] and all(len(r["top"]) == 3 for r in rows)
    assert rows[0]["top"][0]["prob"] == pytest.approx(float(x[0].softmax(0)[0]))
    table = prediction_table(rows)
    assert table[0] == ["path", "label", "prediction", "top1", "top1_prob", "top2", "top2_prob", "top3", "top3_prob"]
    assert table[2][:4] == ["#1", "1", "2", "2"]
    assert "predictions" not in evaluate(model, TensorDataset(x, torch.tensor([0, 1, 1])), num_classes=3, device="cpu")


def test_prediction_rows_of_a_folder_skip_an_unreadable_image(tmp_path):
    _images(tmp_path / "a", 3)
    _images(tmp_path / "b", 2)
    (tmp_path / "a" / "1.png").write_bytes(b"not a png")
    bundle = build_datasets(str(tmp_path), 16, train=False, model="rexnet_060")
    model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 16 * 16, 2))
    res = evaluate(model, bundle.split("all"), class_names=bundle.class_names, device="cpu", keep_top=1, batch_size=2)
    assert [os.path.basename(r["path"]) for r in res["predictions"]] == ["0.png", "2.png", "0.png", "1.png"]
    assert [r["label"] for r in res["predictions"]] == ["a", "a", "b", "b"]
    assert [s["path"] for s in res["skipped"]] == [str(tmp_path / "a" / "1.png")]


def test_splits_of_each_layout(tmp_path):
    flat = tmp_path / "flat"
    for c in ("a", "b"):
        _images(flat / c, 5)
    b = build_datasets(str(flat), 16, train=False, model=None)
    assert b.layout == "classes" and b.default_eval_split == "all"
    assert (len(b.split("val")), len(b.split("all"))) == (2, 10)
    with pytest.raises(InputError, match="no test split"):
        b.split("test")
    with pytest.raises(InputError, match="unknown split 'train'"):
        b.split("train")
    nested = tmp_path / "nested"
    for split, n in (("train", 4), ("val", 2), ("test", 3)):
        for c in ("a", "b"):
            _images(nested / split / c, n)
    b = build_datasets(str(nested), 16, train=False, model=None)
    assert b.layout == "split" and b.default_eval_split == "val"
    assert (len(b.split("val")), len(b.split("test")), len(b.split("all"))) == (4, 6, 18)
    no_val = tmp_path / "no_val"  # train/ and test/ only: val is held out of train/, test/ is reported
    for split, n in (("train", 5), ("test", 2)):
        for c in ("a", "b"):
            _images(no_val / split / c, n)
    b = build_datasets(str(no_val), 16, model=None)
    assert b.layout == "split" and b.class_names == ["a", "b"]  # not the classes "test" and "train"
    assert (len(b.train), len(b.val), len(b.test), len(b.split("all"))) == (8, 2, 4, 14)
    memory = build_datasets("digits", 32, train=False)
    assert memory.layout == "memory" and len(memory.split("all")) == 1797  # every digit: train and val


def test_a_folder_too_small_to_hold_out_can_still_be_scored_whole(tmp_path):
    for c in ("a", "b"):
        _images(tmp_path / c, 1)
    b = build_datasets(str(tmp_path), 16, train=False, model=None)
    assert len(b.split("all")) == 2
    with pytest.raises(InputError, match="too few images.*'all'"):
        b.split("val")
    with pytest.raises(InputError, match="too few images"):
        build_datasets(str(tmp_path), 16, model=None)  # training needs a held-out split


def test_preprocessing_overrides_and_full_frame_sets():
    base = data_preprocessing("digits", "rexnet_100")
    assert base["crop_pct"] == 0.875 and base["interpolation"] == "bicubic"
    assert data_preprocessing("mnist:/x", "rexnet_100", {"crop_pct": 0.5})["crop_pct"] == 1.0  # shown whole
    got = data_preprocessing("/some/dir", "rexnet_100", {"mean": [0.5, 0.5, 0.5], "crop_pct": None})
    assert got["mean"] == (0.5, 0.5, 0.5) and got["crop_pct"] == 0.875
    with pytest.raises(InputError, match="unknown preprocessing key"):
        data_preprocessing("digits", None, {"size": 3})


def test_list_image_files_walks_folders_and_expands_globs(tmp_path):
    _images(tmp_path / "d" / "x", 2)
    _images(tmp_path / "d" / "x" / "deep", 1, start=5, suffix="jpg")
    (tmp_path / "d" / "readme.txt").write_text("no")
    os.symlink("..", tmp_path / "d" / "x" / "loop")  # walked once, no hang
    one = tmp_path / "one.png"
    Image.new("RGB", (4, 4)).save(one)
    files = list_image_files([tmp_path / "d", one, str(one), str(tmp_path / "missing.png")])
    names = [os.path.relpath(f, tmp_path) for f in files]
    assert names == ["d/x/0.png", "d/x/1.png", "d/x/deep/5.jpg", "one.png", "missing.png"]  # each once, in order
    assert [os.path.basename(f) for f in list_image_files([str(tmp_path / "d" / "**" / "*.jpg")])] == ["5.jpg"]
    assert len(list_image_files([str(tmp_path / "d" / "*")])) == 3  # a matched folder is walked, readme.txt skipped
    with pytest.raises(InputError, match="no file matches"):
        list_image_files([str(tmp_path / "*.gif")])
    with pytest.raises(InputError, match="no image file"):
        list_image_files([str(tmp_path / "d" / "*.txt")])
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="no image files in"):
        list_image_files([tmp_path / "empty"])


def test_predict_rows_with_an_error_get_an_error_column():
    rows = [
        {"image": "a.png", "top": [{"class": "x", "prob": 0.75}, {"class": "y", "prob": 0.25}]},
        {"image": "b.png", "error": "OSError: cannot read"},
    ]
    table = prediction_table(rows)
    assert table[0] == ["path", "prediction", "top1", "top1_prob", "top2", "top2_prob", "error"]
    assert table[1] == ["a.png", "x", "x", "0.750000", "y", "0.250000", None]
    assert table[2] == ["b.png", None, None, None, None, None, "OSError: cannot read"]


def test_predict_images_takes_a_folder_for_every_runtime(tmp_path):
    from rexnet.data import build_eval_transform
    from rexnet.data.evaluation import predict_images

    _images(tmp_path / "d" / "sub", 3)
    model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 4))  # a plain callable, as an exported runtime's
    res = predict_images(model, [tmp_path / "d"], build_eval_transform(8, crop_pct=1.0), top_k=9)
    assert [os.path.basename(r["image"]) for r in res] == ["0.png", "1.png", "2.png"]
    assert all(len(r["top"]) == 4 for r in res)  # top-9 capped at the 4 classes
