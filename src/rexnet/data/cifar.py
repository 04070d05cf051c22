"""CIFAR-10/100 from a local folder in the standard python-pickle format (nothing is downloaded).

The pickles are read with a restricted unpickler that only rebuilds plain containers and numpy
arrays, so a tampered file cannot execute code.
"""

from __future__ import annotations

import io
import os
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .._files import check_regular_file
from ..errors import DataError, InputError, ResourceError

__all__ = ["MAX_CIFAR_BYTES", "is_cifar_folder", "load_cifar"]

#: The largest CIFAR pickle read (CIFAR-100's train file is 155 MB); checked on the file size before reading.
MAX_CIFAR_BYTES = 512 * 2**20
_CIFAR10_TRAIN = [f"data_batch_{i}" for i in range(1, 6)]
_ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
    ("_codecs", "encode"),
}


class _SafeUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refused global {module}.{name} in a CIFAR file")


def _read(path: Path) -> dict[str, Any]:
    check_regular_file(path, "CIFAR file")
    size = path.stat().st_size
    if size > MAX_CIFAR_BYTES:  # checked before reading: the unpickled arrays take about the file's size
        raise ResourceError(f"CIFAR file {path} is {size:,} bytes, over the limit of {MAX_CIFAR_BYTES:,} bytes")
    try:
        with open(path, "rb") as f:
            obj = _SafeUnpickler(io.BytesIO(f.read()), encoding="latin1").load()
    except (pickle.UnpicklingError, EOFError, OSError, ValueError, TypeError, IndexError, RecursionError) as e:
        raise DataError(f"cannot read CIFAR file {path}: {type(e).__name__}: {e}") from e
    if not isinstance(obj, dict):
        raise DataError(f"cannot read CIFAR file {path}: expected a dict, got {type(obj).__name__}")
    return {k.decode() if isinstance(k, bytes) else k: v for k, v in obj.items()}


def _root(folder: str | os.PathLike) -> Path:
    root = Path(folder)
    for sub in ("cifar-10-batches-py", "cifar-100-python"):
        if (root / sub).is_dir():
            return root / sub
    return root


def is_cifar_folder(folder: str | os.PathLike) -> str | None:
    """``"cifar10"``, ``"cifar100"`` or ``None`` for a folder (or its standard sub-folder)."""
    root = _root(folder)
    if (root / "data_batch_1").is_file() and (root / "test_batch").is_file():
        return "cifar10"
    if (root / "train").is_file() and (root / "test").is_file() and (root / "meta").is_file():
        return "cifar100"
    return None


def load_cifar(folder: str | os.PathLike) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, list[str]]:
    """Read a CIFAR folder.

    Returns:
        ``(train_images, train_labels, test_images, test_labels, class_names)``; images are uint8
        ``(N, 3, 32, 32)``.

    Raises:
        InputError: Not a CIFAR folder, or a special file in it.
        ResourceError: A file over :data:`MAX_CIFAR_BYTES`.
        DataError: A file that is unreadable or has unexpected content (types, sizes, labels out of range).
    """
    root = _root(folder)
    kind = is_cifar_folder(root)
    if kind is None:
        raise InputError(
            f"{folder} is not a CIFAR-10/100 python folder (expected data_batch_1..5 + test_batch, "
            "or train + test + meta)"
        )
    if kind == "cifar10":
        train_files, test_files, label_key = _CIFAR10_TRAIN, ["test_batch"], "labels"
        meta_file = root / "batches.meta"
        meta = _read(meta_file) if meta_file.is_file() else {}
        names = _names(meta, "label_names", meta_file, 10) if meta else [str(i) for i in range(10)]
    else:
        train_files, test_files, label_key = ["train"], ["test"], "fine_labels"
        names = _names(_read(root / "meta"), "fine_label_names", root / "meta", 100)
    x_tr, y_tr = _load_batches(root, train_files, label_key, len(names))
    x_te, y_te = _load_batches(root, test_files, label_key, len(names))
    return x_tr, y_tr, x_te, y_te, names


def _names(meta: dict[str, Any], key: str, path: Path, expected: int) -> list[str]:
    names = meta.get(key)
    if not isinstance(names, list) or len(names) != expected:
        shown = f"{len(names)} names" if isinstance(names, list) else type(names).__name__
        raise DataError(f"{path}: '{key}' holds {shown}, expected a list of {expected} class names")
    return [n.decode("latin1") if isinstance(n, bytes) else str(n) for n in names]


def _load_batches(root: Path, files: list[str], label_key: str, num_classes: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Images ``(N, 3, 32, 32)`` uint8 and int64 labels of ``files``, each checked (types, sizes, label range)."""
    xs, ys = [], []
    for name in files:
        path = root / name
        d = _read(path)
        if "data" not in d or label_key not in d:
            raise DataError(f"{path}: missing 'data' or '{label_key}'")
        x, y = np.asarray(d["data"]), np.asarray(d[label_key])
        if x.dtype != np.uint8:  # a cast would wrap 300 to 44 and truncate floats without a word
            raise DataError(f"{path}: 'data' is {x.dtype}, expected uint8 pixel values")
        if y.dtype.kind not in "iu" or y.ndim != 1:
            raise DataError(f"{path}: '{label_key}' is {y.dtype} of shape {y.shape}, expected a list of integers")
        if x.size % (3 * 32 * 32) or x.size // (3 * 32 * 32) != len(y):
            raise DataError(
                f"{path}: 'data' holds {x.size} values, not {len(y)} images of 3x32x32 (one per label); "
                "not a CIFAR file"
            )
        bad = (y < 0) | (y >= num_classes)
        if bad.any():
            i = int(np.argmax(bad))
            raise DataError(f"{path}: '{label_key}'[{i}] = {int(y[i])} is outside 0..{num_classes - 1}")
        xs.append(x.reshape(-1, 3, 32, 32))
        ys.append(y.astype(np.int64))
    return torch.from_numpy(np.concatenate(xs)), torch.from_numpy(np.concatenate(ys))
