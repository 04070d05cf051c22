"""Deploy-time fusion: fold every BatchNorm into its conv, drop dropout, go channels-last.

The fused model is a separate, inference-only module family (:class:`FusedRexNet`) built from a
trained :class:`~rexnet.model.RexNet`: each conv carries the BN's scale and shift in its weight
and bias, the squeeze-excitation bottleneck (conv -> BN on a pooled vector) becomes two dense
layers, activations run in place, and the partial identity shortcut is an in-place add into the
first ``in_channels`` output channels instead of a zero-padded copy.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import InputError
from ..layers import ConvBnAct, InvertedBottleneck, SqueezeExcite
from ..model import RexNet, RexNetFeatures

__all__ = ["fuse", "fold_conv_bn", "FusedRexNet", "FusedBottleneck"]


@torch.no_grad()
def fold_conv_bn(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> nn.Conv2d:
    """A conv (with bias) computing ``bn(conv(x))`` with the BN in eval mode.

    Args:
        conv: Any ``nn.Conv2d`` (with or without bias; strides, dilation, groups kept).
        bn: The BatchNorm that follows it (its running statistics are used).

    Returns:
        A new ``nn.Conv2d`` with bias; the inputs are not modified.
    """
    scale = bn.weight.double() / torch.sqrt(bn.running_var.double() + bn.eps)
    bias = conv.bias.double() if conv.bias is not None else torch.zeros_like(scale)
    fused = nn.Conv2d(
        conv.in_channels,
        conv.out_channels,
        conv.kernel_size,
        conv.stride,
        conv.padding,
        conv.dilation,
        conv.groups,
        bias=True,
        padding_mode=conv.padding_mode,
        device=conv.weight.device,
        dtype=conv.weight.dtype,
    )
    fused.weight.copy_(conv.weight.double() * scale.view(-1, 1, 1, 1))
    fused.bias.copy_((bias - bn.running_mean.double()) * scale + bn.bias.double())
    return fused


def _inplace(act: nn.Module) -> nn.Module:
    """A copy of an activation module running in place where torch offers it."""
    act = copy.deepcopy(act)
    if hasattr(act, "inplace"):
        act.inplace = True
    return act


def _conv_act(unit: ConvBnAct) -> nn.Sequential:
    return nn.Sequential(fold_conv_bn(unit.conv, unit.bn), _inplace(unit.act))


def _linear_from_1x1(conv: nn.Conv2d) -> nn.Linear:
    lin = nn.Linear(conv.in_channels, conv.out_channels, bias=True, device=conv.weight.device, dtype=conv.weight.dtype)
    with torch.no_grad():
        lin.weight.copy_(conv.weight.flatten(1))
        lin.bias.copy_(conv.bias if conv.bias is not None else torch.zeros_like(lin.bias))
    return lin


class FusedBottleneck(nn.Module):
    """Inference form of :class:`~rexnet.layers.InvertedBottleneck` with every BN folded.

    ``[1x1 + act_exp] -> dw kxk -> [SE: mean -> dense -> ReLU -> dense -> sigmoid -> scale]
    -> act_dw -> 1x1 -> (+= x into the first in_channels channels)``.
    """

    def __init__(self, block: InvertedBottleneck) -> None:
        super().__init__()
        self.in_channels = block.in_channels
        self.out_channels = block.out_channels
        self.use_shortcut = block.use_shortcut
        self.has_expand = isinstance(block.expand, ConvBnAct)
        self.expand = _conv_act(block.expand) if self.has_expand else nn.Identity()
        self.depthwise = fold_conv_bn(block.depthwise.conv, block.depthwise.bn)
        self.has_se = isinstance(block.se, SqueezeExcite)
        if self.has_se:
            se = block.se
            self.se_reduce = _linear_from_1x1(fold_conv_bn(se.reduce, se.bn))
            self.se_expand = _linear_from_1x1(se.expand)
        else:
            self.se_reduce = nn.Identity()
            self.se_expand = nn.Identity()
        self.act_dw = _inplace(block.act_dw)
        self.project = fold_conv_bn(block.project.conv, block.project.bn)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not torch.jit.is_scripting():  # TorchScript cannot compile the exporter check
            if torch.onnx.is_in_onnx_export():
                return self._forward_export(x)
        out = self.depthwise(self.expand(x))
        if self.has_se:
            s = self.se_expand(F.relu(self.se_reduce(out.mean((2, 3)))))
            out = out * torch.sigmoid(s)[:, :, None, None]
        out = self.project(self.act_dw(out))
        if self.use_shortcut:
            if self.in_channels == self.out_channels:
                out += x
            elif torch.compiler.is_compiling():
                # inductor fuses this into the projection's epilogue; an in-place slice add
                # trips its frozen-weight mkldnn passes (torch 2.14)
                out = out + F.pad(x, (0, 0, 0, 0, 0, self.out_channels - self.in_channels))
            else:
                out[:, : self.in_channels] += x
        return out

    @torch.jit.unused
    def _forward_export(self, x: torch.Tensor) -> torch.Tensor:
        """The same function written for graph exporters (ONNX, and OpenVINO through it).

        The eager form's in-place slice add traces to ScatterND plus ~40 shape-computation nodes
        per block, and the dense SE layers to Gemm between (Un)squeezes. Here the SE runs as 1x1
        convs on the kept-dim pooled map and the partial shortcut is a slice add + concat: the
        node types of timm's graph, which onnxruntime and OpenVINO fuse.
        """
        out = self.depthwise(self.expand(x))
        if self.has_se:
            s = out.mean((2, 3), keepdim=True)
            s = F.conv2d(s, self.se_reduce.weight[:, :, None, None], self.se_reduce.bias)
            s = F.conv2d(F.relu(s), self.se_expand.weight[:, :, None, None], self.se_expand.bias)
            out = out * torch.sigmoid(s)
        out = self.project(self.act_dw(out))
        if self.use_shortcut:
            c = self.in_channels
            if c == self.out_channels:
                out = out + x
            else:
                out = torch.cat([out[:, :c] + x, out[:, c:]], dim=1)
        return out


class FusedRexNet(nn.Module):
    """Inference-only ReXNet made by :func:`fuse`: no BatchNorm, no dropout.

    Same surface as :class:`~rexnet.model.RexNet` for inference: ``forward``,
    ``forward_features``, ``forward_head(pre_logits=...)``; a fused ``features_only``
    backbone returns its multi-scale maps from ``forward``.
    """

    def __init__(self, model: RexNet) -> None:
        super().__init__()
        self.features_only = isinstance(model, RexNetFeatures)
        self.tap_blocks: list[int] = list(model.tap_blocks)
        self.feature_info = copy.deepcopy(model.feature_info)
        self.num_classes = 0 if self.features_only else model.num_classes
        self.num_features = model.num_features
        for attr in ("model_name", "pretrained_cfg"):
            if hasattr(model, attr):
                setattr(self, attr, copy.deepcopy(getattr(model, attr)))
        self.stem = _conv_act(model.stem)
        self.blocks = nn.Sequential(*[FusedBottleneck(b) for b in model.blocks])
        if self.features_only:
            return
        self.final_conv = _conv_act(model.final_conv)
        if isinstance(model.head_hidden, nn.Sequential):
            hh = model.head_hidden
            self.head_hidden = nn.Sequential(_linear_from_1x1(fold_conv_bn(hh.conv, hh.bn)), _inplace(hh.act))
        else:
            self.head_hidden = nn.Identity()
        if isinstance(model.classifier, nn.Linear):
            self.classifier: nn.Module = copy.deepcopy(model.classifier)
        else:
            self.classifier = nn.Identity()

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Stem, blocks and the penultimate 1x1 conv."""
        return self.final_conv(self.blocks(self.stem(x)))

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """Global average pool, [lite hidden layer], classifier."""
        # exporters: GlobalAveragePool + Flatten, which onnxruntime runs in its blocked layout
        if torch.jit.is_scripting():  # (TorchScript cannot compile the exporter check)
            pooled = x.mean((2, 3))
        elif torch.onnx.is_in_onnx_export():
            pooled = F.adaptive_avg_pool2d(x, 1).flatten(1)
        else:
            pooled = x.mean((2, 3))
        x = self.head_hidden(pooled)
        return x if pre_logits else self.classifier(x)

    # the multi-scale maps: RexNet's own walk over the blocks (no gradient checkpointing when fused)
    grad_checkpointing = False
    forward_feature_maps = RexNet.forward_feature_maps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


