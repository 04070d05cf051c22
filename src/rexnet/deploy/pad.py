"""Channel padding for export: every inner channel count rounded up to a multiple of 16, function unchanged.

ReXNet's linearly growing widths (27, 38, 50, 61, 72, 84, 95, ...) are almost never multiples of
the 16 fp32 lanes of an AVX-512 register. onnxruntime runs a convolution in its blocked (NCHWc)
layout only when its channel counts are multiples of the block size, so with the plain widths 36
of rexnet_100's 75 convolutions fall back to the slow NCHW path, with a layout conversion around
each; OpenVINO pads internally but cannot do the partial-shortcut slice + concat in place.

:func:`pad_channels` appends zero channels: padded output channels get zero weights and bias, so
they stay exactly zero through SiLU, ReLU6 and the SE gate (which multiplies them), and padded
input channels get zero weights, so they add nothing. The classifier reads only the real channels,
so the logits are unchanged (up to float summation order).
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from ..errors import InputError
from .fuse import FusedBottleneck, FusedRexNet

__all__ = ["pad_channels"]


def _up(c: int, multiple: int) -> int:
    return -(-c // multiple) * multiple


@torch.no_grad()
def _pad_conv(conv: nn.Conv2d, cin: int, cout: int) -> nn.Conv2d:
    depthwise = conv.groups == conv.in_channels == conv.out_channels and conv.groups > 1
    groups = cout if depthwise else conv.groups
    if not depthwise and conv.groups != 1:
        raise InputError("only dense and depthwise convolutions can be padded")
    new = nn.Conv2d(
        cin,
        cout,
        conv.kernel_size,
        conv.stride,
        conv.padding,
        conv.dilation,
        groups,
        bias=True,
        padding_mode=conv.padding_mode,
        dtype=conv.weight.dtype,
    )
    new.weight.zero_()
    new.bias.zero_()
    w = conv.weight
    new.weight[: w.shape[0], : w.shape[1]] = w
    if conv.bias is not None:
        new.bias[: w.shape[0]] = conv.bias
    return new.requires_grad_(False)


@torch.no_grad()
def _pad_linear(lin: nn.Linear, fin: int, fout: int) -> nn.Linear:
    new = nn.Linear(fin, fout, bias=True, dtype=lin.weight.dtype)
    new.weight.zero_()
    new.bias.zero_()
    new.weight[: lin.out_features, : lin.in_features] = lin.weight
    if lin.bias is not None:
        new.bias[: lin.out_features] = lin.bias
    return new.requires_grad_(False)


def _pad_seq(seq: nn.Sequential, cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(_pad_conv(seq[0], cin, cout), *list(seq)[1:])


def _pad_block(b: FusedBottleneck, multiple: int) -> None:
    cin = _up(b.in_channels, multiple)
    if b.has_expand:
        mid = _up(b.expand[0].out_channels, multiple)
        b.expand = _pad_seq(b.expand, cin, mid)
    else:
        mid = cin
    b.depthwise = _pad_conv(b.depthwise, mid, mid)
    if b.has_se:
        hidden = _up(b.se_reduce.out_features, multiple)
        b.se_reduce = _pad_linear(b.se_reduce, mid, hidden)
        b.se_expand = _pad_linear(b.se_expand, hidden, mid)
    cout = _up(b.out_channels, multiple)
    b.project = _pad_conv(b.project, mid, cout)
    # padded input channels are zero, so adding x into the first cin (>= in_channels) outputs is exact
    b.in_channels, b.out_channels = cin, cout


def pad_channels(model: nn.Module, multiple: int = 16) -> nn.Module:
    """A copy of a fused ReXNet with every inner channel count padded to a multiple of ``multiple``.

    Models whose output would expose the padding (``features_only`` backbones, models without a
    classifier) are returned unchanged, as is anything that is not a :class:`FusedRexNet`.

    Example:
        >>> import rexnet, torch
        >>> from rexnet.deploy import fuse
        >>> from rexnet.deploy.pad import pad_channels
        >>> m = rexnet.create_model("rexnet_100").eval()
        >>> x = torch.randn(1, 3, 64, 64)
        >>> bool(torch.allclose(pad_channels(fuse(m, channels_last=False))(x), m(x), atol=1e-5))
        True
    """
    if not isinstance(model, FusedRexNet) or model.features_only or not isinstance(model.classifier, nn.Linear):
        return model
    m = copy.deepcopy(model)
    stem_out = _up(m.stem[0].out_channels, multiple)
    m.stem = _pad_seq(m.stem, m.stem[0].in_channels, stem_out)
    for b in m.blocks:
        _pad_block(b, multiple)
    last = m.blocks[-1].out_channels if len(m.blocks) else stem_out
    feat = _up(m.final_conv[0].out_channels, multiple)
    m.final_conv = _pad_seq(m.final_conv, last, feat)
    if isinstance(m.head_hidden, nn.Sequential):
        lin = m.head_hidden[0]
        hid = _up(lin.out_features, multiple)
        m.head_hidden = nn.Sequential(_pad_linear(lin, feat, hid), *list(m.head_hidden)[1:])
        feat = hid
    m.classifier = _pad_linear(m.classifier, feat, m.classifier.out_features)
    return m.eval()
