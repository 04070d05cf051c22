"""Human-readable per-block tables of a plan (used by ``rexnet info``)."""

from __future__ import annotations

from typing import Any

from .cost import conv_out_size, layer_costs
from .spec import NetworkPlan

__all__ = ["plan_rows", "PLAN_COLUMNS"]

PLAN_COLUMNS = ("layer", "in", "exp", "out", "k", "s", "SE", "act", "shortcut", "res", "params", "MMACs")


def plan_rows(plan: NetworkPlan, image_size: int = 224, num_classes: int = 1000) -> list[tuple[Any, ...]]:
    """One row per layer: channels, kernel, stride, SE width, activations, shortcut, output
    resolution, parameters and MACs (millions)."""
    costs = {c.name: c for c in layer_costs(plan, image_size, num_classes)}
    rows: list[tuple[Any, ...]] = []
    s = plan.stem
    res = conv_out_size(image_size, s.kernel_size, s.stride)
    rows.append(
        (
            "stem",
            s.in_channels,
            "-",
            s.out_channels,
            s.kernel_size,
            s.stride,
            "-",
            s.act,
            "-",
            res,
            costs["stem"].params,
            costs["stem"].macs / 1e6,
        )
    )
    for i, b in enumerate(plan.blocks):
        res = conv_out_size(res, b.kernel_size, b.stride)
        act = f"{b.act_exp}/{b.act_dw}" if b.has_expansion else b.act_dw
        c = costs[f"block{i}"]
        rows.append(
            (
                f"block{i}",
                b.in_channels,
                b.exp_channels,
                b.out_channels,
                b.kernel_size,
                b.stride,
                b.se_channels or "-",
                act,
                "yes" if b.shortcut else "no",
                res,
                c.params,
                c.macs / 1e6,
            )
        )
    f = plan.final_conv
    c = costs["final_conv"]
    rows.append(("final_conv", f.in_channels, "-", f.out_channels, 1, 1, "-", f.act, "-", res, c.params, c.macs / 1e6))
    if "head_hidden" in costs:
        c = costs["head_hidden"]
        rows.append(
            (
                "head_hidden",
                f.out_channels,
                "-",
                plan.head.hidden_channels,
                1,
                1,
                "-",
                "relu6",
                "-",
                1,
                c.params,
                c.macs / 1e6,
            )
        )
    if "classifier" in costs:
        c = costs["classifier"]
        rows.append(
            (
                "classifier",
                plan.head.hidden_channels or f.out_channels,
                "-",
                num_classes,
                "-",
                "-",
                "-",
                "-",
                "-",
                1,
                c.params,
                c.macs / 1e6,
            )
        )
    return rows
