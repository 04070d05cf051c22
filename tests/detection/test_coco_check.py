"""COCO annotation files from crafted input: every field is checked, file names stay in the dataset folder."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest
from PIL import Image

from rexnet.detection.data import CocoFolder, load_detection_data
from rexnet.errors import DataError

GOOD = {
    "images": [{"id": 1, "file_name": "a.png"}, {"id": 2, "file_name": "sub/b.png"}],
    "annotations": [{"id": 1, "image_id": 1, "category_id": 7, "bbox": [1, 2, 3.5, 4], "iscrowd": 0}],
    "categories": [{"id": 7, "name": "cat"}],
}


@pytest.fixture
def folder(tmp_path):
    (tmp_path / "train" / "sub").mkdir(parents=True)
    for name in ("a.png", "sub/b.png"):
        Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "train" / name)
    return tmp_path


def _load(folder, coco):
    (folder / "instances_train.json").write_text(json.dumps(coco))
    return load_detection_data(str(folder), "train")


def test_a_good_file_loads(folder):
    ds = _load(folder, GOOD)
    assert len(ds) == 2 and ds.class_names == ["cat"]
    img, target = ds[0]
    assert img.shape == (3, 8, 8) and target["labels"].tolist() == [1] and target["boxes"].tolist() == [[1, 2, 4.5, 6]]
    assert ds.coco["annotations"][0]["area"] == 3.5 * 4  # filled in from the box for COCOeval


def _edit(path: str, value):
    coco = copy.deepcopy(GOOD)
    *keys, last = path.split(".")
    node = coco
    for k in keys:
        node = node[int(k)] if isinstance(node, list) else node[k]
    if value is _DELETE:
        del node[last]
    else:
        node[int(last) if isinstance(node, list) else last] = value
    return coco


_DELETE = object()


@pytest.mark.parametrize(
    "path, value, match",
    [
        ("annotations.0.image_id", 99, r"annotations\[0\].image_id 99 names no image"),  # unknown ids
        ("annotations.0.category_id", 3, r"annotations\[0\].category_id 3 names no category"),
        ("annotations.0.bbox", ["1", "2", "3", "4"], r"annotations\[0\].bbox is \['1', '2', '3', '4'\], expected 4"),
        ("annotations.0.bbox", [1, 2, 3], r"annotations\[0\].bbox is \[1, 2, 3\]"),  # variant: 3 numbers
        ("annotations.0.bbox", [1, 2, float("nan"), 4], r"annotations\[0\].bbox is \[1, 2, nan, 4\]"),  # variant
        ("annotations.0.bbox", [1, 2, -3, 4], r"negative width or height"),  # variant
        ("annotations.0.iscrowd", "yes", r"annotations\[0\].iscrowd is 'yes'"),  # variant
        ("images", [], r"'images' is empty"),  # no images
        ("categories", [], r"'categories' is empty"),  # no categories
        ("categories", _DELETE, r"missing categories"),
        ("images.1.id", 1, r"images\[1\].id 1 appears twice"),  # variant: duplicate ids
        ("images.1.id", "2", r"images\[1\].id is '2', expected an integer"),  # variant
        ("categories.0.name", 5, r"categories\[0\].name is 5, expected a string"),
        ("annotations", {"a": 1}, r"'annotations' is a dict, expected a list"),
        ("images.0.file_name", "../../etc/passwd", r"images\[0\].file_name '../../etc/passwd' leaves the image folder"),
        ("images.0.file_name", "/etc/passwd", r"images\[0\].file_name '/etc/passwd' leaves the image folder"),
        ("images.0.file_name", "sub/../../x.png", r"leaves the image folder"),  # variant: '..' in the middle
        ("images.0.file_name", "C:\\\\x.png", r"leaves the image folder"),  # variant: a Windows drive
        ("images.0.file_name", "", r"file_name is '', expected a non-empty string"),
        ("images.0.height", "abc", r"images\[0\].height is 'abc', expected a positive integer"),  # variant
        ("annotations.0.id", _DELETE, r"annotations\[0\].id is None, expected an integer"),  # variant
        ("annotations.0.area", "big", r"annotations\[0\].area is 'big'"),  # variant
    ],
)
def test_crafted_fields_name_the_file_and_the_field(folder, path, value, match):
    with pytest.raises(DataError, match=match) as e:
        _load(folder, _edit(path, value))
    assert "instances_train.json" in str(e.value)


def test_not_an_object_and_not_json(folder):
    with pytest.raises(DataError, match="a list at the top, expected an object"):
        _load(folder, [GOOD])
    (folder / "instances_train.json").write_text("{not json")
    with pytest.raises(DataError, match="not COCO-format JSON"):
        CocoFolder(folder / "train", folder / "instances_train.json")


def test_confinement_reads_nothing_outside(folder, tmp_path):
    secret = tmp_path.parent / "secret.png"
    Image.fromarray(np.full((8, 8, 3), 255, np.uint8)).save(secret)
    with pytest.raises(DataError, match="leaves the image folder"):
        _load(folder, _edit("images.0.file_name", f"../../{secret.name}"))
    with pytest.raises(DataError, match="leaves the image folder"):
        _load(folder, _edit("images.0.file_name", str(secret)))


def test_crafted_segmentation_is_a_data_error(folder):
    coco = _edit("annotations.0.segmentation", {"counts": "%%%garbage", "size": "abc"})
    (folder / "instances_train.json").write_text(json.dumps(coco))
    ds = load_detection_data(str(folder), "train", masks=True)
    with pytest.raises(DataError, match=r"annotation 1 of image 1: 'segmentation' cannot be decoded"):
        ds[0]
