"""The ``.json`` sidecar next to an exported model: what a runtime needs to run it without PyTorch weights.

:func:`~rexnet.deploy.export_model` writes it (model name and plan, classes, input size,
normalisation, format, precision and the data the model was trained on); :mod:`rexnet.deploy.runtime`
reads it. A sidecar is user input like any file: :func:`read_sidecar` validates every field and
names the file and the field of anything wrong, and unknown keys are refused (a typo would
otherwise be ignored silently).

Example:
    >>> check_sidecar({"image_size": "abc"}, "m.json")
    Traceback (most recent call last):
    ...
    rexnet.errors.ExportError: m.json: field 'image_size' must be an integer in [8, 4096], got 'abc'
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .._files import check_regular_file, write_json
from ..errors import ExportError, RexnetError

__all__ = ["SIDECAR_FIELDS", "MAX_SIDECAR_BYTES", "sidecar_path", "read_sidecar", "write_sidecar", "check_sidecar"]

#: A sidecar is a few KB (1000 class names: ~30 KB); anything far larger is not one.
MAX_SIDECAR_BYTES = 16 * 2**20
#: Input sizes a sidecar may name.
MIN_SIZE, MAX_SIZE = 8, 4096
_INTERPOLATIONS = ("nearest", "nearest-exact", "bilinear", "bicubic", "box", "hamming", "lanczos")


def sidecar_path(path: str | os.PathLike) -> Path:
    """The sidecar of an exported file: the same path with suffix ``.json``."""
    return Path(path).with_suffix(".json")


def _fail(where: str, key: str, want: str, value: Any) -> ExportError:
    shown = repr(value) if len(repr(value)) <= 80 else repr(value)[:77] + "..."
    return ExportError(f"{where}: field {key!r} must be {want}, got {shown}")


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _text(where: str, key: str, v: Any) -> None:
    if v is not None and not isinstance(v, str):
        raise _fail(where, key, "a string or null", v)


def _image_size(where: str, key: str, v: Any) -> None:
    if not (_is_int(v) and MIN_SIZE <= v <= MAX_SIZE):
        raise _fail(where, key, f"an integer in [{MIN_SIZE}, {MAX_SIZE}]", v)


def _num_classes(where: str, key: str, v: Any) -> None:
    if v is not None and not (_is_int(v) and 1 <= v <= 10**6):
        raise _fail(where, key, "an integer >= 1 or null", v)


def _class_names(where: str, key: str, v: Any) -> None:
    if v is not None and not (isinstance(v, (list, tuple)) and all(isinstance(n, (str, int)) for n in v)):
        raise _fail(where, key, "a list of names or null", v)


def _stats(where: str, key: str, v: Any) -> None:
    ok = isinstance(v, (list, tuple)) and 1 <= len(v) <= 4 and all(_is_num(x) for x in v)
    if not ok or (key == "std" and min(v) <= 0):
        raise _fail(where, key, "a list of 1-4 finite numbers" + (", each > 0" if key == "std" else ""), v)


def _crop_pct(where: str, key: str, v: Any) -> None:
    if not (_is_num(v) and 0 < v <= 1):
        raise _fail(where, key, "a number in (0, 1]", v)


def _interpolation(where: str, key: str, v: Any) -> None:
    if v not in _INTERPOLATIONS:
        raise _fail(where, key, "one of " + ", ".join(_INTERPOLATIONS), v)


def _plan(where: str, key: str, v: Any) -> None:
    if v is None:
        return
    if not isinstance(v, dict):
        raise _fail(where, key, "an object (a channel plan) or null", v)
    from ..plan import plan_from_dict

    try:
        plan_from_dict(v)
    except (RexnetError, TypeError, ValueError, KeyError, AttributeError) as e:
        detail = str(e).strip("'\"") or type(e).__name__
        raise ExportError(f"{where}: field 'plan' is not a valid channel plan: {detail}") from None


#: Every key a sidecar may hold and its check; ``write_sidecar`` and ``read_sidecar`` apply them.
SIDECAR_FIELDS: dict[str, Callable[[str, str, Any], None]] = {
    "model": _text,
    "plan": _plan,
    "num_classes": _num_classes,
    "class_names": _class_names,
    "image_size": _image_size,
    "mean": _stats,
    "std": _stats,
    "crop_pct": _crop_pct,
    "interpolation": _interpolation,
    "checkpoint": _text,
    "format": _text,
    "precision": _text,
    "calib_data": _text,
    "data": _text,
}


def check_sidecar(meta: Any, where: str) -> dict[str, Any]:
    """``meta`` if it is a valid sidecar object; else :class:`ExportError` naming ``where`` and the field.

    Raises:
        ExportError: Not an object, an unknown key, a field of the wrong type or range, or class
            names whose count differs from ``num_classes``.
    """
    if not isinstance(meta, dict):
        raise ExportError(f"{where}: export metadata must be a JSON object, got {type(meta).__name__}")
    unknown = sorted(set(meta) - set(SIDECAR_FIELDS))
    if unknown:
        raise ExportError(
            f"{where}: unknown field(s) {', '.join(map(repr, unknown))}; known: {', '.join(SIDECAR_FIELDS)}"
        )
    for key, value in meta.items():
        SIDECAR_FIELDS[key](where, key, value)
    names, n = meta.get("class_names"), meta.get("num_classes")
    if names is not None and n is not None and len(names) != n:
        raise ExportError(f"{where}: field 'class_names' has {len(names)} names for num_classes {n}")
    stem = meta["plan"].get("stem") if isinstance(meta.get("plan"), dict) else None
    chans = stem.get("in_channels", 3) if isinstance(stem, dict) else 3
    for key in ("mean", "std"):  # one value for every channel, or one for all
        if key in meta and len(meta[key]) not in (1, chans):
            raise ExportError(f"{where}: field {key!r} has {len(meta[key])} values for {chans} input channels")
    return meta


def read_sidecar(path: str | os.PathLike) -> dict[str, Any]:
    """The validated sidecar of the exported file ``path`` (``{}`` when there is none).

    Raises:
        ExportError: The sidecar is not JSON, too large, or fails :func:`check_sidecar`.
        InputError: The sidecar is a folder or a special file.
    """
    side = sidecar_path(path)
    if not side.exists():
        return {}
    check_regular_file(side, "export metadata")
    if side.stat().st_size > MAX_SIDECAR_BYTES:
        raise ExportError(f"{side}: {side.stat().st_size} bytes is too large for export metadata")
    try:
        meta = json.loads(side.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, ValueError) as e:
        raise ExportError(f"{side}: export metadata is not JSON: {e}") from None
    meta = check_sidecar(meta, str(side))
    if meta.get("num_classes") is None and meta.get("class_names") is not None:
        meta["num_classes"] = len(meta["class_names"])
    return meta


def write_sidecar(path: str | os.PathLike, meta: dict[str, Any], *, overwrite: bool = False) -> Path:
    """Write ``meta`` (checked) as the sidecar of ``path``, atomically, under the output policy.

    Raises:
        OutputExistsError: The sidecar exists, was not written by this run and ``overwrite`` is false.
    """
    side = sidecar_path(path)
    return write_json(check_sidecar(meta, str(side)), side, overwrite=overwrite, what="export metadata")
