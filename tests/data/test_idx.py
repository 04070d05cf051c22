"""Fashion-MNIST / MNIST from IDX files: formats, layouts, splits and the errors a user meets."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

from rexnet.data import build_datasets
from rexnet.data.idx import find_idx_folder, load_idx_dataset, read_idx
from rexnet.errors import RexnetError

from .conftest import REAL_FASHION, make_idx_folder, write_idx


def test_read_idx_roundtrip_plain_and_gzip(tmp_path):
    a = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    write_idx(tmp_path / "a", a)
    write_idx(tmp_path / "b", a, compress=True)
    assert np.array_equal(read_idx(tmp_path / "a"), a)
    assert np.array_equal(read_idx(tmp_path / "b.gz"), a)


@pytest.mark.parametrize(
    "content, match",
    [
        (b"", "bad magic number empty"),
        (b"\x00\x00\x07\x01", "bad magic"),  # unknown type code
        (b"\x00\x00\x08\x03\x00\x00", "truncated IDX header"),
        (bytes([0, 0, 8, 1]) + (5).to_bytes(4, "big") + b"abc", "holds 3 bytes"),
    ],
)
def test_read_idx_rejects_malformed_files(tmp_path, content, match):
    (tmp_path / "bad").write_bytes(content)
    with pytest.raises(RexnetError, match=match):
        read_idx(tmp_path / "bad")


def test_bad_gzip_is_a_clear_error(tmp_path):
    (tmp_path / "x.gz").write_bytes(b"not gzip at all")
    with pytest.raises(RexnetError, match="cannot read IDX file"):
        read_idx(tmp_path / "x.gz")


@pytest.mark.parametrize("layout", [".", "raw", "FashionMNIST/raw"])
def test_folder_layouts_are_found(tmp_path, layout):
    make_idx_folder(tmp_path / "root" / layout)
    assert find_idx_folder("fashion-mnist", tmp_path / "root") == tmp_path / "root" / layout


def test_fashion_mnist_folder_splits(idx_folder):
    b = build_datasets(f"fashion-mnist:{idx_folder}", 32)
    # 120 train images = 12 per class; 1/12 of each class held out for validation; the test split apart
    assert (len(b.train), len(b.val), len(b.test)) == (110, 10, 30)
    assert b.class_names[0] == "T-shirt/top" and b.num_classes == 10
    assert sorted(b.val.labels.tolist()) == list(range(10))  # stratified: one per class
    x, y = b.train[0]
    assert x.shape == (3, 32, 32) and not torch.equal(x[0], x[1])  # replicated, then normalized per channel
    assert b.train.images.shape[1:] == (1, 28, 28)  # stored once as grayscale, replicated on read
    # evaluation shows the whole 28 px frame resized to 32 (no centre crop): the bright band of class c
    xv, yv = b.test[3]
    rows = xv[0].mean(1)
    assert rows.argmax().item() in range((2 * yv + 4) * 32 // 28 - 1, (2 * yv + 7) * 32 // 28 + 1)


def test_mnist_prefix_and_env_lookup(tmp_path, monkeypatch):
    make_idx_folder(tmp_path / "data" / "fashion-mnist")
    b = build_datasets(f"mnist:{tmp_path / 'data' / 'fashion-mnist'}", 28)
    assert b.class_names == [str(i) for i in range(10)]
    monkeypatch.setenv("REXNET_DATA", str(tmp_path / "data"))
    assert load_idx_dataset("fashion-mnist").folder == tmp_path / "data" / "fashion-mnist"


def test_missing_data_names_both_ways_to_get_it(tmp_path, monkeypatch):
    monkeypatch.delenv("REXNET_DATA", raising=False)
    with pytest.raises(RexnetError, match=r"apt-get install dataset-fashion-mnist.*fashion-mnist:DIR"):
        find_idx_folder("fashion-mnist", tmp_path / "nowhere")


def test_mismatched_images_and_labels(tmp_path):
    root = make_idx_folder(tmp_path / "f")
    write_idx(root / "t10k-labels-idx1-ubyte", np.zeros(7, dtype=np.uint8))
    with pytest.raises(RexnetError, match="do not match"):
        load_idx_dataset("fashion-mnist", root)


@pytest.mark.skipif(not Path(REAL_FASHION).is_dir(), reason="dataset-fashion-mnist is not installed")
def test_real_fashion_mnist():
    b = build_datasets("fashion-mnist", 32, train_limit=1000)
    assert (len(b.train), len(b.val), len(b.test)) == (1000, 5000, 10000)
    assert torch.bincount(b.val.labels).tolist() == [500] * 10
    assert b.name == f"fashion-mnist:{REAL_FASHION}"
    assert os.path.basename(str(load_idx_dataset("fashion-mnist").folder)) == "fashion-mnist"
