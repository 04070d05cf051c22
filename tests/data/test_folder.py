"""Image folders: symlink loops, duplicate files, empty/one/val-only classes, 16-bit PNGs, all-unreadable (issue 12)."""

from __future__ import annotations

import contextlib
import logging
import os
import signal

import numpy as np
import pytest
from PIL import Image

import rexnet
from rexnet.data import SafeImageFolder, build_datasets
from rexnet.data.folder import _load_rgb, find_class_folders
from rexnet.errors import RexnetError
from rexnet.train import TrainConfig, fit


def _images(d, n, start=0):
    d.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(start)
    for i in range(start, start + n):
        Image.fromarray(rng.integers(0, 255, (8, 8, 3), dtype=np.uint8)).save(d / f"{i}.png")


@contextlib.contextmanager
def _deadline(seconds: int):
    """Fail instead of hanging (the old walk never returned on a symlink loop)."""

    def boom(*_):
        raise TimeoutError(f"took more than {seconds} s")

    old = signal.signal(signal.SIGALRM, boom)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def test_self_loop_counts_each_image_once(tmp_path):
    _images(tmp_path / "a", 3)
    _images(tmp_path / "b", 2)
    os.symlink(".", tmp_path / "a" / "self")
    with _deadline(20):
        ds = SafeImageFolder(tmp_path)
    assert len(ds) == 5
    assert len({os.path.realpath(p) for p, _ in ds.samples}) == 5


def test_mutual_symlink_loops_do_not_hang(tmp_path):
    _images(tmp_path / "a" / "x", 5)
    _images(tmp_path / "b" / "y", 5, start=10)
    os.symlink("../y", tmp_path / "b" / "y" / "loop")  # y -> y
    (tmp_path / "a" / "x" / "p").mkdir()
    os.symlink("../../x", tmp_path / "a" / "x" / "p" / "q")  # x/p/q -> x
    os.symlink("../../b", tmp_path / "a" / "x" / "tob")  # into another class: not walked twice
    os.symlink("../../a", tmp_path / "b" / "y" / "toa")
    with _deadline(20):
        ds = SafeImageFolder(tmp_path)
        split = build_datasets(str(tmp_path), 8, model="rexnet_060")
    assert sorted(t for _, t in ds.samples) == [0] * 5 + [1] * 5
    train_files = {os.path.realpath(split.train.dataset.samples[i][0]) for i in split.train.indices}
    val_files = {os.path.realpath(split.val.dataset.samples[i][0]) for i in split.val.indices}
    assert not train_files & val_files


def test_empty_and_single_class_folders(tmp_path, caplog):
    _images(tmp_path / "cat", 3)
    (tmp_path / "empty").mkdir()
    with caplog.at_level(logging.WARNING, logger="rexnet.data.folder"):
        assert find_class_folders(tmp_path) == ["cat"]
    assert "empty class folder(s) (no images): empty" in caplog.text
    assert "single class (cat)" in caplog.text
    (tmp_path / "empty" / "x").mkdir()
    (tmp_path / "empty" / "y").mkdir()
    with pytest.raises(RexnetError, match=r"no images .* in any class sub-folder \(x, y\)"):
        find_class_folders(tmp_path / "empty")


def test_class_only_in_val_is_reported(tmp_path, caplog):
    for c in ("a", "b"):
        _images(tmp_path / "train" / c, 2)
        _images(tmp_path / "val" / c, 1)
    _images(tmp_path / "val" / "zebra", 1)
    with caplog.at_level(logging.WARNING, logger="rexnet.data.folder"):
        b = build_datasets(str(tmp_path), 8, model="rexnet_060")
    assert b.class_names == ["a", "b"] and len(b.val) == 2
    assert "zebra are not among the 2 training classes" in caplog.text


def test_16bit_png_is_scaled_not_clipped(tmp_path):
    a = np.full((4, 4), 32768, dtype=np.uint16)  # half of the 16-bit range
    a[0, 0] = 0
    Image.fromarray(a).save(tmp_path / "x.png")
    assert Image.open(tmp_path / "x.png").mode.startswith("I")  # PIL reads 16-bit PNGs as I;16 or I
    rgb = np.asarray(_load_rgb(str(tmp_path / "x.png")))
    assert rgb.shape == (4, 4, 3)
    assert rgb[1, 1, 0] == 128 and rgb[0, 0, 0] == 0  # was 255 (clipped white)


def test_all_unreadable_folder_is_a_clear_error(tmp_path):
    for c in ("a", "b"):
        (tmp_path / c).mkdir()
        for i in range(5):
            (tmp_path / c / f"{i}.jpg").write_bytes(b"junk")
    b = build_datasets(str(tmp_path), 16, model="rexnet_060")
    cfg = TrainConfig(model="rexnet_060", epochs=1, batch_size=4, threads=1, progress=False, tensorboard=False)
    with pytest.raises(RexnetError, match=r"no readable training image in epoch 1: \d+ image\(s\) skipped"):
        fit(rexnet.create_model("rexnet_060", num_classes=2), b.train, b.val, cfg, class_names=b.class_names)
