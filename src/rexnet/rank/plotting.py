"""Figures: the study's Figure 1 and the profiler's rank/spectrum plot (matplotlib, Agg backend)."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

from .._files import write_figure
from ..plan.spec import ACTIVATIONS
from .blocks import BLOCK_KINDS

__all__ = ["plot_study", "plot_profile"]


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def _paper_overlay(ax: Any, block: str, acts: Sequence[str], colors: Mapping[str, Any]) -> bool:
    """Draw the paper's by-eye readings (rexnet.rank.paper) on one panel; True if any were drawn."""
    from .paper import PAPER_FIG1

    panel = PAPER_FIG1.get(block, {})
    bands = {a: panel[a] for a in acts if a in panel}
    if not bands:
        return False
    if len({id(v) for v in bands.values()}) == 1:  # one band for every nonlinearity (the IB panels)
        items = [("paper (all nonlinearities)", next(iter(bands.values())), "0.35")]
    else:
        items = [(None, v, colors.get(a, "0.35")) for a, v in bands.items()]
    for label, readings, color in items:
        xs = sorted(readings)
        lo = [readings[x][0] for x in xs]
        hi = [readings[x][1] for x in xs]
        ax.vlines(xs, [v - 0.004 for v in lo], [v + 0.004 for v in hi], colors=color, lw=5, alpha=0.35, label=label)
        if label is None:  # per-activation readings are short: mark their middle too
            ax.scatter(xs, [(a + b) / 2 for a, b in zip(lo, hi)], marker="_", s=90, color=color, linewidths=2)
    return True


def plot_study(
    rows: Sequence[Any],
    path: str | os.PathLike,
    title: str | None = None,
    panel_notes: Mapping[str, str] | None = None,
    paper: bool = True,
) -> None:
    """Draw Figure 1: one panel per block, one curve per activation, the identity diagonal dashed.

    Args:
        rows: :class:`rexnet.rank.study.StudyRow` objects (any objects with the CSV fields).
        path: PNG to write.
        title: Figure title.
        panel_notes: ``{block: text}`` added under a panel's title (protocol, RMS residual).
        paper: Overlay the paper's by-eye readings as translucent bars (the activation's colour;
            grey where one band was read for all nonlinearities).
    """
    plt = _pyplot()
    blocks = list(dict.fromkeys(r.block for r in rows))
    acts = list(dict.fromkeys(r.activation for r in rows))
    fig, axes = plt.subplots(1, len(blocks), figsize=(4.2 * len(blocks), 4.3), squeeze=False)
    for ax, b in zip(axes[0], blocks):
        ax.plot([0, 1], [0, 1], color="0.8", lw=0.8, ls=":")
        colors = {}
        for a in acts:
            pts = sorted((r.ratio, r.rank_ratio_mean) for r in rows if r.block == b and r.activation == a)
            if not pts:
                continue
            xs, ys = zip(*pts)
            style = {"ls": "--", "color": "k"} if a == "identity" else {"marker": "o", "ms": 3}
            (line,) = ax.plot(xs, ys, label=ACTIVATIONS[a].label if a in ACTIVATIONS else a, lw=1.2, **style)
            colors[a] = line.get_color()
        if paper:
            _paper_overlay(ax, b, [a for a in acts if a != "identity"], colors)
        note = (panel_notes or {}).get(b)
        ax.set_title((BLOCK_KINDS[b].title if b in BLOCK_KINDS else b) + (f"\n{note}" if note else ""), fontsize=10)
        ax.set_xlabel("dimension ratio d_in / d_out")
        ax.set_ylim(0, 1.05)
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("rank ratio rank / d_out")
    axes[0][-1].legend(fontsize=7, loc="lower right")
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    try:
        write_figure(fig, path, dpi=90, what="rank study figure")
    finally:
        plt.close(fig)


def plot_profile(
    profiles: Mapping[str, Sequence[Any]], path: str | os.PathLike, spectra: Mapping[str, Any] | None = None
) -> None:
    """Per-layer rank ratio of one or more models, and the cumulative normalized spectrum of their last layer.

    Args:
        profiles: ``{model label: [ProfileRow, ...]}``.
        path: PNG to write.
        spectra: ``{model label: 1-D tensor/array of the last hooked layer's singular values}``;
            drawn as the paper's cumulative plot of normalized singular values.
    """
    plt = _pyplot()
    n = 2 if spectra else 1
    fig, axes = plt.subplots(1, n, figsize=(6 * n, 4), squeeze=False)
    ax = axes[0][0]
    for label, rows in profiles.items():
        ax.plot(range(len(rows)), [r.rank_ratio for r in rows], marker="o", ms=3, label=label)
    ax.set_xlabel("hooked layer (forward order)")
    ax.set_ylabel("rank / channels")
    ax.set_ylim(0, 1.05)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    if spectra:
        ax = axes[0][1]
        for label, s in spectra.items():
            vals = sorted(float(v) for v in s)
            top = max(vals[-1], 1e-30)
            xs = [v / top for v in vals]
            ys = [(i + 1) / len(vals) for i in range(len(vals))]
            ax.step(xs, ys, where="post", label=label)
        ax.set_xscale("log")
        ax.set_xlabel("normalized singular value s / s_max (last layer)")
        ax.set_ylabel("cumulative fraction")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    try:
        write_figure(fig, path, dpi=110, what="rank profile figure")
    finally:
        plt.close(fig)
