"""Batched random blocks of Figure 1: many random networks of one shape in one tensor op.

Networks that share d_out (hence d_in at a given ratio) are stacked along a batch axis, so
a point of the study is a handful of ``bmm``/``svdvals`` calls instead of 1,000 loops. Each
network's pre-activation is computed once and shared by every activation, so activations
are compared on the very same W and X (common random numbers).

Features are ``(batch, channels, columns)``; with ``spatial > 1`` the columns are
``images * H * W`` and convs run as grouped ``conv2d`` (one group per network).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F

from .estimators import rank_from_singular_values, singular_values
from .protocols import Protocol, resolve_activation

__all__ = ["point_seed", "sample_d_out", "block_outputs", "point_rank_ratios"]

Act = Callable[[torch.Tensor], torch.Tensor]


def point_seed(seed: int, block: str, ratio: float) -> int:
    """A 63-bit seed for one (block, ratio) point: results do not depend on run order or resume."""
    digest = hashlib.sha256(f"{seed}|{block}|{ratio:.6g}".encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


def sample_d_out(networks: int, protocol: Protocol, gen: torch.Generator) -> torch.Tensor:
    """d_out of each network, ~ U{d_out_min..d_out_max}."""
    return torch.randint(protocol.d_out_min, protocol.d_out_max + 1, (networks,), generator=gen)


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


class _Ops:
    """Conv/norm helpers for a stack of ``b`` networks under one protocol.

    Weights are drawn by ``*_weight`` and applied by ``conv``/``dwconv``, so one draw can serve
    every activation (drawing is as costly as the matmul for the IB's inner conv).
    """

    def __init__(self, p: Protocol, gen: torch.Generator, b: int, images: int) -> None:
        self.p, self.gen, self.b, self.images = p, gen, b, images

    def conv_weight(self, c_out: int, c_in: int, k: int) -> torch.Tensor:
        if k == 1 or self.p.spatial == 1:  # 1x1, or a kxk conv on a 1x1 map: its centre tap
            return _weights((self.b, c_out, c_in), k * k * c_in, self.p, self.gen)
        return _weights((self.b * c_out, c_in, k, k), k * k * c_in, self.p, self.gen)

    def dw_weight(self, c: int, k: int) -> torch.Tensor:
        if self.p.spatial == 1:  # a depthwise conv on a 1x1 map is a per-channel scale
            return _weights((self.b, c, 1), k * k, self.p, self.gen)
        return _weights((self.b * c, 1, k, k), k * k, self.p, self.gen)

    def conv(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        if w.ndim == 3:
            return torch.bmm(w, x)
        b, c_in, _ = x.shape
        s, k = self.p.spatial, w.shape[-1]
        xi = x.reshape(b, c_in, self.images, s, s).transpose(0, 2).reshape(self.images, b * c_in, s, s)
        y = F.conv2d(xi, w, padding=k // 2, groups=b)
        return y.view(self.images, b, -1, s, s).transpose(0, 2).reshape(b, -1, self.images * s * s)

    def dwconv(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        if w.ndim == 3:
            return x * w
        b, c, _ = x.shape
        s, k = self.p.spatial, w.shape[-1]
        xi = x.reshape(b, c, self.images, s, s).transpose(0, 2).reshape(self.images, b * c, s, s)
        y = F.conv2d(xi, w, padding=k // 2, groups=b * c)
        return y.view(self.images, b, c, s, s).transpose(0, 2).reshape(b, c, self.images * s * s)

    def pre(self, z: torch.Tensor) -> torch.Tensor:
        return _bn(z) if self.p.norm == "bn_before" else z

    def post(self, y: torch.Tensor) -> torch.Tensor:
        return _bn(y) if self.p.norm == "bn_after" else y


def block_outputs(
    block: str, x: torch.Tensor, d_out: int, acts: Sequence[Act], p: Protocol, gen: torch.Generator
) -> list[torch.Tensor]:
    """Outputs of ``b`` random blocks (one per activation) on ``x`` of shape ``(b, d_in, columns)``.

    Every activation sees the same weights. IB blocks use the activation at both activated
    positions (after the expansion and after the 3x3), a linear projection, BN after the
    projection when the protocol normalises, and ReXNet's partial shortcut (x added into the
    first d_in output channels); the output is taken after the shortcut.
    """
    b, d_in, cols = x.shape
    images = max(1, cols // (p.spatial * p.spatial))
    ops = _Ops(p, gen, b, images)
    if block in ("conv1x1", "conv3x3"):
        pre = ops.pre(ops.conv(x, ops.conv_weight(d_out, d_in, 1 if block == "conv1x1" else 3)))
        return [ops.post(f(pre)) for f in acts]
    hidden = max(d_in, int(round(p.expansion * d_in)))
    w1 = ops.conv_weight(hidden, d_in, 1)
    w2 = ops.conv_weight(hidden, hidden, 3) if block == "ib_conv" else ops.dw_weight(hidden, 3)
    w3 = ops.conv_weight(d_out, hidden, 1)
    pre1 = ops.pre(ops.conv(x, w1))
    outs = []
    for f in acts:
        a1 = ops.post(f(pre1))
        z2 = ops.conv(a1, w2) if block == "ib_conv" else ops.dwconv(a1, w2)
        out = ops.conv(ops.post(f(ops.pre(z2))), w3)
        if p.norm != "none":
            out = _bn(out)
        out[:, :d_in] += x
        outs.append(out)
    return outs


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
        block: One of :data:`rexnet.rank.protocols.BLOCKS`.
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
    result = {e: {a: torch.empty(networks, dtype=torch.float64) for a in activations} for e in ests}
    dims = torch.empty(networks, dtype=torch.float64)
    with torch.no_grad():
        for d in torch.unique(d_out_all).tolist():  # sorted: deterministic draw order
            idx = (d_out_all == d).nonzero().squeeze(1)
            b = idx.numel()
            d_in = max(1, int(round(ratio * d)))
            cols = math.ceil(p.n_mult * d)
            images = math.ceil(cols / (p.spatial * p.spatial))
            x = _input((b, d_in, images * p.spatial * p.spatial), p, gen)
            outs = torch.cat(block_outputs(block, x, d, fs, p, gen))
            s = singular_values(outs, p.svd_method)
            for e in ests:
                r = rank_from_singular_values(s, tuple(outs.shape[-2:]), e, p.torch_dtype) / d
                for i, a in enumerate(activations):
                    result[e][a][idx] = r[i * b:(i + 1) * b]
            dims[idx] = d_in / d
            if progress:
                progress(b)
    return result, dims
