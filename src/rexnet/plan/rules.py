"""Channel rules: from a parameterization plus width/depth multipliers to a :class:`NetworkPlan`.

* :func:`rexnet_plan` - ReXNet V1, the linear rule ``16 + i*180/n`` of the official code
  (Python rounding, no divisor), and timm's rounded "ReXNet-R" variant via ``ch_div``.
* :func:`rexnet_lite_plan` - ReXNet-lite (divisor-8 rounding, 164 over n-1 steps, ReLU6, no SE).
* :func:`mobilenetv2_plan` - MobileNetV2's stage-wise staircase (torchvision's rule).
* :func:`ib_plan` with :func:`piecewise_linear_channels` - any c_i = a*f(i) + b, as the
  channel-configuration search samples them.
"""

from __future__ import annotations

from collections.abc import Sequence
from math import ceil

from ..errors import InputError
from .spec import BlockSpec, ConvSpec, HeadSpec, NetworkPlan

__all__ = [
    "make_divisible",
    "rexnet_plan",
    "rexnet_lite_plan",
    "mobilenetv2_plan",
    "ib_plan",
    "piecewise_linear_channels",
    "stage_strides",
    "REXNET_STAGE_LAYERS",
    "REXNET_STAGE_STRIDES",
]

REXNET_STAGE_LAYERS = (1, 2, 2, 3, 3, 5)
REXNET_STAGE_STRIDES = (1, 2, 2, 2, 1, 2)
_REXNET_STAGE_SE = (False, False, True, True, True, True)


