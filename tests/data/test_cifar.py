"""CIFAR folders from crafted files: sizes, types and label values are checked before use."""

from __future__ import annotations

import os
import pickle

import numpy as np
import pytest

from rexnet.data import cifar
from rexnet.data.cifar import load_cifar
from rexnet.errors import DataError, InputError, ResourceError


def _write(path, obj) -> None:
    with open(path, "wb") as f:
        pickle.dump(obj, f)


def _cifar10(root, n: int = 4, override: dict | None = None) -> None:
    """A CIFAR-10 folder of ``n`` images per batch; ``override`` replaces fields of data_batch_3."""
    rng = np.random.default_rng(0)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        d = {b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8), b"labels": [int(v) for v in np.arange(n) % 10]}
        if name == "data_batch_3":
            d.update(override or {})
        _write(root / name, d)
    _write(root / "batches.meta", {b"label_names": [f"c{i}".encode() for i in range(10)]})


def test_a_good_folder_loads(tmp_path):
    _cifar10(tmp_path)
    x, y, xt, yt, names = load_cifar(tmp_path)
    assert x.shape == (20, 3, 32, 32) and y.tolist()[:4] == [0, 1, 2, 3] and names[9] == "c9"


@pytest.mark.parametrize(
    "override, match",
    [
        ({b"labels": [0, 1, 10, 3]}, r"data_batch_3: 'labels'\[2\] = 10 is outside 0..9"),  # out of range
        ({b"labels": [0, -1, 2, 3]}, r"'labels'\[1\] = -1 is outside 0..9"),  # variant: negative
        ({b"labels": [0.0, float("nan"), 2.0, 3.0]}, r"'labels' is float64 .* expected a list of integers"),
        ({b"labels": [0.5, 1.5, 2.5, 3.5]}, r"'labels' is float64"),  # float labels were truncated to a class
        ({b"data": np.full((4, 3072), 300, np.int64)}, r"'data' is int64, expected uint8"),  # 300 wrapped to 44
        ({b"data": np.zeros((4, 100), np.uint8)}, r"not 4 images of 3x32x32"),
    ],
)
def test_crafted_batches_name_the_file_and_field(tmp_path, override, match):
    _cifar10(tmp_path, override=override)
    with pytest.raises(DataError, match=match):
        load_cifar(tmp_path)


def test_class_names_must_fit(tmp_path):
    _cifar10(tmp_path)
    _write(tmp_path / "batches.meta", {b"label_names": [b"a", b"b"]})
    with pytest.raises(DataError, match=r"batches.meta: 'label_names' holds 2 names, expected a list of 10"):
        load_cifar(tmp_path)


def test_oversized_and_special_files_are_refused_before_reading(tmp_path, monkeypatch):
    _cifar10(tmp_path)
    monkeypatch.setattr(cifar, "MAX_CIFAR_BYTES", 1000)
    with pytest.raises(ResourceError, match=r"data_batch_1 is \d[\d,]* bytes, over the limit of 1,000 bytes"):
        load_cifar(tmp_path)
    monkeypatch.undo()
    os.unlink(tmp_path / "data_batch_4")
    os.mkfifo(tmp_path / "data_batch_4")  # would block a plain open()
    with pytest.raises(InputError, match="data_batch_4 is a FIFO"):
        load_cifar(tmp_path)


def test_garbage_pickle_is_a_data_error(tmp_path):
    _cifar10(tmp_path)
    (tmp_path / "data_batch_2").write_bytes(b"\x80\x04\x95garbage")
    with pytest.raises(DataError, match="cannot read CIFAR file .*data_batch_2"):
        load_cifar(tmp_path)
