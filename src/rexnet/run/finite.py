"""Finite or failed: a run whose weights or losses hold NaN or infinity is stopped, never saved as a result."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch

from ..errors import DivergedError

__all__ = ["nonfinite_tensors", "check_finite", "is_finite"]


def nonfinite_tensors(tensors: Mapping[str, Any] | torch.nn.Module) -> list[str]:
    """Names of the floating-point tensors (parameters and buffers of a module) holding NaN or inf.

    Example:
        >>> nonfinite_tensors({"a": torch.ones(2), "b": torch.tensor([1.0, float("nan")]), "n": torch.tensor(3)})
        ['b']
    """
    if isinstance(tensors, torch.nn.Module):
        tensors = tensors.state_dict()
    return [
        k
        for k, v in tensors.items()
        if isinstance(v, torch.Tensor) and v.is_floating_point() and not bool(torch.isfinite(v).all())
    ]


def is_finite(value: Any) -> bool:
    """Whether a metric is a finite number (``None`` and non-numbers count as finite: nothing to check)."""
    return not isinstance(value, (int, float)) or math.isfinite(value)


def check_finite(where: str, weights: Mapping[str, Any] | torch.nn.Module | None = None, **metrics: Any) -> None:
    """Raise :class:`DivergedError` unless every weight and every named metric is finite.

    Args:
        where: When the check runs, for the message (``after epoch 3``).
        weights: A state dict or a module.
        **metrics: Numbers that must be finite (``val_loss=...``).

    Raises:
        DivergedError: Names the non-finite metrics and the first tensors.
    """
    bad = [f"{k} {v}" for k, v in metrics.items() if not is_finite(v)]
    names = nonfinite_tensors(weights) if weights is not None else []
    if names:
        more = f" and {len(names) - 3} more" if len(names) > 3 else ""
        bad.append(f"non-finite weights in {', '.join(names[:3])}{more}")
    if bad:
        raise DivergedError(
            f"the run diverged {where}: {'; '.join(bad)}. Nothing non-finite was saved; the last finite "
            "checkpoint is kept. Try a lower --lr, --clip-grad 1.0 or --amp none"
        )
