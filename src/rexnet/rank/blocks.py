"""Batched random blocks of Figure 1: many random networks of one shape in one tensor op.

Networks that share d_out (hence d_in at a given ratio) and the IB's hidden width are stacked
along a batch axis, so a point of the study is a handful of ``bmm``/eigenvalue calls instead
of 1,000 loops. Each network's pre-activation is computed once and shared by every
activation, so activations are compared on the very same W and X (common random numbers).

Features are ``(batch, channels, columns)``; with ``spatial > 1`` the columns are
``images * H * W`` (image-major) and convs run as grouped ``conv2d`` (one group per network).
Weights always carry the network as their leading axis, so network ``i`` of a batch is
``{k: w[i:i + 1]}``: the batch-equals-alone test relies on it.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..errors import InputError
from .estimators import parse_estimator, rank_from_singular_values, singular_values, threshold_ranks
from .protocols import Protocol, resolve_activation

__all__ = [
    "BLOCK_KINDS",
    "BLOCKS",
    "BlockKind",
    "get_block_kind",
    "check_blocks",
    "point_seed",
    "sample_d_out",
    "hidden_width",
    "draw_weights",
    "apply_block",
    "block_outputs",
    "point_rank_ratios",
]

Act = Callable[[torch.Tensor], torch.Tensor]
Weights = dict[str, torch.Tensor]


def point_seed(seed: int, block: str, ratio: float) -> int:
    """A 63-bit seed for one (block, ratio) point: results do not depend on run order or resume."""
    digest = hashlib.sha256(f"{seed}|{block}|{ratio:.6g}".encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


def sample_d_out(networks: int, protocol: Protocol, gen: torch.Generator) -> torch.Tensor:
    """d_out of each network, ~ U{d_out_min..d_out_max}."""
    return torch.randint(protocol.d_out_min, protocol.d_out_max + 1, (networks,), generator=gen)


def hidden_width(d_in: int, expansion: float) -> int:
    """The IB's hidden width: round(t * d_in), at least d_in."""
    return max(d_in, int(round(expansion * d_in)))


def _weights(shape: tuple[int, ...], fan_in: int, p: Protocol, gen: torch.Generator) -> torch.Tensor:
    if p.init == "pytorch_default":
        return (torch.rand(shape, generator=gen, dtype=p.torch_dtype) * 2 - 1) / math.sqrt(fan_in)
    w = torch.randn(shape, generator=gen, dtype=p.torch_dtype)
    return w * math.sqrt(2.0 / fan_in) if p.init == "he_normal" else w


def _input(shape: tuple[int, ...], p: Protocol, gen: torch.Generator) -> torch.Tensor:
    if p.input == "uniform01":
        return torch.rand(shape, generator=gen, dtype=p.torch_dtype)
    x = torch.randn(shape, generator=gen, dtype=p.torch_dtype)
    return x.clamp_min(0) if p.input == "relu_gaussian" else x


def _bn(x: torch.Tensor) -> torch.Tensor:
    """Train-mode BatchNorm at init: per-channel standardisation over the columns."""
    mean = x.mean(-1, keepdim=True)
    var = x.var(-1, unbiased=False, keepdim=True)
    return (x - mean) / torch.sqrt(var + 1e-5)


def _conv_weight(b: int, c_out: int, c_in: int, k: int, p: Protocol, gen: torch.Generator) -> torch.Tensor:
    if k == 1 or p.spatial == 1:  # 1x1, or a kxk conv on a 1x1 map: its centre tap
        return _weights((b, c_out, c_in), k * k * c_in, p, gen)
    return _weights((b, c_out, c_in, k, k), k * k * c_in, p, gen)


def _dw_weight(b: int, c: int, k: int, p: Protocol, gen: torch.Generator) -> torch.Tensor:
    if p.spatial == 1:  # a depthwise conv on a 1x1 map is a per-channel scale
        return _weights((b, c, 1), k * k, p, gen)
    return _weights((b, c, k, k), k * k, p, gen)


def draw_weights(
    block: str, b: int, d_in: int, d_out: int, p: Protocol, gen: torch.Generator, hidden: int | None = None
) -> Weights:
    """Weights of ``b`` random blocks, network first on every tensor.

    ``hidden`` is the IB's hidden width (default :func:`hidden_width` of the protocol's expansion).
    The draw order (w, or w1, w2, w3) is part of the seeded protocol: keep it.
    """
    kind = get_block_kind(block)
    h = (hidden if hidden is not None else hidden_width(d_in, p.expansion)) if kind.bottleneck else 0
    return kind.draw(b, d_in, d_out, h, p, gen)


def _draw_conv(k: int) -> Callable[..., Weights]:
    def draw(b: int, d_in: int, d_out: int, hidden: int, p: Protocol, gen: torch.Generator) -> Weights:
        return {"w": _conv_weight(b, d_out, d_in, k, p, gen)}

    return draw


