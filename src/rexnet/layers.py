"""Building blocks: conv-BN-activation, squeeze-excitation, drop-path, global pooling and ReXNet's bottleneck."""

# No ``from __future__ import annotations`` here or in model.py: FX copies ``forward``'s
# annotations into the code it generates, and TorchScript cannot resolve them as strings.

import torch
import torch.nn.functional as F
from torch import nn

from .errors import InputError
from .plan.spec import ACTIVATIONS, BlockSpec

__all__ = [
    "make_activation",
    "ConvBnAct",
    "SqueezeExcite",
    "DropPath",
    "GlobalPool",
    "POOL_TYPES",
    "InvertedBottleneck",
]


def make_activation(name: str) -> nn.Module:
    """An activation module by name (the names of :data:`rexnet.plan.ACTIVATIONS`).

    Plain ``torch.nn`` modules only: the official code's custom autograd SiLU breaks
    TorchScript and ONNX export, and ``nn.SiLU`` computes the same function.
    """
    if name not in ACTIVATIONS:
        raise InputError(f"unknown activation {name!r}; expected one of: {', '.join(ACTIVATIONS)}")
    return getattr(nn, ACTIVATIONS[name].module)()


class ConvBnAct(nn.Sequential):
    """Conv (no bias) -> BatchNorm -> activation, with 'same' padding."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 1,
        stride: int = 1,
        groups: int = 1,
        dilation: int = 1,
        act: str = "identity",
    ) -> None:
        padding = dilation * (kernel_size // 2)
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias=False)
        self.bn = nn.BatchNorm2d(out_channels)
        self.act = make_activation(act)


class SqueezeExcite(nn.Module):
    """ReXNet's SE: pool -> 1x1 conv (bias) -> BN -> ReLU -> 1x1 conv (bias) -> sigmoid gate.

    Unlike EfficientNet's SE it has a BN in the bottleneck and its width is
    ``expanded_channels // 12``.
    """

    def __init__(self, channels: int, hidden: int) -> None:
        super().__init__()
        self.reduce = nn.Conv2d(channels, hidden, 1, bias=True)
        self.bn = nn.BatchNorm2d(hidden)
        self.act = nn.ReLU(inplace=True)
        self.expand = nn.Conv2d(hidden, channels, 1, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = x.mean((2, 3), keepdim=True)
        s = self.expand(self.act(self.bn(self.reduce(s))))
        return x * torch.sigmoid(s)


class DropPath(nn.Module):
    """Stochastic depth on the residual branch, per sample (Huang et al. 2016); timm's signature.

    Args:
        drop_prob: Probability of dropping a sample's branch, in [0, 1).
        scale_by_keep: Divide the kept branches by ``1 - drop_prob`` (expectation unchanged).
    """

    def __init__(self, drop_prob: float = 0.0, scale_by_keep: bool = True) -> None:
        super().__init__()
        if not 0.0 <= drop_prob < 1.0:
            raise InputError(f"drop-path probability must be in [0, 1), got {drop_prob}")
        self.drop_prob = drop_prob
        self.scale_by_keep = scale_by_keep

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.drop_prob == 0.0 or not self.training:
            return x
        keep = 1.0 - self.drop_prob
        mask = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(keep)
        if self.scale_by_keep:
            mask = mask / keep
        return x * mask

    def extra_repr(self) -> str:
        return f"drop_prob={self.drop_prob:.3f}"


POOL_TYPES = ("avg", "max", "avgmax", "catavgmax", "")


class GlobalPool(nn.Module):
    """Global pooling by name, as timm's ``global_pool`` (no flattening; ``""`` passes the map through).

    ``avgmax`` is the mean of average and max pooling, ``catavgmax`` their concatenation
    (twice the channels, see :meth:`feat_mult`).
    """

    def __init__(self, pool_type: str = "avg") -> None:
        super().__init__()
        if pool_type not in POOL_TYPES:
            raise InputError(f"unknown global_pool {pool_type!r}; expected one of: {', '.join(map(repr, POOL_TYPES))}")
        self.pool_type = pool_type

    def feat_mult(self) -> int:
        return 2 if self.pool_type == "catavgmax" else 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.pool_type == "":
            return x
        if self.pool_type == "avg":
            return x.mean((2, 3), keepdim=True)
        x_max = x.amax((2, 3), keepdim=True)
        if self.pool_type == "max":
            return x_max
        x_avg = x.mean((2, 3), keepdim=True)
        if self.pool_type == "avgmax":
            return 0.5 * (x_avg + x_max)
        return torch.cat([x_avg, x_max], 1)

    def extra_repr(self) -> str:
        return f"pool_type={self.pool_type!r}"


class InvertedBottleneck(nn.Module):
    """ReXNet's "LinearBottleneck", built from a :class:`BlockSpec`.

    ``[expand 1x1 -> BN -> act_exp] -> depthwise kxk -> BN -> [SE] -> act_dw -> project 1x1 -> BN``,
    then, if the spec says so, the input is added into the first ``in_channels`` output
    channels (ReXNet's partial identity shortcut; no projection, no parameters).

    Args:
        spec: The block's plan.
        dilation: Dilation of the depthwise conv (for output strides 8/16).
        stride: Overrides ``spec.stride`` (a stride replaced by dilation becomes 1).
        drop_path: Stochastic-depth probability of the residual branch.
    """

    def __init__(self, spec: BlockSpec, dilation: int = 1, stride: int | None = None, drop_path: float = 0.0) -> None:
        super().__init__()
        self.in_channels = spec.in_channels
        self.out_channels = spec.out_channels
        self.use_shortcut = spec.shortcut
        self.expand = (
            ConvBnAct(spec.in_channels, spec.exp_channels, act=spec.act_exp) if spec.has_expansion else nn.Identity()
        )
        self.depthwise = ConvBnAct(
            spec.exp_channels,
            spec.exp_channels,
            spec.kernel_size,
            spec.stride if stride is None else stride,
            groups=spec.exp_channels,
            dilation=dilation,
        )
        self.se = SqueezeExcite(spec.exp_channels, spec.se_channels) if spec.se_channels else nn.Identity()
        self.act_dw = make_activation(spec.act_dw)
        self.project = ConvBnAct(spec.exp_channels, spec.out_channels)
        self.drop_path = DropPath(drop_path) if drop_path > 0 and spec.shortcut else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.project(self.act_dw(self.se(self.depthwise(self.expand(x)))))
        if self.use_shortcut:
            out = self.drop_path(out)
            if self.in_channels == self.out_channels:
                out = out + x
            else:
                # zero-padding the identity = adding x into the first in_channels outputs
                out = out + F.pad(x, (0, 0, 0, 0, 0, self.out_channels - self.in_channels))
        return out
