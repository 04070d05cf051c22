"""Detector builders: torchvision's Faster R-CNN / Mask R-CNN + FPN and SSDLite on ReXNet backbones.

Han et al., CVPR 2021, Tables 6 (SSDLite), 7 (Faster R-CNN + FPN) and 9 (Mask R-CNN + FPN). The
paper does not publish its detection code; the layouts here are the ones whose parameter counts
land on the paper's (see :mod:`rexnet.detection.cost` and ``benchmarks/RESULTS.md``).

Example:
    >>> import torch
    >>> from rexnet.detection import ssdlite_rexnet
    >>> model = ssdlite_rexnet("rexnet_100", num_classes=11, image_size=128).eval()
    >>> out = model([torch.rand(3, 128, 128)])
    >>> sorted(out[0])
    ['boxes', 'labels', 'scores']
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from typing import Any

import torch
from torch import nn
from torchvision.models.detection import FasterRCNN, MaskRCNN
from torchvision.models.detection.anchor_utils import DefaultBoxGenerator
from torchvision.models.detection.ssd import SSD
from torchvision.models.detection.ssdlite import SSDLiteHead

from ..errors import InputError
from ..zoo import IMAGENET_MEAN, IMAGENET_STD
from .backbones import RexNetFPN, SSDLiteExtractor, level_channels, load_backbone

__all__ = [
    "DETECTORS",
    "SSDLiteBoxGenerator",
    "create_detector",
    "fasterrcnn_rexnet_fpn",
    "maskrcnn_rexnet_fpn",
    "ssdlite_rexnet",
]

PathLike = str | os.PathLike | None


def _fpn_backbone(
    name: str,
    pretrained_backbone: PathLike,
    trainable_layers: int | None,
    frozen_bn: bool | None,
    output_stride: int,
    fpn_channels: int,
) -> RexNetFPN:
    # strides 4, 8, 16, 32 as in torchvision's ResNet-FPN: this is what puts ReXNet x0.9 / x1.0 /
    # x2.2 within 0.3 % of the paper's 20.1 / 20.7 / 33.0 M (the penultimate 1280-wide conv is not used)
    body = load_backbone(
        name,
        pretrained_backbone,
        features_only=True,
        out_indices=(1, 2, 3, 4),
        frozen_bn=frozen_bn,
        trainable_layers=trainable_layers,
        output_stride=output_stride,
    )
    return RexNetFPN(body, level_channels(body.plan, (4, 8, 16, 32)), fpn_channels)


def _rcnn_fpn(
    head: type[FasterRCNN],
    name: str,
    num_classes: int,
    pretrained_backbone: PathLike = None,
    trainable_layers: int | None = None,
    frozen_bn: bool | None = None,
    output_stride: int = 32,
    fpn_channels: int = 256,
    **kwargs: Any,
) -> FasterRCNN:
    backbone = _fpn_backbone(name, pretrained_backbone, trainable_layers, frozen_bn, output_stride, fpn_channels)
    return head(backbone, num_classes=num_classes, **kwargs)


def fasterrcnn_rexnet_fpn(name: str = "rexnet_100", num_classes: int = 91, **kwargs: Any) -> FasterRCNN:
    """torchvision's Faster R-CNN + FPN on a zoo backbone (paper Table 7).

    Args:
        name: Backbone name from :func:`rexnet.list_models` (``rexnet_090``, ``rexnet_220``, ...).
        num_classes: Including background (91 = torchvision's COCO layout).
        **kwargs: The backbone's keywords:

            - ``pretrained_backbone``: classification checkpoint (ours, timm's or the official layout);
            - ``trainable_layers``: stages (of 5) that train; default 3 with weights, 5 without (torchvision's rule);
            - ``frozen_bn``: ``FrozenBatchNorm2d`` in the backbone; default: only with ``pretrained_backbone``;
            - ``output_stride``: 32, or 16 / 8 to trade the last strides for dilation (denser C5);
            - ``fpn_channels``: FPN width (256);

            the rest go to ``torchvision.models.detection.FasterRCNN`` (``min_size``, ``rpn_anchor_generator``,
            ``box_detections_per_img``, ...).
    """
    return _rcnn_fpn(FasterRCNN, name, num_classes, **kwargs)


def maskrcnn_rexnet_fpn(name: str = "rexnet_100", num_classes: int = 91, **kwargs: Any) -> MaskRCNN:
    """torchvision's Mask R-CNN + FPN on a zoo backbone (paper Table 9); arguments as
    :func:`fasterrcnn_rexnet_fpn`, the non-backbone ``kwargs`` to ``torchvision.models.detection.MaskRCNN``."""
    return _rcnn_fpn(MaskRCNN, name, num_classes, **kwargs)  # type: ignore[return-value]


class SSDLiteBoxGenerator(DefaultBoxGenerator):
    """SSD default boxes with MobileNetV2-SSDLite's reduced lowest layer.

    The TF Object Detection API configuration of SSDLite-MobileNetV2 (``reduce_boxes_in_lowest_layer``)
    puts only 3 boxes on the first map: scale 0.1 at aspect ratio 1, and ``min_ratio`` at 2 and 1/2.
    With ``reduce_lowest=False`` it is torchvision's ``DefaultBoxGenerator`` unchanged.
    """

    def __init__(self, aspect_ratios: list[list[int]], *, reduce_lowest: bool = True, **kwargs: Any) -> None:
        super().__init__(aspect_ratios, **kwargs)
        self.reduce_lowest = reduce_lowest
        self._wh_pairs = self._generate_wh_pairs(len(aspect_ratios))

    def _generate_wh_pairs(
        self, num_outputs: int, dtype: torch.dtype = torch.float32, device: torch.device | str = "cpu"
    ) -> list[torch.Tensor]:
        pairs = super()._generate_wh_pairs(num_outputs, dtype, device)
        if getattr(self, "reduce_lowest", False):
            s, r = self.scales[0], math.sqrt(2.0)
            pairs[0] = torch.tensor([[0.1, 0.1], [s * r, s / r], [s / r, s * r]], dtype=dtype, device=device)
        return pairs

    def num_anchors_per_location(self) -> list[int]:
        counts = super().num_anchors_per_location()
        if self.reduce_lowest:
            counts[0] = 3
        return counts


def _normal_init(module: nn.Module) -> None:
    # torchvision's SSDLite init for layers trained from scratch (normal, std 0.03)
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.normal_(m.weight, std=0.03)
            if m.bias is not None:
                nn.init.zeros_(m.bias)


def ssdlite_rexnet(
    name: str = "rexnet_100",
    num_classes: int = 91,
    *,
    pretrained_backbone: PathLike = None,
    trainable_layers: int | None = None,
    image_size: int = 320,
    reduce_lowest_anchors: bool = True,
    min_ratio: float = 0.2,
    max_ratio: float = 0.95,
    **kwargs: Any,
) -> SSD:
    """SSDLite (MobileNetV2's design, Sandler et al. 2018) on a zoo backbone (paper Table 6).

    Feature maps: the expansion output of the first stride-32 block, the penultimate 1x1 conv,
    and extra layers of 512/256/256/128 channels; depthwise-separable prediction heads
    (torchvision's ``SSDLiteHead``); 3 boxes on the first map and 6 on the others.

    Args:
        name: Backbone name (``rexnet_100``, ``mobilenetv2_100`` for the paper's baseline, ...).
        num_classes: Including background (91 = torchvision's COCO layout; the paper's counts fit 81).
        pretrained_backbone: Classification checkpoint; BN keeps training (torchvision's SSDLite does too).
        trainable_layers: Backbone stages (of 5) that train; default all.
        image_size: Square input size (320 in the paper).
        reduce_lowest_anchors: 3 boxes on the first map (TF's SSDLite) instead of torchvision's 6.
        min_ratio, max_ratio: Smallest and largest box scale, as a fraction of the image.
        **kwargs: Passed to ``torchvision.models.detection.SSD`` (``score_thresh``, ``nms_thresh``, ...).
    """
    if image_size < 64:
        raise InputError(f"image_size must be >= 64 for SSDLite's six maps, got {image_size}")
    net = load_backbone(
        name,
        pretrained_backbone,
        features_only=False,
        frozen_bn=False,
        trainable_layers=trainable_layers if trainable_layers is not None else 5,
    )
    backbone = SSDLiteExtractor(net)
    _normal_init(backbone.extra)
    anchors = SSDLiteBoxGenerator(
        [[2, 3] for _ in backbone.out_channels],
        reduce_lowest=reduce_lowest_anchors,
        min_ratio=min_ratio,
        max_ratio=max_ratio,
    )
    norm = _bn_ssdlite
    head = SSDLiteHead(backbone.out_channels, anchors.num_anchors_per_location(), num_classes, norm)
    defaults: dict[str, Any] = dict(
        score_thresh=0.001,
        nms_thresh=0.55,
        detections_per_img=300,
        topk_candidates=300,
        image_mean=list(IMAGENET_MEAN),
        image_std=list(IMAGENET_STD),  # the backbone's own preprocessing
    )
    return SSD(backbone, anchors, (image_size, image_size), num_classes, head=head, **{**defaults, **kwargs})


def _bn_ssdlite(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, eps=0.001, momentum=0.03)


# One registry: architecture name -> builder (CLI, cost table and tests read it).
DETECTORS: dict[str, Callable[..., nn.Module]] = {
    "ssdlite": ssdlite_rexnet,
    "fasterrcnn_fpn": fasterrcnn_rexnet_fpn,
    "maskrcnn_fpn": maskrcnn_rexnet_fpn,
}


def create_detector(arch: str, backbone: str = "rexnet_100", **kwargs: Any) -> nn.Module:
    """Build a detector by architecture name (``ssdlite``, ``fasterrcnn_fpn``, ``maskrcnn_fpn``)."""
    try:
        builder = DETECTORS[arch]
    except KeyError:
        raise InputError(f"unknown detector {arch!r}; expected one of: {', '.join(DETECTORS)}") from None
    return builder(backbone, **kwargs)
