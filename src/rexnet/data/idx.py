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
import logging
import math
import os
import zlib
from pathlib import Path
from typing import BinaryIO

import numpy as np
import torch

from .._env import env_str
from .._files import check_regular_file
from .._memory import available_memory
from ..errors import DataError, InputError, ResourceError

log = logging.getLogger(__name__)

__all__ = ["MAX_IDX_BYTES", "IDX_DATASETS", "IdxData", "find_idx_folder", "load_idx_dataset", "read_idx"]

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
#: The most data bytes one IDX file may declare (EMNIST's largest split is about 0.6 GB).
MAX_IDX_BYTES = 4 * 2**30
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


def read_idx(path: str | os.PathLike, *, max_bytes: int | None = None) -> np.ndarray:
    """Read one IDX file (``.gz`` or plain) into a numpy array of its stored shape.

    The header is read first and the size it implies checked before any data is read or
    decompressed; the data is then streamed with that size as a cap, so a small gzip that expands to
    gigabytes is refused after reading one byte past the declared size.

    Args:
        path: The file.
        max_bytes: Refuse a header implying more data bytes (default :data:`MAX_IDX_BYTES`, lowered to
            80 % of the memory available).

    Raises:
        InputError: A missing file, a folder or a special file (FIFO, device).
        ResourceError: The header implies more bytes than ``max_bytes``.
        DataError: Unreadable file, bad magic number, an empty shape, or data that does not match the header.
    """
    path = check_regular_file(path, "IDX file")
    limit = _idx_limit(max_bytes)
    try:
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rb") as f:
            dtype, shape, nbytes = _read_header(f, path)
            if nbytes > limit:
                raise ResourceError(
                    f"{path}: the IDX header declares shape {shape} = {nbytes:,} bytes of data, over the limit of "
                    f"{limit:,} bytes; refusing to read (or decompress) it"
                )
            data = f.read(nbytes + 1)  # one byte more than declared: enough to tell the file holds too much
    except (OSError, EOFError, gzip.BadGzipFile, zlib.error) as e:
        raise DataError(f"cannot read IDX file {path}: {e}") from e
    if len(data) != nbytes:
        held = f"{len(data):,} bytes" if len(data) <= nbytes else "more"
        raise DataError(f"{path}: header says {shape} ({nbytes:,} bytes) but the file holds {held} of data")
    return np.frombuffer(data, dtype=dtype).reshape(shape)


def _idx_limit(max_bytes: int | None) -> int:
    if max_bytes is not None:
        return int(max_bytes)
    return int(min(MAX_IDX_BYTES, 0.8 * available_memory()))


def _read_header(f: BinaryIO, path: Path) -> tuple[np.dtype, tuple[int, ...], int]:
    """``(dtype, shape, data bytes)`` from an IDX header; sizes in Python integers (no wrap-around)."""
    magic = f.read(4)
    if len(magic) < 4 or magic[0] != 0 or magic[1] != 0 or magic[2] not in _DTYPES:
        raise DataError(f"{path} is not an IDX file (bad magic number {magic.hex() or 'empty'})")
    ndim = magic[3]
    dims = f.read(4 * ndim)
    if ndim == 0 or len(dims) < 4 * ndim:
        raise DataError(f"{path}: truncated IDX header ({ndim} dimensions, {len(dims)} of {4 * ndim} size bytes)")
    shape = tuple(int.from_bytes(dims[4 * k : 4 + 4 * k], "big") for k in range(ndim))
    dtype = np.dtype(_DTYPES[magic[2]])
    if 0 in shape:
        raise DataError(f"{path}: the IDX header declares an empty shape {shape}")
    return dtype, shape, math.prod(shape) * dtype.itemsize


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
        images_file, labels_file = _file_in(root, _FILES[f"{split}_images"]), _file_in(root, _FILES[f"{split}_labels"])
        out[split] = _checked_split(x, y, len(classes), images_file, labels_file)
    return IdxData(*out["train"], *out["test"], classes=classes, folder=root)


def _checked_split(
    x: np.ndarray, y: np.ndarray, num_classes: int, images: Path | None, labels: Path | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Images and labels of one split as tensors, after checking shapes, types and label values."""
    if x.ndim != 3:
        raise DataError(f"{images}: images have shape {x.shape}, expected (N, rows, columns)")
    if y.ndim != 1 or len(x) != len(y):
        raise DataError(f"{images} and {labels}: images {x.shape} and labels {y.shape} do not match")
    if x.dtype != np.uint8:
        raise DataError(f"{images}: images are {x.dtype}, expected uint8")
    if y.dtype.kind not in "iu":  # float labels (NaN, 2.5) would be truncated to some class without a word
        raise DataError(f"{labels}: labels are {y.dtype}, expected integers (IDX type 0x08 unsigned bytes)")
    bad = (y < 0) | (y >= num_classes)
    if bad.any():
        i = int(np.argmax(bad))
        raise DataError(f"{labels}: label {int(y[i])} at index {i} is outside 0..{num_classes - 1}")
    present = np.unique(y)
    if len(present) == 1:
        log.warning(
            "%s: every label is class %d: a classifier learns nothing from one class (a wrong labels file?)",
            labels,
            int(present[0]),
        )
    return torch.from_numpy(x.copy()), torch.from_numpy(y.astype(np.int64))
