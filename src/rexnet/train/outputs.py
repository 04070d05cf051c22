"""The run folder: ``config.json``, ``metrics.jsonl``, ``summary.json``, ``curves.png``,
TensorBoard events (when ``tensorboard`` is installed) and the confusion-matrix plot."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = ["RunWriter", "write_json", "plot_curves", "plot_confusion", "METRIC_KEYS"]

log = logging.getLogger(__name__)

METRIC_KEYS = ("epoch", "lr", "train_loss", "val_loss", "val_top1", "val_top5", "images_per_sec", "seconds")


def write_json(obj: Any, path: str | os.PathLike) -> Path:
    """Write JSON atomically (temp file + rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        os.fchmod(fd, umask_mode())  # mkstemp makes 0600; result files follow the umask like any other
        with os.fdopen(fd, "w") as f:
            json.dump(obj, f, indent=2, default=str)
            f.write("\n")
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return path


def umask_mode(mode: int = 0o666) -> int:
    """``mode`` with the process umask applied (what ``open()`` would create)."""
    mask = os.umask(0)
    os.umask(mask)
    return mode & ~mask


class RunWriter:
    """Writes the run folder; every method is a no-op when ``out_dir`` is ``None``.

    Args:
        out_dir: The run folder (created), or ``None`` for in-memory runs.
        tensorboard: Also write TensorBoard events if the package is importable.
        purge_step: On resume, drop TensorBoard events from this epoch on (they are redone).
    """

    def __init__(self, out_dir: str | os.PathLike | None, tensorboard: bool = True, purge_step: int | None = None):
        self.dir = Path(out_dir) if out_dir is not None else None
        self.tb = None
        if self.dir is None:
            return
        self.dir.mkdir(parents=True, exist_ok=True)
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self.tb = SummaryWriter(str(self.dir / "tensorboard"), purge_step=purge_step)
            except ImportError:
                log.info("tensorboard not installed; no event files written")

    @property
    def metrics_path(self) -> Path | None:
        return self.dir / "metrics.jsonl" if self.dir else None

    def reset_metrics(self, history: Sequence[dict[str, Any]]) -> None:
        """Rewrite ``metrics.jsonl`` from a checkpoint's history, so a resumed epoch appears once."""
        if self.dir is None:
            return
        fd, tmp = tempfile.mkstemp(prefix=".metrics.jsonl.", dir=self.dir)
        os.fchmod(fd, umask_mode())
        with os.fdopen(fd, "w") as f:
            for m in history:
                f.write(json.dumps(m) + "\n")
        os.replace(tmp, self.dir / "metrics.jsonl")

    def log_epoch(self, metrics: dict[str, Any]) -> None:
        """Append one line to ``metrics.jsonl`` and the scalars to TensorBoard."""
        if self.dir is None:
            return
        with open(self.dir / "metrics.jsonl", "a") as f:
            f.write(json.dumps(metrics) + "\n")
            f.flush()
            os.fsync(f.fileno())
        if self.tb is not None:
            for k, v in metrics.items():
                if k != "epoch" and isinstance(v, (int, float)):
                    self.tb.add_scalar(k, v, metrics["epoch"])
            self.tb.flush()

    def write(self, name: str, obj: Any) -> None:
        if self.dir is not None:
            write_json(obj, self.dir / name)

    def close(self, history: Sequence[dict[str, Any]]) -> None:
        """Draw ``curves.png`` and close TensorBoard."""
        if self.dir is None:
            return
        if history:
            try:
                plot_curves(history, self.dir / "curves.png")
            except Exception as e:  # a plot must never lose a run
                log.warning("could not draw curves.png: %s", e)
        if self.tb is not None:
            self.tb.close()


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
