"""ReXNet (and any zoo model) as a torchvision detection backbone: FPN body and SSDLite extractor.

The detectors themselves are torchvision's; this module only turns a :class:`~rexnet.model.RexNet`
into the ``nn.Module`` they expect (an ``OrderedDict`` of maps plus ``out_channels``), and applies
torchvision's fine-tuning conventions: frozen BatchNorm and a number of trainable stages.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from collections.abc import Sequence

import torch
from torch import nn
from torchvision.ops import FeaturePyramidNetwork, FrozenBatchNorm2d
from torchvision.ops.feature_pyramid_network import LastLevelMaxPool

from ..errors import InputError
from ..model import RexNet
from ..plan.spec import NetworkPlan
from ..zoo import create_model

__all__ = [
    "RexNetFPN",
    "SSDLiteExtractor",
    "block_strides",
    "freeze_batchnorm",
    "freeze_stages",
    "level_channels",
    "stage_modules",
]

NUM_STAGES = 5  # strides 2, 4, 8, 16, 32


def freeze_batchnorm(module: nn.Module) -> nn.Module:
    """Replace every ``BatchNorm2d`` by torchvision's ``FrozenBatchNorm2d`` with the same statistics."""
    for name, child in module.named_children():
        if isinstance(child, nn.BatchNorm2d):
            frozen = FrozenBatchNorm2d(child.num_features, eps=child.eps)
            frozen.weight.copy_(child.weight.detach())
            frozen.bias.copy_(child.bias.detach())
            frozen.running_mean.copy_(child.running_mean)
            frozen.running_var.copy_(child.running_var)
            setattr(module, name, frozen)
        else:
            freeze_batchnorm(child)
    return module


def block_strides(plan: NetworkPlan) -> list[int]:
    """The nominal output stride of each block of a plan."""
    strides, reduction = [], plan.stem.stride
    for spec in plan.blocks:
        reduction *= spec.stride
        strides.append(reduction)
    return strides


def level_channels(plan: NetworkPlan, strides: Sequence[int]) -> list[int]:
    """Output channels of the last block at each of ``strides`` (the maps a features-only model returns)."""
    by_stride = {s: spec.out_channels for s, spec in zip(block_strides(plan), plan.blocks)}
    return [by_stride[s] for s in strides]


def stage_modules(net: RexNet) -> list[list[nn.Module]]:
    """The network's modules grouped by output stride: ``[stem + stride-2 blocks, stride-4 blocks, ...]``.

    The penultimate 1x1 conv (if the network still has it) belongs to the last stage.
    """
    stride_of_block = block_strides(net.plan)[: len(net.blocks)]
    levels = sorted(set(stride_of_block) | {net.plan.stem.stride})
    groups: list[list[nn.Module]] = [[] for _ in levels]
    groups[0].append(net.stem)
    for block, s in zip(net.blocks, stride_of_block):
        groups[levels.index(s)].append(block)
    if hasattr(net, "final_conv"):
        groups[-1].append(net.final_conv)
    return groups


def freeze_stages(net: RexNet, trainable_layers: int) -> None:
    """Keep gradients only in the last ``trainable_layers`` stages (torchvision's ``trainable_backbone_layers``)."""
    groups = stage_modules(net)
    if not 0 <= trainable_layers <= len(groups):
        raise InputError(f"trainable_layers must be in [0, {len(groups)}], got {trainable_layers}")
    for group in groups[: len(groups) - trainable_layers]:
        for m in group:
            m.requires_grad_(False)


def load_backbone(
    name: str,
    pretrained: str | os.PathLike | None,
    *,
    features_only: bool,
    out_indices: tuple[int, ...] = (1, 2, 3, 4),
    frozen_bn: bool | None = None,
    trainable_layers: int | None = None,
    **kwargs: object,
) -> RexNet:
    """A zoo model for detection: classification weights from ``pretrained``, then BN / stage freezing.

    Defaults follow torchvision: with weights, BN is frozen and 3 stages train; from scratch, BN
    trains and so do all stages.
    """
    if features_only:
        net = create_model(name, pretrained=pretrained, features_only=True, out_indices=out_indices, **kwargs)
    else:  # SSDLite also taps the penultimate 1x1 conv, so keep it and drop only the classifier
        net = create_model(name, pretrained=pretrained, num_classes=0, **kwargs)
    is_trained = pretrained is not None
    if frozen_bn if frozen_bn is not None else is_trained:
        freeze_batchnorm(net)
    freeze_stages(net, trainable_layers if trainable_layers is not None else (3 if is_trained else NUM_STAGES))
    return net


