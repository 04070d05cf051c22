"""The random-layer study's protocol: every unknown of the paper's Figure 1 as a parameter.

The paper (CVPR'21 Sec. 3, Fig. 1) fixes the four block types, the eight nonlinearities, the
dimension ratios and the 1,000 networks per point; it leaves the input distribution, weight
init, normalisation placement, d_out range, N, spatial size and, above all, the rank
estimator unstated. :class:`Protocol` holds them all; :data:`PRESETS` names the protocols of
``shared/reference/rank-protocol.md`` (P1 "as stated" ... P4 "best match").
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import torch
from torch import nn

from .._config import Config
from ..errors import ConfigError, InputError
from ..layers import make_activation
from ..plan.spec import ACTIVATIONS
from .estimators import parse_estimator

__all__ = [
    "PAPER_ACTIVATIONS",
    "INPUTS",
    "INITS",
    "NORMS",
    "Protocol",
    "PRESETS",
    "get_protocol",
    "preset_name",
    "resolve_activation",
    "check_ratios",
]

#: The paper's nonlinearities, in its legend order (identity is "Linear").
PAPER_ACTIVATIONS = ("identity", "relu6", "relu", "leaky_relu", "elu", "softplus", "hardswish", "silu")
INPUTS = ("uniform01", "gaussian", "relu_gaussian")
INITS = ("normal", "he_normal", "pytorch_default")
NORMS = ("none", "bn_before", "bn_after")
#: Widest layer a protocol may draw (the rank of a wider matrix costs minutes per network).
MAX_WIDTH = 1 << 14


@dataclass(frozen=True)
class Protocol(Config):
    """How random networks are drawn and how their rank is read.

    Attributes:
        input: Distribution of X: ``uniform01`` (U[0,1), image-like), ``gaussian`` N(0,1) or
            ``relu_gaussian`` ReLU(N(0,1)).
        init: Weights: ``normal`` N(0,1), ``he_normal`` N(0, 2/fan_in) or ``pytorch_default``
            U(+-1/sqrt(fan_in)). A 3x3 conv's fan_in is 9*d_in even at spatial size 1.
        norm: ``none`` (equal to eval-mode BN at init), ``bn_before`` (train-mode BN, i.e.
            per-channel standardisation over the N samples, before f) or ``bn_after`` (after f).
        estimator: Rank estimator spec (:mod:`rexnet.rank.estimators`).
        dtype: ``float32`` or ``float64``: the forward pass and the ``matrix_rank`` epsilon.
        svd_method: ``inertia`` (threshold estimators counted without a spectrum,
            :func:`rexnet.rank.estimators.threshold_ranks`; other estimators as ``gram``), ``gram``
            (eigenvalues of the fp64 Gram matrix) or ``svd`` (fp32 ``svdvals``); see
            :func:`rexnet.rank.estimators.singular_values`.
        d_out_min: Smallest d_out (inclusive); d_out ~ U{d_out_min..d_out_max}.
        d_out_max: Largest d_out (inclusive).
        n_mult: Columns of the feature matrix, N = ceil(n_mult * d_out) (the paper: N > d_out).
        expansion: IB expansion ratio t (hidden width round(t*d_in), at least d_in).
        expansion_max: ``None`` (every IB uses ``expansion``) or the upper end of a per-network
            draw t ~ U[expansion, expansion_max] (continuous; hidden width rounded).
        shortcut: Whether an IB adds ReXNet's partial identity shortcut (x into the first d_in
            output channels).
        spatial: Feature-map side. 1 means vectors: a 3x3 conv is its centre tap and a
            depthwise conv a per-channel scale. Above 1, convs are real (zero padding) and a
            C x (images*H*W) matrix is ranked, with images = ceil(N / spatial**2); then a linear
            3x3 conv has rank up to 9*d_in, so panel (b) loses its diagonal.
        leaky_slope: LeakyReLU negative slope.
    """

    kind = "protocol option"

    input: Literal["uniform01", "gaussian", "relu_gaussian"] = field(
        default="uniform01", metadata={"help": "distribution of X"}
    )
    init: Literal["normal", "he_normal", "pytorch_default"] = field(default="normal", metadata={"help": "weights"})
    norm: Literal["none", "bn_before", "bn_after"] = field(default="none", metadata={"help": "BN placement"})
    estimator: str = field(default="matrix_rank", metadata={"help": "rank estimator (rexnet.rank.estimators)"})
    dtype: Literal["float32", "float64"] = field(default="float32", metadata={"help": "forward-pass precision"})
    svd_method: Literal["svd", "gram", "inertia"] = field(default="inertia", metadata={"help": "how ranks are read"})
    d_out_min: int = field(default=32, metadata={"help": "smallest d_out (inclusive)", "min": 1, "max": MAX_WIDTH})
    d_out_max: int = field(default=128, metadata={"help": "largest d_out (inclusive)", "min": 1, "max": MAX_WIDTH})
    n_mult: float = field(
        default=2.0, metadata={"help": "columns N = ceil(n_mult * d_out) (the paper: N > d_out)", "gt": 1, "max": 1000}
    )
    expansion: float = field(default=6.0, metadata={"help": "IB expansion ratio t", "min": 1, "max": 64})
    expansion_max: float | None = field(
        default=None, metadata={"help": "upper end of a per-network t ~ U[expansion, this]", "min": 1, "max": 64}
    )
    shortcut: bool = field(default=True, metadata={"help": "IB partial identity shortcut"})
    spatial: int = field(default=1, metadata={"help": "feature-map side (1: vectors)", "min": 1, "max": 1024})
    leaky_slope: float = field(default=0.01, metadata={"help": "LeakyReLU negative slope", "min": 0, "max": 1})

    def validate(self) -> None:
        parse_estimator(self.estimator)
        if self.d_out_min > self.d_out_max:
            raise ConfigError(f"need d_out_min <= d_out_max, got {self.d_out_min}..{self.d_out_max}")
        if self.expansion_max is not None and self.expansion_max < self.expansion:
            raise ConfigError(f"expansion_max must be >= expansion ({self.expansion}), got {self.expansion_max}")

    @property
    def torch_dtype(self) -> torch.dtype:
        return torch.float64 if self.dtype == "float64" else torch.float32


#: Named protocols (rank-protocol.md). ``default`` is the library default (P4 with d_out 32..128).
#: The inverted-bottleneck presets (rank-protocol.md, "Second round") change only what the IB
#: panels need; docs/rank_study.md gives each one's residual per panel and what it breaks.
PRESETS: dict[str, Protocol] = {
    "default": Protocol(),
    "P1": Protocol(input="gaussian", init="he_normal", norm="bn_before"),
    "P2": Protocol(input="uniform01", init="pytorch_default", norm="none"),
    "P3": Protocol(input="uniform01", init="he_normal", norm="bn_after"),
    "P4": Protocol(input="uniform01", init="normal", norm="none"),
    "P4_wide": Protocol(input="uniform01", init="normal", norm="none", d_out_max=256),
    # IB-conv preset: the default with IB expansion t = 2; conv panels unchanged
    "ib_t2": Protocol(expansion=2.0),
    # expansion drawn per network, t ~ U[1, 6], and no shortcut
    "ib_trand": Protocol(expansion=1.0, expansion_max=6.0, shortcut=False),
    # IB-only: centred Gaussian input, t = 3, loose relative threshold; breaks the conv panels
    "ib_loose": Protocol(input="gaussian", expansion=3.0, estimator="rtol:1e-2"),
}


def get_protocol(name_or_options: str | Protocol | dict[str, Any] | None = None, **overrides: Any) -> Protocol:
    """A :class:`Protocol` from a preset name, a dict of options or a protocol, plus overrides.

    Raises:
        InputError: An unknown preset or option.
    """
    if name_or_options is None:
        base = PRESETS["default"]
    elif isinstance(name_or_options, Protocol):
        base = name_or_options
    elif isinstance(name_or_options, dict):
        base = PRESETS["default"].replace(**name_or_options)
    elif name_or_options in PRESETS:
        base = PRESETS[name_or_options]
    else:
        raise InputError(f"unknown protocol preset {name_or_options!r}; expected one of: {', '.join(PRESETS)}")
    return base.replace(**overrides) if overrides else base


def preset_name(protocol: Protocol) -> str:
    """The first preset equal to ``protocol`` (``default`` before ``P4``), or ``"custom"``."""
    return next((name for name, p in PRESETS.items() if p == protocol), "custom")


def resolve_activation(name: str, leaky_slope: float = 0.01) -> nn.Module:
    """An activation module: one of rexnet's names or any ``torch.nn`` activation class name.

    Example:
        >>> resolve_activation("silu"), resolve_activation("Mish")
        (SiLU(), Mish())

    Raises:
        InputError: The name is neither, listing the valid names.
    """
    if name == "leaky_relu":
        return nn.LeakyReLU(leaky_slope)
    if name in ACTIVATIONS:
        return make_activation(name)
    cls = getattr(nn.modules.activation, name, None)
    # only classes defined there: the module also imports Module, Parameter, ...
    if isinstance(cls, type) and issubclass(cls, nn.Module) and cls.__module__ == nn.modules.activation.__name__:
        try:
            return cls()
        except TypeError as e:
            raise InputError(f"activation {name!r} needs arguments and cannot be used by name ({e})") from None
    raise InputError(
        f"unknown activation {name!r}; expected one of: {', '.join(ACTIVATIONS)}, "
        "or a torch.nn activation class name such as Mish, GELU, Tanh"
    )


def check_ratios(ratios: list[float] | tuple[float, ...]) -> tuple[float, ...]:
    """Validate dimension ratios d_in/d_out: each must be in (0, 1].

    Raises:
        InputError: A ratio outside (0, 1], or none at all.
    """
    if not ratios:
        raise InputError("no dimension ratio given; expected values in (0, 1]")
    for r in ratios:
        if not 0.0 < float(r) <= 1.0:
            raise InputError(f"dimension ratio d_in/d_out must be in (0, 1], got {r}")
    return tuple(float(r) for r in ratios)
