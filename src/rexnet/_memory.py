"""Memory guards: estimate what training a plan needs and refuse it before it is built.

The estimate is deliberately simple and errs high: parameters x 4 copies (weights, gradients,
SGD momentum, one spare for EMA or optimizer temporaries) plus the activations autograd keeps
for the backward pass (each conv output, its BN output and its activation output, per image).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import ResourceError
from .plan import NetworkPlan
from .plan.cost import conv_out_size, plan_cost

__all__ = [
    "check_memory",
    "MemoryEstimate",
    "training_memory",
    "inference_memory",
    "available_memory",
    "check_training_memory",
    "check_inference_memory",
    "check_model_inference",
]

_BYTES = 4  # float32
_PARAM_COPIES = 4
# Refuse above this share of the available memory: the data, the interpreter and torch need the rest.
_SHARE = 0.8


@dataclass(frozen=True)
class MemoryEstimate:
    """Bytes to train one plan: ``params`` (weights + gradients + optimizer state) and ``activations``."""

    params: int
    activations: int

    @property
    def total(self) -> int:
        return self.params + self.activations


def training_memory(plan: NetworkPlan, image_size: int, num_classes: int, batch_size: int) -> MemoryEstimate:
    """Estimated bytes to train ``plan`` at ``image_size`` with ``batch_size`` images per step (float32)."""
    h = w = image_size
    s = plan.stem
    h, w = conv_out_size(h, s.kernel_size, s.stride), conv_out_size(w, s.kernel_size, s.stride)
    elems = 3 * s.out_channels * h * w  # conv, BN, activation outputs
    for b in plan.blocks:
        if b.has_expansion:
            elems += 3 * b.exp_channels * h * w
        h, w = conv_out_size(h, b.kernel_size, b.stride), conv_out_size(w, b.kernel_size, b.stride)
        elems += 3 * b.exp_channels * h * w + 2 * b.out_channels * h * w
    elems += 3 * plan.final_conv.out_channels * h * w
    params = plan_cost(plan, image_size, num_classes).params
    return MemoryEstimate(params * _BYTES * _PARAM_COPIES, elems * batch_size * _BYTES)


def inference_memory(plan: NetworkPlan, image_size: int, num_classes: int, batch_size: int) -> MemoryEstimate:
    """Estimated bytes to run ``plan`` forward (no autograd) on ``batch_size`` images (float32).

    Without autograd only a few tensors live at once; the estimate takes, for the widest point of
    the network, a block's input, its expanded tensor at input and output resolution, and its
    output (errs high: it also counts the parameters once more for a fused or exported copy).
    """
    h = w = image_size
    s = plan.stem
    h, w = conv_out_size(h, s.kernel_size, s.stride), conv_out_size(w, s.kernel_size, s.stride)
    peak = 4 * s.out_channels * h * w  # input image, conv, BN and activation outputs at most
    c_in = s.out_channels
    for b in plan.blocks:
        h2, w2 = conv_out_size(h, b.kernel_size, b.stride), conv_out_size(w, b.kernel_size, b.stride)
        live = c_in * h * w + 2 * b.exp_channels * h * w + (b.exp_channels + b.out_channels) * h2 * w2
        peak = max(peak, live)
        h, w, c_in = h2, w2, b.out_channels
    peak = max(peak, c_in * h * w + 2 * plan.final_conv.out_channels * h * w)
    params = plan_cost(plan, image_size, num_classes).params
    return MemoryEstimate(params * _BYTES * 2, peak * batch_size * _BYTES)


def available_memory() -> int:
    """Bytes this process can still allocate: ``MemAvailable``, capped by a cgroup limit if one is set."""
    avail = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                avail = int(line.split()[1]) * 1024
    except OSError:
        pass
    if avail is None:
        try:
            avail = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (ValueError, OSError, AttributeError):
            avail = 1 << 62  # unknown: do not refuse
    try:
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        used = int(Path("/sys/fs/cgroup/memory.current").read_text())
        if limit != "max":
            avail = min(avail, max(0, int(limit) - used))
    except (OSError, ValueError):
        pass
    return avail


def check_memory(
    plan: NetworkPlan,
    image_size: int,
    num_classes: int,
    batch_size: int,
    limit: float | None = None,
    what: str = "network",
    *,
    training: bool,
) -> MemoryEstimate:
    """Refuse to train (or run) ``plan`` on ``batch_size`` images when it would not fit in memory.

    Args:
        training: Count parameters, gradients, optimizer state and the activations autograd keeps;
            else a forward pass without autograd.
        limit: Bytes allowed; default 80 % of :func:`available_memory`.
        what: How to name the plan in the message.

    Raises:
        ResourceError: The estimate exceeds ``limit``; the message gives the parts of the estimate
            and the memory available.
    """
    gib, at = 2**30, f"batch {batch_size}, {image_size}x{image_size}"
    if training:
        est = training_memory(plan, image_size, num_classes, batch_size)
        params = plan_cost(plan, image_size, num_classes).params
        need = (
            f"{what} ({params / 1e6:,.1f} M parameters) needs about {est.total / gib:,.1f} GiB to train "
            f"({est.params / gib:,.1f} GiB parameters + gradients + optimizer state, {est.activations / gib:,.1f} "
            f"GiB activations at {at})"
        )
        fix = "budget, the batch size or the image size"
    else:
        est = inference_memory(plan, image_size, num_classes, batch_size)
        need = (
            f"{what} at {image_size}x{image_size}, batch {batch_size}, needs about {est.total / gib:,.1f} GiB "
            f"({est.activations / gib:,.1f} GiB of activations)"
        )
        fix = "image size or the batch size"
    allowed = _SHARE * available_memory() if limit is None else float(limit)
    if est.total > allowed:
        raise ResourceError(f"{need} but only {allowed / gib:,.1f} GiB are available; lower the {fix}")
    return est


def check_training_memory(*args: Any, **kwargs: Any) -> MemoryEstimate:
    """:func:`check_memory` for training (its arguments, without ``training``)."""
    return check_memory(*args, training=True, **kwargs)


def check_inference_memory(*args: Any, **kwargs: Any) -> MemoryEstimate:
    """:func:`check_memory` for a forward pass without autograd (its arguments, without ``training``)."""
    return check_memory(*args, training=False, **kwargs)


def check_model_inference(model: object, image_size: int, batch_size: int, what: str | None = None) -> None:
    """:func:`check_inference_memory` for a built model that carries its plan (ours); other models pass."""
    plan = getattr(model, "plan", None)
    if isinstance(plan, NetworkPlan):
        name = what or getattr(model, "model_name", None) or "model"
        check_inference_memory(plan, image_size, int(getattr(model, "num_classes", 1000)), batch_size, what=name)
