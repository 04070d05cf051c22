"""Fashion-MNIST / MNIST from IDX files: formats, layouts, splits and the errors a user meets."""

from __future__ import annotations

import gzip
import logging
import os
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
import torch

from rexnet.data import build_datasets
from rexnet.data.idx import find_idx_folder, load_idx_dataset, read_idx
from rexnet.errors import DataError, InputError, ResourceError, RexnetError

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


def _header(code: int, shape: tuple[int, ...]) -> bytes:
    return bytes([0, 0, code, len(shape)]) + b"".join(int(d).to_bytes(4, "big") for d in shape)


def test_huge_header_is_refused_before_reading(tmp_path):
    """The probe's example family: the size a header implies is checked before any data is read."""
    (tmp_path / "big.gz").write_bytes(gzip.compress(_header(0x08, (60000, 50000, 3000)) + b"\0" * 1000))
    with pytest.raises(ResourceError, match=r"declares shape \(60000, 50000, 3000\) = 9,000,000,000,000 bytes"):
        read_idx(tmp_path / "big.gz")
    # variant: four sizes of 65536 make 2**64 bytes, which wrapped to 0 in numpy's int64 product
    (tmp_path / "wrap").write_bytes(_header(0x08, (65536, 65536, 65536, 65536)))
    with pytest.raises(ResourceError, match="18,446,744,073,709,551,616 bytes"):
        read_idx(tmp_path / "wrap")
    # variant: an explicit empty dimension
    (tmp_path / "empty").write_bytes(_header(0x08, (0, 28, 28)))
    with pytest.raises(DataError, match=r"empty shape \(0, 28, 28\)"):
        read_idx(tmp_path / "empty")


def test_gzip_bomb_is_streamed_with_a_cap(tmp_path):
    """A small header with a payload that expands far beyond it: refused after reading one byte past the size."""
    with gzip.open(tmp_path / "bomb.gz", "wb", compresslevel=9) as f:  # 256 MB of zeros in about 250 KB
        f.write(_header(0x08, (10, 28, 28)))
        zeros = b"\0" * 2**20
        for _ in range(256):
            f.write(zeros)
    assert (tmp_path / "bomb.gz").stat().st_size < 2**20
    tracemalloc.start()
    try:
        with pytest.raises(DataError, match=r"header says \(10, 28, 28\) \(7,840 bytes\) but the file holds more"):
            read_idx(tmp_path / "bomb.gz")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 4 * 2**20  # never the 256 MB the payload expands to
    # variant: a cap given by the caller refuses a normal file by its header
    write_idx(tmp_path / "ok", np.zeros((3, 4, 4), np.uint8))
    with pytest.raises(ResourceError, match="over the limit of 47 bytes"):
        read_idx(tmp_path / "ok", max_bytes=47)
    assert read_idx(tmp_path / "ok", max_bytes=48).shape == (3, 4, 4)


def _labels_file(root, code: int, values: np.ndarray) -> None:
    dtype = {0x08: np.uint8, 0x0D: ">f4", 0x0C: ">i4"}[code]
    (root / "train-labels-idx1-ubyte").write_bytes(_header(code, values.shape) + values.astype(dtype).tobytes())


@pytest.mark.parametrize(
    "code, values, match",
    [
        (0x0D, np.array([np.nan] + [1.0] * 119), r"labels are >f4, expected integers"),  # NaN labels
        (0x0D, np.arange(120) % 10 + 0.5, r"labels are >f4, expected integers"),  # float labels
        (0x08, np.array([3] * 60 + [12] + [1] * 59), r"label 12 at index 60 is outside 0..9"),
        (0x0C, np.array([-1] + [1] * 119), r"label -1 at index 0 is outside 0..9"),  # variant: signed, negative
    ],
)
def test_crafted_labels_are_refused(tmp_path, code, values, match):
    root = make_idx_folder(tmp_path / "f")
    _labels_file(root, code, values)
    with pytest.raises(DataError, match=match) as e:
        load_idx_dataset("fashion-mnist", root)
    assert "train-labels-idx1-ubyte" in str(e.value)  # names the file


def test_one_class_idx_set_warns(tmp_path, caplog):
    """Like the folder path: a set whose labels are all one class trains to "100 %" and is reported."""
    root = make_idx_folder(tmp_path / "f")
    _labels_file(root, 0x08, np.full(120, 4))
    with caplog.at_level(logging.WARNING, logger="rexnet.data.idx"):
        d = load_idx_dataset("fashion-mnist", root)
    assert d.train_labels.unique().tolist() == [4]
    assert any("every label is class 4" in r.getMessage() for r in caplog.records)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="rexnet.data.idx"):
        load_idx_dataset("fashion-mnist", make_idx_folder(tmp_path / "g"))
    assert not any("every label" in r.getMessage() for r in caplog.records)


def test_idx_fifo_is_refused(tmp_path):
    os.mkfifo(tmp_path / "fifo")
    with pytest.raises(InputError, match="FIFO"):
        read_idx(tmp_path / "fifo")
