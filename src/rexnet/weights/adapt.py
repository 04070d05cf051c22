"""Fitting a full checkpoint to a changed model: absent backbone modules, another class count, other input channels."""

import logging
import math

import torch

from ..errors import CheckpointError
from ..plan.spec import NetworkPlan
from .layouts import module_map

__all__ = ["adapt_input_conv", "absent_module_keys", "CLASSIFIER_KEYS", "FIRST_CONV_KEY"]

_log = logging.getLogger(__name__)

CLASSIFIER_KEYS = ("classifier.weight", "classifier.bias")
FIRST_CONV_KEY = "stem.conv.weight"


def adapt_input_conv(in_chans: int, weight: torch.Tensor) -> torch.Tensor:
    """First-conv weights for ``in_chans`` input channels from weights trained on ``weight.shape[1]``.

    timm's rule: one channel sums the pretrained channels (a grey image then gives the response a
    grey RGB image gave); more channels repeat the pretrained ones cyclically and scale by
    ``old / new`` so the summed response keeps its magnitude.

    Args:
        in_chans: The new channel count.
        weight: A conv weight, ``(out, in, kh, kw)``.

    Raises:
        ValueError: A non-4D weight or ``in_chans < 1``.
    """
    if weight.ndim != 4:
        raise CheckpointError(f"expected a 4-D conv weight, got shape {tuple(weight.shape)}")
    if in_chans < 1:
        raise CheckpointError(f"in_chans must be >= 1, got {in_chans}")
    base = weight.shape[1]
    if in_chans == base:
        return weight
    dtype = weight.dtype
    w = weight.float()  # half-precision sums on CPU are lossy (and unsupported on old torch)
    if in_chans == 1:
        w = w.sum(dim=1, keepdim=True)
    else:
        w = w.repeat(1, math.ceil(in_chans / base), 1, 1)[:, :in_chans] * (base / in_chans)
    return w.to(dtype)


def absent_module_keys(plan: NetworkPlan, own_keys: set[str]) -> set[str]:
    """Keys the full network of ``plan`` has but a model with ``own_keys`` lacks.

    A ``features_only`` backbone or a pruned model lacks the head, the final conv and the
    blocks after its last level; a checkpoint's tensors for those have nowhere to go and are
    skipped, while any other unexpected key is still an error.
    """
    return set(module_map(plan, "ours", num_classes=1)) - own_keys


def summarize_keys(keys: list[str]) -> str:
    """``blocks.5-15, final_conv, classifier`` for a list of tensor keys (for log lines)."""
    blocks: list[int] = []
    others: list[str] = []
    for k in keys:
        parts = k.split(".")
        if parts[0] == "blocks" and parts[1].isdigit():
            if int(parts[1]) not in blocks:
                blocks.append(int(parts[1]))
        elif parts[0] not in others:
            others.append(parts[0])
    out = []
    if blocks:
        lo, hi = min(blocks), max(blocks)
        out.append(f"blocks.{lo}" if lo == hi else f"blocks.{lo}-{hi}")
    return ", ".join(out + others)