def _draw_ib(depthwise: bool) -> Callable[..., Weights]:
    def draw(b: int, d_in: int, d_out: int, hidden: int, p: Protocol, gen: torch.Generator) -> Weights:
        w1 = _conv_weight(b, hidden, d_in, 1, p, gen)
        w2 = _dw_weight(b, hidden, 3, p, gen) if depthwise else _conv_weight(b, hidden, hidden, 3, p, gen)
        return {"w1": w1, "w2": w2, "w3": _conv_weight(b, d_out, hidden, 1, p, gen)}

    return draw


def _conv(x: torch.Tensor, w: torch.Tensor, s: int) -> torch.Tensor:
    """``(b, c_in, images*s*s)`` -> ``(b, c_out, images*s*s)``: each network with its own weights."""
    if w.ndim == 3:
        return torch.bmm(w, x)
    b, c_in, cols = x.shape
    _, c_out, _, k, _ = w.shape
    images = cols // (s * s)
    # conv2d's groups split channels network-major: the input must be (images, networks, channels, H, W)
    xi = x.reshape(b, c_in, images, s, s).permute(2, 0, 1, 3, 4).reshape(images, b * c_in, s, s)
    y = F.conv2d(xi, w.reshape(b * c_out, c_in, k, k), padding=k // 2, groups=b)
    return y.reshape(images, b, c_out, s, s).permute(1, 2, 0, 3, 4).reshape(b, c_out, cols)


def _dwconv(x: torch.Tensor, w: torch.Tensor, s: int) -> torch.Tensor:
    if w.ndim == 3:
        return x * w
    b, c, cols = x.shape
    k = w.shape[-1]
    images = cols // (s * s)
    xi = x.reshape(b, c, images, s, s).permute(2, 0, 1, 3, 4).reshape(images, b * c, s, s)
    y = F.conv2d(xi, w.reshape(b * c, 1, k, k), padding=k // 2, groups=b * c)
    return y.reshape(images, b, c, s, s).permute(1, 2, 0, 3, 4).reshape(b, c, cols)


def apply_block(block: str, x: torch.Tensor, weights: Weights, acts: Sequence[Act], p: Protocol) -> list[torch.Tensor]:
    """Outputs of the blocks ``weights`` describe on ``x`` ``(b, d_in, columns)``, one per activation.

    IB blocks use the activation at both activated positions (after the expansion and after
    the 3x3), a linear projection, BN after the projection when the protocol normalises, and
    (if ``p.shortcut``) ReXNet's partial shortcut, x added into the first d_in output channels;
    the output is taken after the shortcut.
    """
    return get_block_kind(block).apply(x, weights, acts, p)


def _norms(p: Protocol) -> tuple[Act, Act]:
    identity: Act = lambda z: z  # noqa: E731
    return (_bn if p.norm == "bn_before" else identity), (_bn if p.norm == "bn_after" else identity)


def _apply_conv(x: torch.Tensor, weights: Weights, acts: Sequence[Act], p: Protocol) -> list[torch.Tensor]:
    pre, post = _norms(p)
    z = pre(_conv(x, weights["w"], p.spatial))
    return [post(f(z)) for f in acts]


def _apply_ib(depthwise: bool) -> Callable[..., list[torch.Tensor]]:
    inner = _dwconv if depthwise else _conv

    def apply(x: torch.Tensor, weights: Weights, acts: Sequence[Act], p: Protocol) -> list[torch.Tensor]:
        pre, post = _norms(p)
        s, d_in = p.spatial, x.shape[1]
        z1 = pre(_conv(x, weights["w1"], s))
        outs = []
        for f in acts:
            z2 = inner(post(f(z1)), weights["w2"], s)
            out = _conv(post(f(pre(z2))), weights["w3"], s)
            if p.norm != "none":
                out = _bn(out)
            if p.shortcut:
                out[:, :d_in] += x
            outs.append(out)
        return outs

    return apply


@dataclass(frozen=True)
class BlockKind:
    """One block type of the study (Figure 1's panels): how it is drawn and applied, and what a point costs.

    Attributes:
        title: Panel title in the figure.
        draw: ``(b, d_in, d_out, hidden, protocol, generator) -> weights``, network first on every tensor.
        apply: ``(x, weights, activations, protocol) -> [output per activation]``.
        cost: Relative compute of one point at a dimension ratio (schedules the heaviest points first).
        bottleneck: Whether the block has a hidden width set by the protocol's expansion ratio.
    """

    title: str
    draw: Callable[..., Weights]
    apply: Callable[..., list[torch.Tensor]]
    cost: Callable[[float], float]
    bottleneck: bool = False


#: The study's block types, in Figure 1's panel order. Adding one here is all it takes (CLI choices included).
BLOCK_KINDS: dict[str, BlockKind] = {
    "conv1x1": BlockKind("(a) 1x1 conv", _draw_conv(1), _apply_conv, cost=lambda r: 1.0),
    "conv3x3": BlockKind("(b) 3x3 conv", _draw_conv(3), _apply_conv, cost=lambda r: 1.0),
    # IB-conv's inner 3x3 conv grows with (t * d_in)**2
    "ib_conv": BlockKind(
        "(c) IB with conv", _draw_ib(False), _apply_ib(False), cost=lambda r: 1 + 20 * r**2, bottleneck=True
    ),
    "ib_dw": BlockKind("(d) IB with dwconv", _draw_ib(True), _apply_ib(True), cost=lambda r: 2.0, bottleneck=True),
}
BLOCKS = tuple(BLOCK_KINDS)


def get_block_kind(name: str) -> BlockKind:
    """The registered :class:`BlockKind` called ``name``.

    Raises:
        InputError: An unknown name, listing the valid ones.
    """
    try:
        return BLOCK_KINDS[name]
    except KeyError:
        raise InputError(f"unknown block {name!r}; expected one of: {', '.join(BLOCK_KINDS)}") from None


def check_blocks(blocks: list[str] | tuple[str, ...]) -> tuple[str, ...]:
    """Validate block names.

    Raises:
        InputError: An unknown block, listing the valid ones.
    """
    for b in blocks:
        get_block_kind(b)
    if not blocks:
        raise InputError(f"no block given; expected some of: {', '.join(BLOCK_KINDS)}")
    return tuple(blocks)


def block_outputs(
    block: str,
    x: torch.Tensor,
    d_out: int,
    acts: Sequence[Act],
    p: Protocol,
    gen: torch.Generator,
    hidden: int | None = None,
) -> list[torch.Tensor]:
    """Draw ``b = x.shape[0]`` random blocks and return their outputs, one tensor per activation."""
    w = draw_weights(block, x.shape[0], x.shape[1], d_out, p, gen, hidden)
    return apply_block(block, x, w, acts, p)


def point_rank_ratios(
    block: str,
    ratio: float,
    activations: Sequence[str],
    networks: int,
    protocol: Protocol,
    seed: int = 0,
    estimators: Sequence[str] | None = None,
    progress: Callable[[int], None] | None = None,
) -> tuple[dict[str, dict[str, torch.Tensor]], torch.Tensor]:
    """Rank ratios rank/d_out of ``networks`` random blocks at one dimension ratio.

    Args:
        block: One of :data:`BLOCKS`.
        ratio: d_in/d_out in (0, 1]; d_in = max(1, round(ratio * d_out)).
        activations: Activation names (:func:`rexnet.rank.protocols.resolve_activation`).
        networks: Random networks at this point.
        protocol: The protocol.
        seed: Study seed; combined with block and ratio (:func:`point_seed`).
        estimators: Estimator specs to read (default: the protocol's); one SVD serves all.
        progress: Called with the number of networks just finished.

    Returns:
        ``({estimator: {activation: (networks,) rank ratios}}, (networks,) realised d_in/d_out)``.
    """
    p = protocol
    ests = list(estimators or [p.estimator])
    gen = torch.Generator().manual_seed(point_seed(seed, block, ratio))
    fs = [resolve_activation(a, p.leaky_slope) for a in activations]
    d_out_all = sample_d_out(networks, p, gen)
    d_in_all = torch.tensor([max(1, int(round(ratio * d))) for d in d_out_all.tolist()], dtype=torch.long)
    if p.expansion_max is not None and get_block_kind(block).bottleneck:  # t ~ U[expansion, expansion_max] per network
        t = p.expansion + (p.expansion_max - p.expansion) * torch.rand(networks, generator=gen, dtype=torch.float64)
        hidden_all = torch.maximum(d_in_all, (t * d_in_all).round().long())
    else:
        hidden_all = torch.tensor([hidden_width(int(d), p.expansion) for d in d_in_all.tolist()], dtype=torch.long)
    result = {e: {a: torch.empty(networks, dtype=torch.float64) for a in activations} for e in ests}
    dims = torch.empty(networks, dtype=torch.float64)
    groups = sorted(set(zip(d_out_all.tolist(), hidden_all.tolist())))  # sorted: deterministic draw order
    with torch.no_grad():
        for d, h in groups:
            idx = ((d_out_all == d) & (hidden_all == h)).nonzero().squeeze(1)
            b = idx.numel()
            d_in = max(1, int(round(ratio * d)))
            cols = math.ceil(p.n_mult * d)
            images = math.ceil(cols / (p.spatial * p.spatial))
            x = _input((b, d_in, images * p.spatial * p.spatial), p, gen)
            outs = torch.cat(block_outputs(block, x, d, fs, p, gen, hidden=h))
            if p.svd_method == "inertia" and all(parse_estimator(e)[0] in ("matrix_rank", "rtol") for e in ests):
                ranks = threshold_ranks(outs, ests, p.torch_dtype)
            else:
                s = singular_values(outs, p.svd_method)
                ranks = {e: rank_from_singular_values(s, tuple(outs.shape[-2:]), e, p.torch_dtype) for e in ests}
            for e in ests:
                r = ranks[e] / d
                for i, a in enumerate(activations):
                    result[e][a][idx] = r[i * b : (i + 1) * b]
            dims[idx] = d_in / d
            if progress:
                progress(b)
    return result, dims