def make_divisible(value: float, divisor: int = 8, min_value: int | None = None, round_limit: float = 0.9) -> int:
    """Round ``value`` to the nearest multiple of ``divisor`` (TF-slim rule).

    Never below ``min_value`` (default ``divisor``) and never more than 10 % below ``value``.
    ``divisor=1`` rounds half up, as timm does.
    """
    min_value = min_value or divisor
    new_value = max(min_value, int(value + divisor / 2) // divisor * divisor)
    if new_value < round_limit * value:
        new_value += divisor
    return new_value


def _check_multiplier(name: str, value: float) -> None:
    if not (isinstance(value, (int, float)) and value > 0):
        raise InputError(f"{name} must be a positive number, got {value!r}")


def stage_strides(layers: Sequence[int], strides: Sequence[int]) -> list[int]:
    """Per-block strides: only the first block of a stage carries the stage stride."""
    out: list[int] = []
    for n, s in zip(layers, strides):
        out += [s] + [1] * (n - 1)
    return out


def _shortcut(stride: int, c_in: int, c_out: int, rule: str) -> bool:
    if stride != 1:
        return False
    if rule == "partial":  # ReXNet: identity added into the first c_in outputs
        return c_in <= c_out
    if rule == "equal":  # MobileNetV2: only when shapes match
        return c_in == c_out
    if rule == "none":
        return False
    raise InputError(f"unknown shortcut rule {rule!r}; expected one of: partial, equal, none")


def rexnet_plan(
    width_mult: float = 1.0,
    depth_mult: float = 1.0,
    *,
    initial_channels: int = 16,
    final_channels: float = 180,
    use_se: bool = True,
    se_ratio: int = 12,
    ch_div: int = 1,
    dropout: float = 0.2,
) -> NetworkPlan:
    """ReXNet V1 (Han et al., CVPR 2021, Sec. 5): channels grow linearly with the block index.

    Block ``i >= 1`` outputs ``round((16 + i*180/n) * w)``; the stem is ``round(32*w)`` and
    block 0 outputs 16 when ``w < 1`` (the official code's width rule); the penultimate
    conv has ``int(1280*w)`` channels. ``ch_div > 1`` gives timm's rounded ReXNet-R variant,
    where every channel count goes through :func:`make_divisible`.

    Example:
        >>> rexnet_plan(1.0).out_channels[:4]
        (16, 27, 38, 50)
    """
    _check_multiplier("width_mult", width_mult)
    _check_multiplier("depth_mult", depth_mult)
    layers = [ceil(n * depth_mult) for n in REXNET_STAGE_LAYERS]
    strides = stage_strides(layers, REXNET_STAGE_STRIDES)
    use_ses = [se and use_se for n, se in zip(layers, _REXNET_STAGE_SE) for _ in range(n)]
    num_blocks = sum(layers)

    def rounded(x: float) -> int:
        return int(round(x)) if ch_div == 1 else make_divisible(round(x), ch_div)

    stem_base = 32 / width_mult if width_mult < 1.0 else 32
    base = initial_channels / width_mult if width_mult < 1.0 else initial_channels
    stem_ch = rounded(stem_base * width_mult)

    blocks = []
    c_in = stem_ch
    for i in range(num_blocks):
        if i > 0:
            base += final_channels / num_blocks
        c_out = rounded(base * width_mult)
        t = 1 if i < layers[0] else 6
        if ch_div == 1:
            exp = c_in * t
            se = exp // se_ratio if use_ses[i] else 0
        else:  # timm's rounding, kept literally so its weights load
            exp = make_divisible(round(c_in * t), ch_div)
            se = make_divisible(int(exp * (1 / se_ratio)), ch_div) if use_ses[i] else 0
        blocks.append(
            BlockSpec(
                in_channels=c_in,
                exp_channels=exp,
                out_channels=c_out,
                stride=strides[i],
                se_channels=se,
                act_exp="silu",
                act_dw="relu6",
                shortcut=_shortcut(strides[i], c_in, c_out, "partial"),
            )
        )
        c_in = c_out

    pen = int(1280 * width_mult) if ch_div == 1 else make_divisible(1280 * width_mult, ch_div)
    family = "rexnet" if ch_div == 1 else "rexnetr"
    return NetworkPlan(
        stem=ConvSpec(3, stem_ch, kernel_size=3, stride=2, act="silu"),
        blocks=tuple(blocks),
        final_conv=ConvSpec(c_in, pen, act="silu"),
        head=HeadSpec(dropout=dropout),
        family=family,
        params=tuple(
            sorted(
                {
                    "width_mult": width_mult,
                    "depth_mult": depth_mult,
                    "ch_div": ch_div,
                    "use_se": use_se,
                    "initial_channels": initial_channels,
                    "final_channels": final_channels,
                }.items()
            )
        ),
    )


def rexnet_lite_plan(
    width_mult: float = 1.0,
    *,
    fix_head_stem: bool = False,
    divisor: int = 8,
    initial_channels: int = 16,
    final_channels: float = 164,
    kernel_conf: str = "333333",
    dropout: float = 0.2,
) -> NetworkPlan:
    """ReXNet-lite (official ``rexnetv1_lite.py``): no SE, ReLU6 everywhere, 1024-wide head.

    The increment is ``164 / (n - 1)`` per block (not ``/ n`` as in V1) and every channel
    count is rounded to a multiple of ``divisor``. The expansion conv is ``6 * c_in`` wide,
    unrounded, as in the official code.
    """
    _check_multiplier("width_mult", width_mult)
    if len(kernel_conf) != len(REXNET_STAGE_LAYERS) or any(k not in "3579" for k in kernel_conf):
        raise InputError(f"kernel_conf must be 6 odd digits like '333333', got {kernel_conf!r}")
    layers = REXNET_STAGE_LAYERS
    strides = stage_strides(layers, REXNET_STAGE_STRIDES)
    kernels = [int(k) for k, n in zip(kernel_conf, layers) for _ in range(n)]
    num_blocks = sum(layers)
    m = width_mult

    def rounded(x: float) -> int:
        return make_divisible(int(round(x)), divisor)

    base = initial_channels / m if m < 1.0 else initial_channels
    stem_base = 32 / m if m < 1.0 or fix_head_stem else 32
    stem_ch = rounded(stem_base * m)

    blocks = []
    c_in = stem_ch
    for i in range(num_blocks):
        if i > 0:
            base += final_channels / (num_blocks - 1)
        c_out = rounded(base * m)
        t = 1 if i < layers[0] else 6
        blocks.append(
            BlockSpec(
                in_channels=c_in,
                exp_channels=c_in * t,
                out_channels=c_out,
                stride=strides[i],
                kernel_size=kernels[i],
                se_channels=0,
                act_exp="relu6",
                act_dw="relu6",
                shortcut=_shortcut(strides[i], c_in, c_out, "partial"),
            )
        )
        c_in = c_out

    pen = int(1280 * m) if m > 1 and not fix_head_stem else 1280
    return NetworkPlan(
        stem=ConvSpec(3, stem_ch, kernel_size=3, stride=2, act="relu6"),
        blocks=tuple(blocks),
        final_conv=ConvSpec(c_in, pen, act="relu6"),
        head=HeadSpec(hidden_channels=1024, dropout=dropout),
        family="rexnet_lite",
        params=tuple(sorted({"width_mult": m, "fix_head_stem": fix_head_stem, "kernel_conf": kernel_conf}.items())),
    )


_MBV2_SETTINGS = (
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
)


def mobilenetv2_plan(width_mult: float = 1.0, *, dropout: float = 0.2) -> NetworkPlan:
    """MobileNetV2 (Sandler et al. 2018) with torchvision's channel rule: the stage-wise staircase.

    Shortcuts only where input and output shapes match; ReLU6 everywhere; no SE.
    """
    _check_multiplier("width_mult", width_mult)
    stem_ch = make_divisible(32 * width_mult, 8)
    blocks = []
    c_in = stem_ch
    for t, c, n, s in _MBV2_SETTINGS:
        c_out = make_divisible(c * width_mult, 8)
        for j in range(n):
            stride = s if j == 0 else 1
            blocks.append(
                BlockSpec(
                    in_channels=c_in,
                    exp_channels=int(round(c_in * t)),
                    out_channels=c_out,
                    stride=stride,
                    act_exp="relu6",
                    act_dw="relu6",
                    shortcut=_shortcut(stride, c_in, c_out, "equal"),
                )
            )
            c_in = c_out
    pen = make_divisible(1280 * max(1.0, width_mult), 8)
    return NetworkPlan(
        stem=ConvSpec(3, stem_ch, kernel_size=3, stride=2, act="relu6"),
        blocks=tuple(blocks),
        final_conv=ConvSpec(c_in, pen, act="relu6"),
        head=HeadSpec(dropout=dropout),
        family="mobilenetv2",
        params=(("width_mult", width_mult),),
    )


def piecewise_linear_channels(num_blocks: int, knots: Sequence[tuple[float, float]], a: float, b: float) -> list[int]:
    """Channels ``c_i = round(a * f(i) + b)`` with ``f`` piecewise linear through ``knots``.

    Args:
        num_blocks: Number of blocks ``d``.
        knots: ``(index, value)`` pairs, indices increasing; ``f`` interpolates linearly
            between them and is constant beyond the ends. Two knots at adjacent indices make
            a step, so stage-wise staircases and straight lines are both expressible.
        a: Scale.
        b: Offset.

    Returns:
        The ``d`` channel counts (each at least 1).

    Example:
        >>> piecewise_linear_channels(5, [(0, 0.0), (4, 1.0)], a=40, b=20)
        [20, 30, 40, 50, 60]
    """
    if num_blocks < 1:
        raise InputError(f"num_blocks must be >= 1, got {num_blocks}")
    if not knots:
        raise InputError("piecewise_linear_channels needs at least one knot")
    xs = [float(k[0]) for k in knots]
    if any(x1 <= x0 for x0, x1 in zip(xs, xs[1:])):
        raise InputError(f"knot indices must be strictly increasing, got {xs}")
    ys = [float(k[1]) for k in knots]

    def f(i: float) -> float:
        if i <= xs[0]:
            return ys[0]
        for x0, y0, x1, y1 in zip(xs, ys, xs[1:], ys[1:]):
            if i <= x1:
                return y0 + (y1 - y0) * (i - x0) / (x1 - x0)
        return ys[-1]

    return [max(1, int(round(a * f(i) + b))) for i in range(num_blocks)]


def ib_plan(
    out_channels: Sequence[int],
    strides: Sequence[int],
    *,
    stem_channels: int = 16,
    stem_act: str = "relu",
    exp_ratio: float = 6,
    act_exp: str = "relu6",
    act_dw: str = "relu6",
    se_ratio: int = 0,
    final_channels: int = 1280,
    final_act: str = "relu6",
    shortcut: str = "partial",
    dropout: float = 0.2,
    family: str = "ib",
) -> NetworkPlan:
    """A plain stack of inverted bottlenecks with given output channels and strides.

    This is the search space of the paper's Sec. 4 (stem 3x3 with 16 channels + BN + ReLU,
    expansion ratio 6, a large penultimate expansion layer); ``se_ratio > 0`` adds SE with
    ``exp // se_ratio`` hidden channels.
    """
    if len(out_channels) != len(strides):
        raise InputError(f"out_channels ({len(out_channels)}) and strides ({len(strides)}) differ in length")
    if exp_ratio < 1:
        raise InputError(f"exp_ratio must be >= 1, got {exp_ratio}")
    blocks = []
    c_in = stem_channels
    for c_out, s in zip(out_channels, strides):
        exp = max(c_in, int(round(c_in * exp_ratio)))
        blocks.append(
            BlockSpec(
                in_channels=c_in,
                exp_channels=exp,
                out_channels=int(c_out),
                stride=int(s),
                se_channels=exp // se_ratio if se_ratio else 0,
                act_exp=act_exp,
                act_dw=act_dw,
                shortcut=_shortcut(int(s), c_in, int(c_out), shortcut),
            )
        )
        c_in = int(c_out)
    return NetworkPlan(
        stem=ConvSpec(3, stem_channels, kernel_size=3, stride=2, act=stem_act),
        blocks=tuple(blocks),
        final_conv=ConvSpec(c_in, final_channels, act=final_act),
        head=HeadSpec(dropout=dropout),
        family=family,
        params=(("out_channels", tuple(int(c) for c in out_channels)), ("strides", tuple(int(s) for s in strides))),
    )
