"""Detector builders: shapes, the paper's parameter counts, frozen BN / trainable stages, anchors."""

import pytest
import torch
from torchvision.models.detection.anchor_utils import DefaultBoxGenerator
from torchvision.ops import FrozenBatchNorm2d

import rexnet
from rexnet.detection import (
    SSDLiteBoxGenerator,
    create_detector,
    fasterrcnn_rexnet_fpn,
    maskrcnn_rexnet_fpn,
    ssdlite_rexnet,
)
from rexnet.detection.cost import PAPER_TABLE, build_table_model, count_detector_macs, count_detector_params
from rexnet.errors import RexnetError


def _target(n_boxes: int = 2, masks: bool = False, size: int = 96) -> dict:
    boxes = torch.tensor([[10.0, 12.0, 40.0, 50.0], [50.0, 30.0, 90.0, 70.0]])[:n_boxes]
    t = {"boxes": boxes, "labels": torch.tensor([1, 3])[:n_boxes]}
    if masks:
        m = torch.zeros(n_boxes, size, size, dtype=torch.uint8)
        for i, (x0, y0, x1, y1) in enumerate(boxes.int().tolist()):
            m[i, y0:y1, x0:x1] = 1
        t["masks"] = m
    return t


def test_ssdlite_shapes_and_loss():
    torch.manual_seed(0)
    model = ssdlite_rexnet("rexnet_060", num_classes=5, image_size=96)
    assert model.backbone.out_channels[1] == model.backbone.final_conv.conv.out_channels
    losses = model([torch.rand(3, 96, 96), torch.rand(3, 80, 120)], [_target(), _target(1)])
    assert set(losses) == {"bbox_regression", "classification"}
    assert all(torch.isfinite(v) for v in losses.values())
    out = model.eval()([torch.rand(3, 96, 96)])
    assert out[0]["boxes"].shape[1] == 4 and len(out[0]["boxes"]) == len(out[0]["scores"]) == len(out[0]["labels"])
    assert out[0]["labels"].min() >= 1 and out[0]["labels"].max() < 5


def test_ssdlite_maps_follow_mobilenetv2_layout():
    model = ssdlite_rexnet("rexnet_100", num_classes=81)
    # expansion of the first stride-32 block (128 * 6), penultimate conv, extras
    assert model.backbone.out_channels == [768, 1280, 512, 256, 256, 128]
    maps = model.eval().backbone(torch.zeros(1, 3, 320, 320))
    assert [tuple(m.shape[-2:]) for m in maps.values()] == [(20, 20), (10, 10), (5, 5), (3, 3), (2, 2), (1, 1)]
    mnv2 = ssdlite_rexnet("mobilenetv2_100", num_classes=81)
    assert mnv2.backbone.out_channels == [576, 1280, 512, 256, 256, 128]  # MobileNetV2's layer_15/expansion_output


def test_fasterrcnn_and_maskrcnn_shapes():
    torch.manual_seed(0)
    kw = dict(num_classes=4, min_size=96, max_size=96, rpn_post_nms_top_n_train=64, box_batch_size_per_image=32)
    model = fasterrcnn_rexnet_fpn("rexnet_060", **kw)
    losses = model([torch.rand(3, 96, 96), torch.rand(3, 96, 96)], [_target(), _target(1)])
    assert {"loss_classifier", "loss_box_reg", "loss_objectness", "loss_rpn_box_reg"} == set(losses)
    maps = model.eval().backbone(torch.zeros(1, 3, 128, 128))
    assert list(maps) == ["0", "1", "2", "3", "pool"]
    assert [m.shape[-1] for m in maps.values()] == [32, 16, 8, 4, 2]
    assert all(m.shape[1] == 256 for m in maps.values())
    mask = maskrcnn_rexnet_fpn(
        "rexnet_060",
        rpn_post_nms_top_n_test=20,
        box_detections_per_img=5,
        box_score_thresh=0.0,
        **{k: v for k, v in kw.items() if "train" not in k and "batch" not in k},
    )
    losses = mask([torch.rand(3, 96, 96), torch.rand(3, 96, 96)], [_target(masks=True), _target(1, masks=True)])
    assert "loss_mask" in losses
    out = mask.eval()([torch.rand(3, 96, 96)])[0]
    assert out["masks"].shape[1:] == (1, 96, 96) and len(out["masks"]) == len(out["boxes"]) <= 5


