"""Detection data: the embedded demo set and COCO-format folders."""

import json

import pytest
import torch

from rexnet.detection.data import CocoFolder, load_detection_data, make_demo_detection, write_coco
from rexnet.errors import RexnetError


def test_demo_set_is_deterministic_and_consistent():
    a = make_demo_detection("train", image_size=96, num_images=12)
    b = make_demo_detection("train", image_size=96, num_images=12)
    assert a.num_classes == 11 and a.class_names == [str(i) for i in range(10)]
    for i in range(12):
        (ia, ta), (ib, tb) = a[i], b[i]
        assert torch.equal(ia, ib) and torch.equal(ta["boxes"], tb["boxes"]) and torch.equal(ta["masks"], tb["masks"])
        assert ia.shape == (3, 96, 96) and 0 <= ia.min() and ia.max() <= 1
        boxes, masks = ta["boxes"], ta["masks"]
        assert 1 <= len(boxes) <= 4 and len(masks) == len(boxes) == len(ta["labels"])
        assert (ta["labels"] >= 1).all() and (ta["labels"] <= 10).all()
        for (x0, y0, x1, y1), m in zip(boxes.int().tolist(), masks):
            # the box is the mask's exact extent
            ys, xs = m.nonzero(as_tuple=True)
            assert (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1) == (x0, y0, x1, y1)
    val = make_demo_detection("val", image_size=96, num_images=12)
    assert not torch.equal(val[0][0], a[0][0])


def test_coco_folder_round_trip(tmp_path):
    demo = make_demo_detection("val", image_size=64, num_images=5)
    path = write_coco(demo, tmp_path, "val")
    assert json.loads(path.read_text())["categories"][3]["name"] == "3"
    folder = load_detection_data(str(tmp_path), "val", masks=True)
    assert isinstance(folder, CocoFolder) and len(folder) == 5
    for i in range(5):
        (ia, ta), (ib, tb) = demo[i], folder[i]
        assert torch.equal(ia, ib)  # PNG is lossless
        assert torch.equal(ta["boxes"], tb["boxes"]) and torch.equal(ta["labels"], tb["labels"])
        assert torch.equal(ta["masks"], tb["masks"])  # RLE decoded by pycocotools
    assert len(load_detection_data(str(tmp_path), "val", limit=2)) == 2


def test_bad_data_paths(tmp_path):
    with pytest.raises(RexnetError, match="no COCO annotations for split 'train'"):
        load_detection_data(str(tmp_path), "train")
    (tmp_path / "instances_val.json").write_text("{not json")
    (tmp_path / "val").mkdir()
    with pytest.raises(RexnetError, match="not COCO-format JSON"):
        load_detection_data(str(tmp_path), "val")
    (tmp_path / "instances_val.json").write_text('{"images": []}')
    with pytest.raises(RexnetError, match="missing annotations, categories"):
        load_detection_data(str(tmp_path), "val")
    with pytest.raises(RexnetError, match="split"):
        make_demo_detection("test")
