"""Data tests: a small generated IDX dataset in the Fashion-MNIST file layout."""

from __future__ import annotations

import gzip

import numpy as np
import pytest

REAL_FASHION = "/usr/share/datasets/fashion-mnist"


def write_idx(path, array: np.ndarray, compress: bool = False) -> None:
    """Write ``array`` (uint8) as an IDX file (magic 0x0000 08 ndim, big-endian sizes)."""
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    data = header + array.astype(np.uint8).tobytes()
    if compress:
        path = path.with_name(path.name + ".gz")
        data = gzip.compress(data)
    path.write_bytes(data)


def make_idx_folder(root, n_train: int = 120, n_test: int = 30, compress: bool = False):
    """A Fashion-MNIST-layout folder: class c's images are bright in row band c (learnable, checkable)."""
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for split, n in (("train", n_train), ("t10k", n_test)):
        labels = np.arange(n) % 10
        images = rng.integers(0, 60, (n, 28, 28)).astype(np.uint8)
        for i, c in enumerate(labels):
            images[i, 2 * c + 4 : 2 * c + 7] = 250
        write_idx(root / f"{split}-images-idx3-ubyte", images, compress)
        write_idx(root / f"{split}-labels-idx1-ubyte", labels.astype(np.uint8), compress)
    return root


@pytest.fixture
def idx_folder(tmp_path):
    return make_idx_folder(tmp_path / "fmnist", compress=True)