def test_output_stride_16_keeps_c5_at_stride_16():
    model = fasterrcnn_rexnet_fpn("rexnet_060", num_classes=3, output_stride=16)
    maps = model.eval().backbone.body(torch.zeros(1, 3, 128, 128))
    assert [m.shape[-1] for m in maps] == [32, 16, 8, 8]


@pytest.mark.parametrize("entry", PAPER_TABLE, ids=lambda e: f"T{e.table}-{e.arch}-{e.backbone}")
def test_params_match_paper_tables(entry):
    model = build_table_model(entry.arch, entry.backbone)
    params = count_detector_params(model) / 1e6
    tolerance = 0.05 if entry.arch == "ssdlite" else 0.01
    assert abs(params / entry.params_m - 1) <= tolerance, (params, entry.params_m)


def test_ssdlite_macs_match_paper():
    for backbone, paper in (("rexnet_100", 1.01), ("mobilenetv2_100", 0.79)):
        macs = count_detector_macs(build_table_model("ssdlite", backbone))["total"] / 1e9
        assert abs(macs / paper - 1) < 0.02, (backbone, macs)


@pytest.mark.slow
def test_fpn_macs_match_paper():
    parts = count_detector_macs(build_table_model("fasterrcnn_fpn", "rexnet_090"))
    assert abs(parts["total"] / 123.0e9 - 1) < 0.01, parts


def test_pretrained_backbone_frozen_bn_and_trainable_stages(tmp_path):
    src = rexnet.create_model("rexnet_060")
    path = tmp_path / "w.safetensors"
    rexnet.save_weights(src, path)
    model = fasterrcnn_rexnet_fpn("rexnet_060", num_classes=3, pretrained_backbone=path)
    body = model.backbone.body
    assert any(isinstance(m, FrozenBatchNorm2d) for m in body.modules())
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in body.modules())
    assert torch.equal(body.blocks[5].expand.conv.weight, src.blocks[5].expand.conv.weight)
    assert torch.equal(body.stem.bn.running_var, src.stem.bn.running_var)
    # torchvision's default with weights: the last 3 of 5 stages train (strides 8, 16, 32)
    assert not body.stem.conv.weight.requires_grad and not body.blocks[2].expand.conv.weight.requires_grad
    assert body.blocks[3].expand.conv.weight.requires_grad and body.blocks[-1].project.conv.weight.requires_grad
    frozen_all = fasterrcnn_rexnet_fpn("rexnet_060", num_classes=3, trainable_layers=0)
    assert not any(p.requires_grad for p in frozen_all.backbone.body.parameters())
    with pytest.raises(RexnetError, match="trainable_layers"):
        fasterrcnn_rexnet_fpn("rexnet_060", trainable_layers=7)
    scratch = fasterrcnn_rexnet_fpn("rexnet_060", num_classes=3)
    assert all(p.requires_grad for p in scratch.backbone.body.parameters())
    assert not any(isinstance(m, FrozenBatchNorm2d) for m in scratch.modules())


def test_ssdlite_box_generator():
    gen = SSDLiteBoxGenerator([[2, 3]] * 6, min_ratio=0.2, max_ratio=0.95)
    assert gen.num_anchors_per_location() == [3, 6, 6, 6, 6, 6]
    assert len(gen._wh_pairs[0]) == 3 and torch.allclose(gen._wh_pairs[0][0], torch.tensor([0.1, 0.1]))
    plain = SSDLiteBoxGenerator([[2, 3]] * 6, reduce_lowest=False, min_ratio=0.2, max_ratio=0.95)
    ref = DefaultBoxGenerator([[2, 3]] * 6, min_ratio=0.2, max_ratio=0.95)
    assert plain.num_anchors_per_location() == ref.num_anchors_per_location()
    assert all(torch.equal(a, b) for a, b in zip(plain._wh_pairs, ref._wh_pairs))


def test_bad_arguments():
    with pytest.raises(RexnetError, match="unknown detector 'yolo'"):
        create_detector("yolo")
    with pytest.raises(rexnet.UnknownModelError):
        create_detector("ssdlite", "rexnet_999")
    with pytest.raises(RexnetError, match="image_size"):
        ssdlite_rexnet("rexnet_100", image_size=32)
