"""How :func:`~rexnet.deploy.export_model` checks a written file against eager PyTorch: inputs, comparison, limits.

An f32 file must reproduce the eval-mode model within 1e-3 (absolute, on the logits); a bf16 or
int8 file within a mean cosine similarity of 0.98 (int8 on calibration images only, whose
distribution its scales fit).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..errors import ExportError

__all__ = ["check_inputs", "compare_outputs", "verify_export"]


def check_inputs(in_chans: int, image_size: int, calib: list[torch.Tensor], precision: str) -> list[torch.Tensor]:
    """Two random batches of different shapes (plus calibration images); int8 is checked on calibration
    images only: its scales fit their distribution, and random-noise inputs fall outside them."""
    if precision == "int8":
        return [calib[0][:16], *calib[1:2]]
    g = torch.Generator().manual_seed(0)
    small = max(32, image_size // 2 + 1)
    inputs = [
        torch.randn(2, in_chans, image_size, image_size, generator=g),
        torch.randn(1, in_chans, small, small + 16, generator=g),
    ]
    return inputs + [calib[0][:16]] if calib else inputs


def compare_outputs(fn: Any, model: nn.Module, inputs: list[torch.Tensor]) -> tuple[float, float, float, float]:
    """``(max |diff|, min cosine, mean cosine, top-1 agreement)`` of ``fn`` vs eager ``model`` over ``inputs``."""
    diff, cos, cos_sum, agree, n = 0.0, 1.0, 0.0, 0, 0
    with torch.inference_mode():
        for x in inputs:
            ref, out = model(x).float(), fn(x).float()
            diff = max(diff, float((out - ref).abs().max()))
            c = torch.nn.functional.cosine_similarity(out, ref, dim=1)
            cos, cos_sum = min(cos, float(c.min())), cos_sum + float(c.sum())
            agree += int((out.argmax(1) == ref.argmax(1)).sum())
            n += len(x)
    return diff, cos, cos_sum / n, agree / n


def verify_export(
    path: Path, fn: Any, model: nn.Module, inputs: list[torch.Tensor], precision: str
) -> tuple[float, float, float]:
    """``(max |diff|, min cosine, top-1 agreement)`` of the written file vs eager; raises when too far apart."""
    diff, cos, cos_mean, agree = compare_outputs(fn, model, inputs)
    if precision == "f32" and diff > 1e-3:
        raise ExportError(f"{path}: exported outputs differ from PyTorch by {diff:.3g} (> 1e-3)")
    if precision != "f32" and cos_mean < 0.98:
        raise ExportError(f"{path}: {precision} logits too far from PyTorch (mean cosine {cos_mean:.4f} < 0.98)")
    return diff, cos, agree
