"""Validation of a COCO annotation file before anything is built from it.

A crafted or broken ``instances_*.json`` must give one clear :class:`~rexnet.errors.DataError`
naming the file and the field (``annotations[3].bbox``), never a ``KeyError`` deep in a data
loader worker. Image file names are confined to the dataset folder: an absolute path or a ``..``
component would read files from elsewhere.
"""

from __future__ import annotations

import math
import os
from pathlib import PurePosixPath, PureWindowsPath
from typing import Any

from ..errors import DataError

__all__ = ["check_coco"]


def _show(v: Any) -> str:
    text = repr(v)
    return text if len(text) <= 80 else text[:77] + "..."


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v: Any) -> bool:
    return (isinstance(v, (int, float)) and not isinstance(v, bool)) and math.isfinite(v)


def _records(coco: dict[str, Any], key: str, path: os.PathLike | str, *, non_empty: bool) -> list[dict[str, Any]]:
    value = coco[key]
    if not isinstance(value, list):
        raise DataError(f"{path}: '{key}' is a {type(value).__name__}, expected a list")
    if non_empty and not value:
        raise DataError(f"{path}: '{key}' is empty; a COCO dataset needs at least one")
    for i, rec in enumerate(value):
        if not isinstance(rec, dict):
            raise DataError(f"{path}: {key}[{i}] is {_show(rec)}, expected an object")
    return value


def _ids(records: list[dict[str, Any]], key: str, path: os.PathLike | str) -> set[int]:
    seen: set[int] = set()
    for i, rec in enumerate(records):
        v = rec.get("id")
        if not _is_int(v):
            raise DataError(f"{path}: {key}[{i}].id is {_show(v)}, expected an integer")
        if v in seen:
            raise DataError(f"{path}: {key}[{i}].id {v} appears twice")
        seen.add(v)
    return seen


def _check_file_name(name: Any, where: str, path: os.PathLike | str) -> None:
    if not isinstance(name, str) or not name.strip():
        raise DataError(f"{path}: {where}.file_name is {_show(name)}, expected a non-empty string")
    posix, win = PurePosixPath(name), PureWindowsPath(name)
    if posix.is_absolute() or win.is_absolute() or win.drive or ".." in posix.parts or ".." in win.parts:
        raise DataError(
            f"{path}: {where}.file_name {name!r} leaves the image folder (absolute or '..'); "
            "file names must be relative paths inside it"
        )


def check_coco(coco: Any, path: os.PathLike | str) -> None:
    """Check a parsed COCO annotation file: structure, ids, references, boxes and file names.

    Args:
        coco: What ``json.loads`` returned.
        path: The file, for messages.

    Raises:
        DataError: The first problem found, naming the file and the field and echoing the value.
    """
    if not isinstance(coco, dict):
        raise DataError(f"{path} is not COCO-format: a {type(coco).__name__} at the top, expected an object")
    missing = [k for k in ("images", "annotations", "categories") if k not in coco]
    if missing:
        raise DataError(f"{path} is not COCO-format: missing {', '.join(missing)}")
    images = _records(coco, "images", path, non_empty=True)
    categories = _records(coco, "categories", path, non_empty=True)
    annotations = _records(coco, "annotations", path, non_empty=False)
    image_ids, cat_ids = _ids(images, "images", path), _ids(categories, "categories", path)
    for i, im in enumerate(images):
        _check_file_name(im.get("file_name"), f"images[{i}]", path)
        for key in ("height", "width"):  # optional, but pycocotools reads them when present
            if key in im and (not _is_int(im[key]) or im[key] < 1):
                raise DataError(f"{path}: images[{i}].{key} is {_show(im[key])}, expected a positive integer")
    for i, c in enumerate(categories):
        if not isinstance(c.get("name"), str):
            raise DataError(f"{path}: categories[{i}].name is {_show(c.get('name'))}, expected a string")
    _ids(annotations, "annotations", path)  # COCOeval indexes the ground truth by annotation id
    for i, a in enumerate(annotations):
        _check_annotation(a, f"annotations[{i}]", image_ids, cat_ids, path)


def _check_annotation(a: dict[str, Any], where: str, image_ids: set[int], cat_ids: set[int], path: Any) -> None:
    if a.get("image_id") not in image_ids or not _is_int(a.get("image_id")):
        raise DataError(f"{path}: {where}.image_id {_show(a.get('image_id'))} names no image of 'images'")
    if a.get("category_id") not in cat_ids or not _is_int(a.get("category_id")):
        raise DataError(f"{path}: {where}.category_id {_show(a.get('category_id'))} names no category of 'categories'")
    box = a.get("bbox")
    if not (isinstance(box, list) and len(box) == 4 and all(_is_number(v) for v in box)):
        raise DataError(f"{path}: {where}.bbox is {_show(box)}, expected 4 finite numbers [x, y, width, height]")
    if box[2] < 0 or box[3] < 0:
        raise DataError(f"{path}: {where}.bbox {box} has a negative width or height")
    if "area" in a and not (_is_number(a["area"]) and a["area"] >= 0):
        raise DataError(f"{path}: {where}.area is {_show(a['area'])}, expected a number >= 0")
    crowd = a.get("iscrowd", 0)
    if crowd not in (0, 1) or isinstance(crowd, float):
        raise DataError(f"{path}: {where}.iscrowd is {_show(crowd)}, expected 0 or 1")
