"""Exact parameter and MAC counts of a plan, without building a network.

Convention (the paper's, and fvcore's): MACs are the multiply-accumulates of convolutions and
fully-connected layers, bias additions, BN, activations, pooling and the SE multiply excluded.
``torch.utils.flop_counter.FlopCounterMode`` reports 2 FLOPs per MAC, so its total / 2 equals
:func:`count_macs`; the tests check this for every registered model.

Parameters count every trainable tensor: conv/linear weights and biases and the BN affine
weights (running statistics are buffers, not parameters).
"""

from __future__ import annotations

import operator
from dataclasses import dataclass

from ..errors import InputError
from .spec import NetworkPlan

__all__ = ["Cost", "count_macs", "count_params", "plan_cost", "layer_costs", "conv_out_size"]


def conv_out_size(size: int, kernel: int, stride: int, dilation: int = 1) -> int:
    """Output size of a conv with 'same'-style padding ``dilation * (kernel // 2)``."""
    pad = dilation * (kernel // 2)
    return (size + 2 * pad - dilation * (kernel - 1) - 1) // stride + 1


@dataclass(frozen=True)
class Cost:
    """Parameters and MACs of one layer or a whole network."""

    name: str
    params: int
    macs: int


def _bn(c: int) -> int:
    return 2 * c


def layer_costs(
    plan: NetworkPlan, image_size: int | tuple[int, int] = 224, num_classes: int = 1000, output_stride: int = 32
) -> list[Cost]:
    """Per-layer costs in forward order (stem, each block, final conv, head).

    Args:
        plan: The network.
        image_size: Input height and width (an int means square).
        num_classes: Classifier outputs; 0 means no classifier.
        output_stride: 32, 16 or 8; strides beyond it become dilation (spatial size stays).
    """
    sizes = (image_size, image_size) if not isinstance(image_size, (tuple, list)) else tuple(image_size)
    try:
        h, w = (operator.index(v) for v in sizes)  # ints of any kind (numpy too); NaN, floats and bools fail
    except (TypeError, ValueError):
        h = w = 0
    if isinstance(image_size, bool) or h < 1 or w < 1:
        raise InputError(f"image_size must be a positive int or (height, width) of ints, got {image_size!r}")
    if isinstance(num_classes, bool) or not hasattr(num_classes, "__index__") or operator.index(num_classes) < 0:
        raise InputError(f"num_classes must be an int >= 0, got {num_classes!r}")
    out: list[Cost] = []

    s = plan.stem
    h, w = conv_out_size(h, s.kernel_size, s.stride), conv_out_size(w, s.kernel_size, s.stride)
    reduction = s.stride
    out.append(
        Cost(
            "stem",
            s.kernel_size**2 * s.in_channels * s.out_channels + _bn(s.out_channels),
            s.kernel_size**2 * s.in_channels * s.out_channels * h * w,
        )
    )

    for i, b in enumerate(plan.blocks):
        params = macs = 0
        if b.has_expansion:
            params += b.in_channels * b.exp_channels + _bn(b.exp_channels)
            macs += b.in_channels * b.exp_channels * h * w
        stride = b.stride
        if reduction >= output_stride:
            stride = 1  # dilated instead of strided
        reduction *= stride
        h, w = conv_out_size(h, b.kernel_size, stride), conv_out_size(w, b.kernel_size, stride)
        params += b.kernel_size**2 * b.exp_channels + _bn(b.exp_channels)
        macs += b.kernel_size**2 * b.exp_channels * h * w
        if b.se_channels:
            e, r = b.exp_channels, b.se_channels
            params += e * r + r + _bn(r) + r * e + e
            macs += 2 * e * r
        params += b.exp_channels * b.out_channels + _bn(b.out_channels)
        macs += b.exp_channels * b.out_channels * h * w
        out.append(Cost(f"block{i}", params, macs))

    f = plan.final_conv
    out.append(
        Cost("final_conv", f.in_channels * f.out_channels + _bn(f.out_channels), f.in_channels * f.out_channels * h * w)
    )

    features = f.out_channels
    hidden = plan.head.hidden_channels
    if hidden:
        out.append(Cost("head_hidden", features * hidden + hidden + _bn(hidden), features * hidden))
        features = hidden
    if num_classes:
        out.append(Cost("classifier", features * num_classes + num_classes, features * num_classes))
    return out


def plan_cost(
    plan: NetworkPlan, image_size: int | tuple[int, int] = 224, num_classes: int = 1000, output_stride: int = 32
) -> Cost:
    """Total parameters and MACs of ``plan``; see :func:`layer_costs` for the arguments."""
    layers = layer_costs(plan, image_size, num_classes, output_stride)
    return Cost("total", sum(c.params for c in layers), sum(c.macs for c in layers))


def count_macs(
    plan: NetworkPlan, image_size: int | tuple[int, int] = 224, num_classes: int = 1000, output_stride: int = 32
) -> int:
    """Multiply-accumulates of one forward pass at ``image_size``.

    Example:
        >>> from rexnet.plan import rexnet_plan
        >>> round(count_macs(rexnet_plan(1.0)) / 1e9, 3)
        0.398
    """
    return plan_cost(plan, image_size, num_classes, output_stride).macs


def count_params(plan: NetworkPlan, num_classes: int = 1000) -> int:
    """Trainable parameters (independent of the input size).

    Example:
        >>> from rexnet.plan import rexnet_plan
        >>> round(count_params(rexnet_plan(1.0)) / 1e6, 3)
        4.797
    """
    return plan_cost(plan, 32, num_classes).params
