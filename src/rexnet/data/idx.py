"""MNIST-format (IDX) datasets from local files: Fashion-MNIST and MNIST. Nothing is downloaded.

A folder holds the four standard files, gzipped or not::

    train-images-idx3-ubyte[.gz]  train-labels-idx1-ubyte[.gz]
    t10k-images-idx3-ubyte[.gz]   t10k-labels-idx1-ubyte[.gz]

Accepted layouts: the files in ``DIR`` itself, in ``DIR/raw`` or in torchvision's
``DIR/FashionMNIST/raw`` / ``DIR/MNIST/raw``. ``fashion-mnist`` without a folder is looked up in
``$REXNET_DATA/fashion-mnist`` and where the Debian package ``dataset-fashion-mnist`` installs it
(``/usr/share/datasets/fashion-mnist``).

Images are returned as uint8 ``(N, 28, 28)`` tensors, labels as int64; the files are read once.
"""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import numpy as np
import torch

from .._env import env_str
from ..errors import InputError

__all__ = ["IDX_DATASETS", "IdxData", "find_idx_folder", "load_idx_dataset", "read_idx"]

FASHION_CLASSES = [
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
]
#: name -> (class names, torchvision folder name, default search places)
IDX_DATASETS: dict[str, tuple[list[str], str, tuple[str, ...]]] = {
    "fashion-mnist": (FASHION_CLASSES, "FashionMNIST", ("/usr/share/datasets/fashion-mnist",)),
    "mnist": ([str(i) for i in range(10)], "MNIST", ("/usr/share/datasets/mnist",)),
}
_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
# IDX type codes (the third magic byte) -> numpy big-endian dtype
_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


class IdxData:
    """The four arrays of an IDX dataset plus its class names and where they came from."""

    def __init__(
        self,
        train_images: torch.Tensor,
        train_labels: torch.Tensor,
        test_images: torch.Tensor,
        test_labels: torch.Tensor,
        classes: list[str],
        folder: Path,
    ) -> None:
        self.train_images, self.train_labels = train_images, train_labels
        self.test_images, self.test_labels = test_images, test_labels
        self.classes, self.folder = classes, folder


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read one IDX file (``.gz`` or plain) into a numpy array of its stored shape.

    Raises:
        InputError: Unreadable file, bad magic number, or a size that does not match the header.
    """
    path = Path(path)
    try:
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rb") as f:
            data = f.read()
    except (OSError, EOFError, gzip.BadGzipFile) as e:
        raise InputError(f"cannot read IDX file {path}: {e}") from e
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in _DTYPES:
        raise InputError(f"{path} is not an IDX file (bad magic number {data[:4].hex() or 'empty'})")
    ndim = data[3]
    header = 4 + 4 * ndim
    if ndim == 0 or len(data) < header:
        raise InputError(f"{path}: truncated IDX header")
    shape = tuple(int.from_bytes(data[4 + 4 * k : 8 + 4 * k], "big") for k in range(ndim))
    dtype = np.dtype(_DTYPES[data[2]])
    expected = int(np.prod(shape)) * dtype.itemsize
    if len(data) - header != expected:
        raise InputError(
            f"{path}: header says {shape} ({expected} bytes) but the file holds {len(data) - header} bytes of data"
        )
    return np.frombuffer(data, dtype=dtype, offset=header).reshape(shape)


def _file_in(folder: Path, stem: str) -> Path | None:
    for name in (stem, stem + ".gz"):
        if (folder / name).is_file():
            return folder / name
    return None


def _has_all(folder: Path) -> bool:
    return all(_file_in(folder, stem) is not None for stem in _FILES.values())


def find_idx_folder(name: str, folder: str | os.PathLike | None = None) -> Path:
    """The folder holding the four IDX files of dataset ``name`` (``fashion-mnist`` or ``mnist``).

    Args:
        name: A key of :data:`IDX_DATASETS`.
        folder: Where to look (also its ``raw/`` and torchvision's ``<Name>/raw/``); ``None``
            searches ``$REXNET_DATA/<name>`` and the Debian package's place.

    Raises:
        InputError: Unknown name, or no folder with all four files (the message says how to get them).
    """
    if name not in IDX_DATASETS:
        raise InputError(f"unknown IDX dataset {name!r}; expected one of: {', '.join(IDX_DATASETS)}")
    _, tv_name, defaults = IDX_DATASETS[name]
    if folder is not None:
        roots = [Path(folder)]
    else:
        env = env_str("REXNET_DATA")
        roots = ([Path(env) / name] if env else []) + [Path(d) for d in defaults]
    tried = []
    for root in roots:
        for cand in (root, root / "raw", root / tv_name / "raw"):
            tried.append(str(cand))
            if cand.is_dir() and _has_all(cand):
                return cand
    files = ", ".join(f"{s}[.gz]" for s in _FILES.values())
    how = (
        "install the Debian package (apt-get install dataset-fashion-mnist) or pass --data fashion-mnist:DIR"
        if name == "fashion-mnist"
        else f"pass --data {name}:DIR"
    )
    raise InputError(
        f"{name} not found (looked in {', '.join(tried)}); it needs the four IDX files "
        f"({files}): {how}, where DIR holds those files (torchvision's {tv_name}/raw layout works)"
    )


def load_idx_dataset(name: str, folder: str | os.PathLike | None = None) -> IdxData:
    """Load the official train and test splits of ``name`` from ``folder`` (see :func:`find_idx_folder`).

    Raises:
        InputError: Missing or malformed files, or images and labels that do not match.
    """
    root = find_idx_folder(name, folder)
    arrays = {}
    for key, stem in _FILES.items():
        path = _file_in(root, stem)
        assert path is not None  # find_idx_folder checked
        arrays[key] = read_idx(path)
    classes = IDX_DATASETS[name][0]
    out = {}
    for split in ("train", "test"):
        x, y = arrays[f"{split}_images"], arrays[f"{split}_labels"]
        if x.ndim != 3 or y.ndim != 1 or len(x) != len(y):
            raise InputError(f"{root}: {split} images {x.shape} and labels {y.shape} do not match")
        if x.dtype != np.uint8:
            raise InputError(f"{root}: {split} images are {x.dtype}, expected uint8")
        if len(y) and (y.min() < 0 or y.max() >= len(classes)):
            raise InputError(f"{root}: {split} labels outside 0..{len(classes) - 1}")
        out[split] = (torch.from_numpy(x.copy()), torch.from_numpy(y.astype(np.int64)))
    return IdxData(*out["train"], *out["test"], classes=classes, folder=root)
