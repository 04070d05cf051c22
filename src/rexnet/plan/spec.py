"""Frozen dataclasses describing a network as data: the channel plan.

A plan says everything about a network's shape (channels, strides, kernels, SE, activations,
shortcuts) and nothing about its weights. Models are built from plans; costs are computed
from plans. Nothing here imports torch.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, NamedTuple

from ..errors import InputError

__all__ = ["ConvSpec", "BlockSpec", "HeadSpec", "NetworkPlan", "ACTIVATIONS", "Activation"]


class Activation(NamedTuple):
    """A nonlinearity a plan may name: the ``torch.nn`` class that implements it and its label in figures."""

    module: str
    label: str


#: The one list of activations: plans validate against it, ``rexnet.layers.make_activation`` builds the
#: ``torch.nn`` module it names, and the rank study and its figures read names and labels from it.
ACTIVATIONS: dict[str, Activation] = {
    "identity": Activation("Identity", "Linear"),
    "relu": Activation("ReLU", "ReLU"),
    "relu6": Activation("ReLU6", "ReLU6"),
    "silu": Activation("SiLU", "SiLU"),
    "hardswish": Activation("Hardswish", "HSwish"),
    "leaky_relu": Activation("LeakyReLU", "LeakyReLU"),
    "elu": Activation("ELU", "ELU"),
    "softplus": Activation("Softplus", "SoftPlus"),
    "gelu": Activation("GELU", "GELU"),
}


def _check_act(name: str, where: str) -> None:
    if name not in ACTIVATIONS:
        raise InputError(f"{where}: unknown activation {name!r}; expected one of: {', '.join(ACTIVATIONS)}")


@dataclass(frozen=True)
class ConvSpec:
    """A conv -> BN -> activation unit (the stem and the penultimate 1x1 conv)."""

    in_channels: int
    out_channels: int
    kernel_size: int = 1
    stride: int = 1
    act: str = "silu"

    def __post_init__(self) -> None:
        if self.in_channels < 1 or self.out_channels < 1:
            raise InputError(f"ConvSpec channels must be >= 1, got {self.in_channels} -> {self.out_channels}")
        _check_act(self.act, "ConvSpec")


@dataclass(frozen=True)
class BlockSpec:
    """One inverted bottleneck ("LinearBottleneck" in the official code).

    Order inside the block: [1x1 expand -> BN -> ``act_exp``] -> kxk depthwise -> BN ->
    [SE] -> ``act_dw`` -> 1x1 project -> BN (linear) -> [+ partial identity shortcut].

    Attributes:
        in_channels: Input channels.
        exp_channels: Channels of the depthwise conv; equal to ``in_channels`` when the
            block has no expansion conv (expansion ratio 1).
        out_channels: Output channels.
        stride: Depthwise stride.
        kernel_size: Depthwise kernel size.
        se_channels: Hidden width of the squeeze-excitation module; 0 means no SE.
        act_exp: Activation after the expansion conv.
        act_dw: Activation after the depthwise conv (and SE).
        shortcut: Whether the input is added into the first ``in_channels`` outputs.
    """

    in_channels: int
    exp_channels: int
    out_channels: int
    stride: int = 1
    kernel_size: int = 3
    se_channels: int = 0
    act_exp: str = "silu"
    act_dw: str = "relu6"
    shortcut: bool = False

    def __post_init__(self) -> None:
        for name in ("in_channels", "exp_channels", "out_channels", "stride", "kernel_size"):
            if getattr(self, name) < 1:
                raise InputError(f"BlockSpec.{name} must be >= 1, got {getattr(self, name)}")
        if self.se_channels < 0:
            raise InputError(f"BlockSpec.se_channels must be >= 0, got {self.se_channels}")
        if self.shortcut and (self.stride != 1 or self.in_channels > self.out_channels):
            raise InputError(
                "BlockSpec: a shortcut needs stride 1 and in_channels <= out_channels, "
                f"got stride={self.stride}, {self.in_channels} -> {self.out_channels}"
            )
        _check_act(self.act_exp, "BlockSpec.act_exp")
        _check_act(self.act_dw, "BlockSpec.act_dw")

    @property
    def has_expansion(self) -> bool:
        return self.exp_channels != self.in_channels

    @property
    def expansion_ratio(self) -> float:
        return self.exp_channels / self.in_channels


@dataclass(frozen=True)
class HeadSpec:
    """Classifier head after global pooling.

    ``hidden_channels`` > 0 adds ReXNet-lite's 1x1 conv (bias) -> BN -> ReLU6 before the
    dropout and the classifier.
    """

    hidden_channels: int = 0
    dropout: float = 0.2

    def __post_init__(self) -> None:
        if not 0.0 <= self.dropout < 1.0:
            raise InputError(f"HeadSpec.dropout must be in [0, 1), got {self.dropout}")


@dataclass(frozen=True)
class NetworkPlan:
    """A whole network: stem, blocks, penultimate conv and head.

    ``family`` and ``params`` record where the plan came from (for checkpoints and
    reports); they do not change the network.
    """

    stem: ConvSpec
    blocks: tuple[BlockSpec, ...]
    final_conv: ConvSpec
    head: HeadSpec = field(default_factory=HeadSpec)
    family: str = "custom"
    params: tuple[tuple[str, Any], ...] = ()

    def __post_init__(self) -> None:
        if not self.blocks:
            raise InputError("NetworkPlan needs at least one block")
        prev = self.stem.out_channels
        for i, b in enumerate(self.blocks):
            if b.in_channels != prev:
                raise InputError(f"NetworkPlan: block {i} takes {b.in_channels} channels but receives {prev}")
            prev = b.out_channels
        if self.final_conv.in_channels != prev:
            raise InputError(f"NetworkPlan: final conv takes {self.final_conv.in_channels} channels, receives {prev}")

    @property
    def out_channels(self) -> tuple[int, ...]:
        """Block output channels c_0 .. c_{n-1}."""
        return tuple(b.out_channels for b in self.blocks)

    @property
    def num_features(self) -> int:
        """Channels entering the classifier head."""
        return self.final_conv.out_channels

    def feature_taps(self) -> list[tuple[int, int, int]]:
        """Where the multi-scale feature maps are taken.

        Returns:
            ``(block_index, channels, reduction)`` for the last block at each resolution;
            block index -1 means the stem.
        """
        taps = []
        reduction = self.stem.stride
        for i, b in enumerate(self.blocks):
            if b.stride > 1:
                prev_ch = self.stem.out_channels if i == 0 else self.blocks[i - 1].out_channels
                taps.append((i - 1, prev_ch, reduction))
                reduction *= b.stride
        taps.append((len(self.blocks) - 1, self.blocks[-1].out_channels, reduction))
        return taps

    def to_dict(self) -> dict[str, Any]:
        """A JSON-friendly dict; :func:`plan_from_dict` inverts it."""
        d = asdict(self)
        d["params"] = dict(self.params)
        return d


def plan_from_dict(d: dict[str, Any]) -> NetworkPlan:
    """Rebuild a :class:`NetworkPlan` from :meth:`NetworkPlan.to_dict` output.

    Raises:
        InputError: ``d`` is not such a dict (a missing or unknown key, a value of the wrong type);
            plans come from checkpoint and sidecar metadata, which a user may hand in.
    """
    if not isinstance(d, dict):
        raise InputError(f"plan metadata must be a JSON object, got {type(d).__name__}")
    try:
        return NetworkPlan(
            stem=ConvSpec(**d["stem"]),
            blocks=tuple(BlockSpec(**b) for b in d["blocks"]),
            final_conv=ConvSpec(**d["final_conv"]),
            head=HeadSpec(**d.get("head", {})),
            family=str(d.get("family", "custom")),
            params=tuple(sorted(dict(d.get("params", {})).items())),
        )
    except KeyError as e:
        raise InputError(f"plan metadata lacks the key {e.args[0]!r}") from None
    except TypeError as e:  # an unknown key, a list instead of an object, or "3" where 3 is meant
        raise InputError(f"bad plan metadata: {e}") from None
