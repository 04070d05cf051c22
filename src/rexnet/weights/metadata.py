"""Trusting nothing a checkpoint says about itself: plans, class counts and tensor types read from a file
are checked (and costed) before a model is built from them.

A crafted file's metadata can name a 30 M-channel plan (22 GB to build), a stride of 0, a string
where a number goes, or int8 tensors that PyTorch would silently cast into float weights. Each
gives a :class:`~rexnet.errors.CheckpointError` naming the file and the field, or a
:class:`~rexnet.errors.ResourceError` naming the parameters and the memory, before any work.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import Any

import torch

from .._memory import available_memory, check_inference_memory, inference_memory
from ..errors import CheckpointError, ResourceError
from ..plan import NetworkPlan
from ..plan.cost import count_params
from ..plan.spec import plan_from_dict

__all__ = ["MAX_CLASSES", "plan_from_metadata", "check_plan_cost", "check_int", "check_tensor_dtypes"]

#: The most classifier outputs a checkpoint may declare (ImageNet-21k has 21,841).
MAX_CLASSES = 1_000_000
_PLAN_KEYS = ("stem", "blocks", "final_conv", "head", "family", "params")
_COUNTS = ("in_channels", "out_channels", "exp_channels", "kernel_size", "stride", "se_channels", "hidden_channels")


def _show(v: Any) -> str:
    text = repr(v)
    return text if len(text) <= 80 else text[:77] + "..."


def check_int(value: Any, path: str | os.PathLike, field: str, lo: int = 1, hi: int | None = None) -> int:
    """``value`` if it is an integer in ``[lo, hi]``; else a :class:`CheckpointError` naming ``path`` and ``field``."""
    if not isinstance(value, int) or isinstance(value, bool) or value < lo or (hi is not None and value > hi):
        span = f"{lo}..{hi}" if hi is not None else f">= {lo}"
        raise CheckpointError(f"{path}: field '{field}' is {_show(value)}, expected an integer {span}")
    return value


def _check_specs(value: Mapping[str, Any], path: str | os.PathLike, field: str) -> None:
    """Every part of a plan dict is an object, and its channel counts, kernels and strides integers in range.

    Checked on the raw dict, before the dataclasses see it: they compare ``"abc" < 1`` and divide by a stride of 0.
    """
    blocks = value.get("blocks")
    if not isinstance(blocks, (list, tuple)) or not blocks:
        raise CheckpointError(f"{path}: field '{field}.blocks' is {_show(blocks)}, expected a non-empty list")
    parts = [("stem", value.get("stem")), *((f"blocks[{i}]", b) for i, b in enumerate(blocks))]
    parts += [("final_conv", value.get("final_conv")), ("head", value.get("head", {}))]
    for where, spec in parts:
        if not isinstance(spec, Mapping):
            raise CheckpointError(f"{path}: field '{field}.{where}' is {_show(spec)}, expected an object")
        for name in _COUNTS:
            if name in spec:
                lo = 0 if name in ("se_channels", "hidden_channels") else 1
                check_int(spec[name], path, f"{field}.{where}.{name}", lo)


def plan_from_metadata(value: Any, path: str | os.PathLike, field: str = "plan") -> NetworkPlan:
    """A :class:`NetworkPlan` from a checkpoint's metadata (a JSON string or a dict), validated but not costed.

    Raises:
        CheckpointError: Not JSON, not an object, unknown or missing keys, or values of the wrong
            type or range; the message names ``path`` and the field.
    """
    if isinstance(value, (str, bytes)):
        try:
            value = json.loads(value)
        except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as e:
            raise CheckpointError(f"{path}: metadata '{field}' is not JSON ({e})") from None
    if not isinstance(value, Mapping):
        raise CheckpointError(f"{path}: metadata '{field}' is a {type(value).__name__}, expected an object")
    unknown = sorted(set(map(str, value)) - set(_PLAN_KEYS))
    if unknown:
        raise CheckpointError(
            f"{path}: metadata '{field}' has unknown key(s) {', '.join(unknown)}; expected: {', '.join(_PLAN_KEYS)}"
        )
    _check_specs(value, path, field)
    try:
        plan = plan_from_dict(dict(value))
    except KeyError as e:
        raise CheckpointError(f"{path}: metadata '{field}' lacks {e}") from None
    except (TypeError, ValueError, AttributeError) as e:  # unknown keys, wrong types, values out of range
        raise CheckpointError(f"{path}: metadata '{field}' is not a valid plan: {e}") from None
    return plan


def check_plan_cost(
    plan: NetworkPlan, num_classes: int, image_size: int, path: str | os.PathLike, limit: float | None = None
) -> int:
    """Refuse to build ``plan`` when running it once would not fit in memory; its parameter count.

    Args:
        limit: Bytes allowed (default: 80 % of the memory available).

    Raises:
        ResourceError: The plan's parameters and activations (batch 1 at ``image_size``) exceed
            ``limit``; the message names the parameters and the memory.
        CheckpointError: A plan whose cost cannot be computed (e.g. a stride of 0).
    """
    check_int(num_classes, path, "num_classes", 0, MAX_CLASSES)
    check_int(image_size, path, "image_size", 1)
    try:
        params = count_params(plan, num_classes)
        est = inference_memory(plan, image_size, num_classes, 1)
        check_inference_memory(plan, image_size, num_classes, 1, limit=limit)
    except ResourceError:
        raise ResourceError(
            f"{path}: the network it records has {params:,} parameters ({params * 4 / 2**30:,.1f} GiB as float32) "
            f"and needs about {est.total / 2**30:,.1f} GiB of memory to run one {image_size}x{image_size} image, "
            f"more than the {available_memory() / 2**30:,.1f} GiB available; refusing to build it "
            "(a crafted or corrupt file?)"
        ) from None
    except (ZeroDivisionError, ValueError, TypeError) as e:
        raise CheckpointError(f"{path}: the recorded plan cannot be costed ({type(e).__name__}: {e})") from None
    return params


def check_tensor_dtypes(
    sd: Mapping[str, torch.Tensor], own: Mapping[str, torch.Tensor], label: str | os.PathLike
) -> None:
    """Refuse integer or bool tensors where the model has floating-point ones (PyTorch would cast them silently).

    Raises:
        CheckpointError: Names the first keys and their types.
    """
    bad = [
        f"{k} ({v.dtype})"
        for k, v in sd.items()
        if k in own and own[k].is_floating_point() and not v.is_floating_point()
    ]
    if bad:
        more = f" and {len(bad) - 5} more" if len(bad) > 5 else ""
        raise CheckpointError(
            f"{label}: {len(bad)} tensor(s) hold integers or booleans where the model has floating-point weights: "
            f"{', '.join(bad[:5])}{more}; a quantized or corrupt file? rexnet does not cast them to float"
        )
