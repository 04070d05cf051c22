"""The classification outputs: ``curves.png``, the confusion-matrix plot, and the files of ``eval -o``/``predict -o``.

Every file goes through :mod:`rexnet._files` (atomic, and an existing file this run did not write is
refused unless ``overwrite``); figures are drawn into memory and written with
:func:`~rexnet._files.write_figure`. The run folder's own files (``config.json``, ``metrics.jsonl``,
``summary.json``, checkpoints) are written by :class:`rexnet.run.Run`; :func:`write_json` is
:func:`rexnet._files.write_json`.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .._files import FIGURE_FORMATS, check_output, write_figure, write_json
from ..errors import InputError

__all__ = [
    "write_json",
    "plot_curves",
    "plot_confusion",
    "eval_output_paths",
    "write_eval_outputs",
    "write_predictions",
    "METRIC_KEYS",
    "FIGURE_FORMATS",
]

log = logging.getLogger(__name__)


METRIC_KEYS = ("epoch", "lr", "train_loss", "val_loss", "val_top1", "val_top5", "images_per_sec", "seconds")


def plot_curves(history: Sequence[dict[str, Any]], path: str | os.PathLike, *, overwrite: bool = False) -> None:
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
    _write_and_close(fig, path, overwrite, "curves image")


def _write_and_close(fig: Any, path: str | os.PathLike, overwrite: bool, what: str) -> None:
    """Lay out ``fig``, write it under the output policy, and free it whatever happens."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    try:
        write_figure(fig, path, overwrite=overwrite, what=what)
    finally:
        plt.close(fig)


def plot_confusion(
    confusion: Sequence[Sequence[int]],
    class_names: Sequence[str],
    path: str | os.PathLike,
    *,
    overwrite: bool = False,
) -> None:
    """Confusion-matrix image (rows = true class, columns = predicted), written under the output policy."""
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
    _write_and_close(fig, path, overwrite, "confusion-matrix image")


def eval_output_paths(
    out: str | os.PathLike | None, confusion_png: str | os.PathLike | None = None, *, overwrite: bool = False
) -> tuple[Path | None, Path | None]:
    """The JSON and figure paths of ``eval -o OUT [--confusion PNG]``, checked before any work.

    The figure defaults to ``OUT`` with the suffix ``.png``.

    Raises:
        OutputExistsError: Either exists, this run did not write it, and ``overwrite`` is false.
        InputError: A folder, a special file, a parent that is a file, both naming one file, or a
            figure suffix matplotlib cannot write.
    """
    json_path = Path(out) if out is not None else None
    png = Path(confusion_png) if confusion_png is not None else None
    if png is None and json_path is not None:
        png = json_path.with_suffix(".png")
    if json_path is not None and png is not None and os.path.abspath(json_path) == os.path.abspath(png):
        raise InputError(f"-o {out} and the confusion-matrix image {png} are one file; give -o a .json name")
    if png is not None and png.suffix.lstrip(".").lower() not in FIGURE_FORMATS:
        raise InputError(
            f"--confusion {png}: cannot draw a {png.suffix or 'suffix-less'} file; "
            f"expected one of: {', '.join('.' + f for f in FIGURE_FORMATS)}"
        )
    if json_path is not None:
        check_output(json_path, overwrite=overwrite, what="results file (-o)")
    if png is not None:
        check_output(png, overwrite=overwrite, what="confusion-matrix image")
    return json_path, png


def write_eval_outputs(
    res: dict[str, Any],
    out: str | os.PathLike | None,
    confusion_png: str | os.PathLike | None = None,
    *,
    overwrite: bool = False,
) -> tuple[Path | None, Path | None]:
    """Write an evaluation's results JSON (strict: NaN as null) and its confusion-matrix figure; their paths."""
    json_path, png = eval_output_paths(out, confusion_png, overwrite=overwrite)
    if json_path is not None:
        write_json(res, json_path, overwrite=overwrite, what="results file (-o)")
    if png is not None:
        plot_confusion(res["confusion"], res["class_names"], png, overwrite=overwrite)
    return json_path, png


def write_predictions(res: Sequence[dict[str, Any]], out: str | os.PathLike, *, overwrite: bool = False) -> Path:
    """Write ``predict -o``'s results as strict JSON, atomically, under the output policy."""
    return write_json(list(res), out, overwrite=overwrite, what="predictions file (-o)")
