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

from ..errors import InputError

__all__ = ["is_cifar_folder", "load_cifar"]

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
    try:
        with open(path, "rb") as f:
            obj = _SafeUnpickler(io.BytesIO(f.read()), encoding="latin1").load()
    except (pickle.UnpicklingError, EOFError, OSError, ValueError) as e:
        raise InputError(f"cannot read CIFAR file {path}: {e}") from e
    if not isinstance(obj, dict):
        raise InputError(f"cannot read CIFAR file {path}: expected a dict, got {type(obj).__name__}")
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
        InputError: Not a CIFAR folder, or a file that is unreadable or has unexpected content.
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
        meta = _read(root / "batches.meta") if (root / "batches.meta").is_file() else {}
        names = meta.get("label_names") or [str(i) for i in range(10)]
    else:
        train_files, test_files, label_key = ["train"], ["test"], "fine_labels"
        names = _read(root / "meta")["fine_label_names"]

    def load(files: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        xs, ys = [], []
        for name in files:
            d = _read(root / name)
            if "data" not in d or label_key not in d:
                raise InputError(f"{root / name}: missing 'data' or '{label_key}'")
            try:
                x = np.asarray(d["data"], dtype=np.uint8)
                y = np.asarray(d[label_key], dtype=np.int64).reshape(-1)
            except (TypeError, ValueError) as e:
                raise InputError(f"{root / name}: 'data' or '{label_key}' is not numeric ({e})") from None
            if x.size % (3 * 32 * 32) or x.size // (3 * 32 * 32) != len(y):
                raise InputError(
                    f"{root / name}: 'data' holds {x.size} values, not {len(y)} images of 3x32x32 "
                    f"(one per label); not a CIFAR file"
                )
            xs.append(x.reshape(-1, 3, 32, 32))
            ys.append(y)
        return torch.from_numpy(np.concatenate(xs)), torch.from_numpy(np.concatenate(ys))

    x_tr, y_tr = load(train_files)
    x_te, y_te = load(test_files)
    return x_tr, y_tr, x_te, y_te, [n.decode() if isinstance(n, bytes) else str(n) for n in names]