class RexNetFPN(nn.Module):
    """Backbone maps -> torchvision ``FeaturePyramidNetwork`` (+ max-pool level), like ``BackboneWithFPN``.

    Args:
        body: A ``features_only`` model returning a list of maps.
        out_channels: FPN width (torchvision: 256).
    """

    def __init__(self, body: RexNet, in_channels: Sequence[int], out_channels: int = 256) -> None:
        super().__init__()
        self.body = body
        self.fpn = FeaturePyramidNetwork(in_channels, out_channels, extra_blocks=LastLevelMaxPool())
        self.out_channels = out_channels

    def forward(self, x: torch.Tensor) -> OrderedDict[str, torch.Tensor]:
        maps = self.body(x)
        return self.fpn(OrderedDict((str(i), m) for i, m in enumerate(maps)))


def _extra_block(in_channels: int, out_channels: int) -> nn.Sequential:
    """SSDLite's extra layer: 1x1 to half width, depthwise 3x3 stride 2, 1x1 out (BN + ReLU6 after each)."""
    mid = out_channels // 2

    def cba(cin: int, cout: int, k: int, stride: int = 1, groups: int = 1) -> list[nn.Module]:
        return [
            nn.Conv2d(cin, cout, k, stride, k // 2, groups=groups, bias=False),
            nn.BatchNorm2d(cout, eps=0.001, momentum=0.03),
            nn.ReLU6(inplace=True),
        ]

    return nn.Sequential(*cba(in_channels, mid, 1), *cba(mid, mid, 3, 2, groups=mid), *cba(mid, out_channels, 1))


class SSDLiteExtractor(nn.Module):
    """MobileNetV2's SSDLite feature layout on any zoo network (Sandler et al. 2018, Sec. 6.2).

    The first map is the *expansion output* of the first stride-32 block (``layer_15/expansion_output``
    in MobileNetV2; 576 channels there, 768 in ReXNet x1.0), the second the penultimate 1x1 conv
    (1280), then extra layers of 512, 256, 256, 128 channels, each halving the resolution.

    Args:
        net: A classification network with its penultimate conv (``num_classes=0``).
        extra_channels: Widths of the extra layers.
    """

    def __init__(self, net: RexNet, extra_channels: tuple[int, ...] = (512, 256, 256, 128)) -> None:
        super().__init__()
        strides = block_strides(net.plan)
        if 32 not in strides:
            raise InputError("SSDLite needs a network with a stride-32 stage")
        self.split = strides.index(32)  # the first stride-32 block
        tap = net.blocks[self.split]
        if isinstance(tap.expand, nn.Identity) or tap.use_shortcut:
            raise InputError("SSDLite taps the expansion of the first stride-32 block; this one has none")
        self.stem = net.stem
        self.early = net.blocks[: self.split]
        self.tap = tap
        self.late = net.blocks[self.split + 1 :]
        self.final_conv = net.final_conv
        chans = [tap.expand.conv.out_channels, net.num_features]
        self.extra = nn.ModuleList()
        for c in extra_channels:
            self.extra.append(_extra_block(chans[-1], c))
            chans.append(c)
        self.out_channels = chans

    def forward(self, x: torch.Tensor) -> OrderedDict[str, torch.Tensor]:
        x = self.early(self.stem(x))
        c4 = self.tap.expand(x)
        x = self.tap.project(self.tap.act_dw(self.tap.se(self.tap.depthwise(c4))))
        x = self.final_conv(self.late(x))
        outs = [c4, x]
        for block in self.extra:
            x = block(x)
            outs.append(x)
        return OrderedDict((str(i), v) for i, v in enumerate(outs))
