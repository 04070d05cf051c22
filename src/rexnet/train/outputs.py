"""The classification run's figures: ``curves.png`` and the confusion-matrix plot.

The run folder's files themselves (``config.json``, ``metrics.jsonl``, ``summary.json``, checkpoints)
are written by :class:`rexnet.run.Run`; :func:`write_json` is :func:`rexnet._files.write_json`.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from typing import Any

from .._files import write_json

__all__ = ["write_json", "plot_curves", "plot_confusion", "METRIC_KEYS"]

log = logging.getLogger(__name__)

METRIC_KEYS = ("epoch", "lr", "train_loss", "val_loss", "val_top1", "val_top5", "images_per_sec", "seconds")


def plot_curves(history: Sequence[dict[str, Any]], path: str | os.PathLike) -> None:
    """Loss and accuracy against epoch."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ep = [m["epoch"] for m in history]
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 4))
    a.plot(ep, [m["train_loss"] for m in history], "o-", label="train")
    a.plot(ep, [m["val_loss"] for m in history], "o-", label="val")
    a.set(xlabel="epoch", ylabel="loss", title="loss")
    a.legend()
    b.plot(ep, [m["val_top1"] for m in history], "o-", label="val top-1")
    b.plot(ep, [m["val_top5"] for m in history], "o-", label="val top-5")
    if "val_top1_ema" in history[0]:
        b.plot(ep, [m["val_top1_ema"] for m in history], "o--", label="val top-1 (EMA)")
    b.set(xlabel="epoch", ylabel="accuracy (%)", title="accuracy")
    b.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_confusion(confusion: Sequence[Sequence[int]], class_names: Sequence[str], path: str | os.PathLike) -> None:
    """Confusion-matrix image (rows = true class, columns = predicted)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    m = np.asarray(confusion)
    k = len(m)
    size = min(20, 2 + 0.45 * k)
    fig, ax = plt.subplots(figsize=(size, size))
    ax.imshow(m, cmap="Blues")
    if k <= 30:
        ax.set_xticks(range(k), list(class_names), rotation=90)
        ax.set_yticks(range(k), list(class_names))
        for i in range(k):
            for j in range(k):
                if m[i, j]:
                    ax.text(
                        j,
                        i,
                        str(m[i, j]),
                        ha="center",
                        va="center",
                        fontsize=7,
                        color="white" if m[i, j] > m.max() / 2 else "black",
                    )
    ax.set(xlabel="predicted", ylabel="true", title="confusion matrix")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