class _FusedFeatures(FusedRexNet):
    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:  # type: ignore[override]
        return self.forward_feature_maps(x)


def fuse(model: nn.Module, channels_last: bool = True) -> nn.Module:
    """An inference copy of a ReXNet with every BatchNorm folded into its conv.

    Folds the BN of the stem, every block's expansion, depthwise and projection conv, the
    squeeze-excitation bottleneck (its BN into the first SE layer), the final conv and the
    ReXNet-lite hidden layer; removes dropout (and drop-path); returns an eval-mode module
    whose outputs equal ``model.eval()``'s within float rounding (about 1e-6 in fp32).
    The input model is not modified.

    Args:
        model: A :class:`~rexnet.model.RexNet` (or features-only backbone) from
            :func:`rexnet.create_model`, in any mode.
        channels_last: Store the weights channels-last; feed channels-last inputs
            (``x.contiguous(memory_format=torch.channels_last)``) for the fast path.

    Returns:
        A :class:`FusedRexNet` in eval mode, with ``requires_grad`` off.

    Raises:
        InputError: ``model`` is not a ReXNet built by this library.

    Example:
        >>> import rexnet, torch
        >>> fused = rexnet.fuse(rexnet.create_model("rexnet_100"))
        >>> fused(torch.zeros(1, 3, 224, 224)).shape
        torch.Size([1, 1000])
    """
    if isinstance(model, FusedRexNet):
        return model
    if not isinstance(model, RexNet):
        raise InputError(f"fuse expects a rexnet RexNet model, got {type(model).__name__}")
    cls = _FusedFeatures if isinstance(model, RexNetFeatures) else FusedRexNet
    fused = cls(model).eval()
    for p in fused.parameters():
        p.requires_grad_(False)
    if channels_last:
        fused = fused.to(memory_format=torch.channels_last)
    return fused
