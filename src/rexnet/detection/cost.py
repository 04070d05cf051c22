"""Parameters and MACs of the detectors, next to the paper's Tables 6, 7 and 9.

Conventions (chosen because they reproduce the paper's parameter counts; see ``benchmarks/RESULTS.md``):

* parameters: every ``nn.Parameter`` of the model built without pretrained weights, so BatchNorm
  affine weights count (torchvision's ``fasterrcnn_resnet50_fpn`` gives 41.81 M this way, the
  paper 41.8 M); FPN models with torchvision's 91 classes, SSDLite with 81 (80 + background) and
  3 boxes on its first map (these give 4.34 M for MobileNetV2, the paper's 4.3 M);
* MACs: convolutions and linear layers only (``FlopCounterMode`` / 2), as for the classifiers.
  Two-stage models: backbone + FPN + RPN head on an 800x1280 image (mmdetection's default
  ``get_flops`` shape; the paper writes "1200x800"), plus the box head on 1000 proposals
  (torchvision's test-time ``rpn_post_nms_top_n``). The mask head is reported apart
  (``mask_head``, 100 detections) and left out of ``total``: the paper prints the same MACs for
  its Mask R-CNN rows as for its Faster R-CNN rows. This reproduces every ReXNet row and the
  Mask R-CNN ResNet50 row to 0.1 %; the Faster R-CNN ResNet50 row (202.2 B) is the exception.
  SSDLite: the whole network on 320x320. Box decoding and NMS are not counted.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from .models import create_detector

__all__ = ["PAPER_TABLE", "PaperEntry", "count_detector_macs", "count_detector_params", "paper_comparison"]


@dataclass(frozen=True)
class PaperEntry:
    """One row of the paper's transfer tables (params in M, MACs in B)."""

    table: str
    arch: str
    backbone: str
    params_m: float
    macs_b: float
    ap: float
    source: str = "CVPR'21"


PAPER_TABLE: tuple[PaperEntry, ...] = (
    PaperEntry("6", "ssdlite", "mobilenetv2_100", 4.3, 0.79, 22.1),
    PaperEntry("6", "ssdlite", "rexnet_090", 5.0, 0.88, 24.7),
    PaperEntry("6", "ssdlite", "rexnet_100", 5.7, 1.01, 25.3),
    PaperEntry("6", "ssdlite", "rexnet_130", 8.4, 1.60, 27.3),
    PaperEntry("7", "fasterrcnn_fpn", "resnet50", 41.8, 202.2, 37.6),
    PaperEntry("7", "fasterrcnn_fpn", "rexnet_090", 20.1, 123.0, 38.0),
    PaperEntry("7", "fasterrcnn_fpn", "rexnet_100", 20.7, 124.1, 38.5, "official README"),
    PaperEntry("7", "fasterrcnn_fpn", "rexnet_220", 33.0, 153.8, 41.5),
    PaperEntry("9", "maskrcnn_fpn", "resnet50", 44.2, 206.5, 34.6),
    PaperEntry("9", "maskrcnn_fpn", "rexnet_090", 22.8, 123.0, 35.2),
    PaperEntry("9", "maskrcnn_fpn", "rexnet_100", 23.3, 124.1, 35.4, "official README"),
    PaperEntry("9", "maskrcnn_fpn", "rexnet_220", 35.6, 153.8, 37.8),
)

FPN_IMAGE = (800, 1280)  # H, W
SSD_IMAGE = 320


def build_table_model(arch: str, backbone: str) -> nn.Module:
    """The detector of a table row under the conventions above (ResNet50 rows: torchvision's own)."""
    if backbone == "resnet50":
        from torchvision.models import detection as tvd

        fn = {"fasterrcnn_fpn": tvd.fasterrcnn_resnet50_fpn, "maskrcnn_fpn": tvd.maskrcnn_resnet50_fpn}[arch]
        return fn(weights=None, weights_backbone=None)
    if arch == "ssdlite":
        return create_detector(arch, backbone, num_classes=81, image_size=SSD_IMAGE)
    return create_detector(arch, backbone, num_classes=91)


def count_detector_params(model: nn.Module) -> int:
    """All parameters (BatchNorm affine included; ``FrozenBatchNorm2d`` buffers are not parameters)."""
    return sum(p.numel() for p in model.parameters())


def _macs(fn: Any, *args: Any) -> int:
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        fn(*args)
    return counter.get_total_flops() // 2


def count_detector_macs(model: nn.Module, proposals: int = 1000, detections: int = 100) -> dict[str, int]:
    """MACs by part (see the module docstring); ``total`` is their sum without ``mask_head``."""
    model = model.eval()
    parts: dict[str, int] = {}
    if hasattr(model, "rpn"):  # Faster / Mask R-CNN
        x = torch.zeros(1, 3, *FPN_IMAGE)
        feats = {}

        def body(t: torch.Tensor) -> None:
            feats.update(model.backbone(t))

        parts["backbone+fpn"] = _macs(body, x)
        parts["rpn"] = _macs(model.rpn.head, list(feats.values()))
        rh = model.roi_heads
        rois = torch.zeros(proposals, model.backbone.out_channels, 7, 7)
        parts["box_head"] = _macs(lambda t: rh.box_predictor(rh.box_head(t)), rois)
        if getattr(rh, "mask_head", None) is not None:
            masks = torch.zeros(detections, model.backbone.out_channels, 14, 14)
            parts["mask_head"] = _macs(lambda t: rh.mask_predictor(rh.mask_head(t)), masks)
    else:  # SSD
        x = torch.zeros(1, 3, SSD_IMAGE, SSD_IMAGE)
        parts["network"] = _macs(lambda t: model.head(list(model.backbone(t).values())), x)
    parts["total"] = sum(v for k, v in parts.items() if k != "mask_head")
    return parts


def paper_comparison(entries: tuple[PaperEntry, ...] = PAPER_TABLE) -> list[dict[str, Any]]:
    """Build every row of the tables and return ours next to the paper's (params M, MACs B, gaps in %)."""
    rows = []
    for e in entries:
        model = build_table_model(e.arch, e.backbone)
        params = count_detector_params(model) / 1e6
        macs = count_detector_macs(model)
        total = macs["total"] / 1e9
        rows.append(
            dict(
                table=e.table,
                arch=e.arch,
                backbone=e.backbone,
                params_m=params,
                paper_params_m=e.params_m,
                params_gap_pct=100 * (params / e.params_m - 1),
                macs_b=total,
                paper_macs_b=e.macs_b,
                macs_gap_pct=100 * (total / e.macs_b - 1),
                macs_parts_b={k: v / 1e9 for k, v in macs.items() if k != "total"},
                paper_ap=e.ap,
                source=e.source,
            )
        )
    return rows
