"""The classification outputs: ``curves.png``, the confusion-matrix plot, the per-class table, and the files of
``eval -o``/``--predictions`` and ``predict -o`` (``.csv``, ``.jsonl`` or JSON, by suffix).

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

from .._files import FIGURE_FORMATS, atomic_write, check_output, dumps_json, write_csv, write_figure, write_json
from .._table import format_table
from ..errors import InputError

__all__ = [
    "write_json",
    "plot_curves",
    "plot_confusion",
    "eval_output_paths",
    "write_eval_outputs",
    "write_predictions",
    "prediction_table",
    "per_class_table",
    "METRIC_KEYS",
    "FIGURE_FORMATS",
]

log = logging.getLogger(__name__)


METRIC_KEYS = ("epoch", "lr", "train_loss", "val_loss", "val_top1", "val_top5", "images_per_sec", "seconds")


def plot_curves(
    history: Sequence[dict[str, Any]],
    path: str | os.PathLike,
    *,
    overwrite: bool = False,
    num_classes: int | None = None,
) -> None:
    """Loss and accuracy against epoch; top-5 only with more than 5 classes (``num_classes``; else it is 100%)."""
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
    if num_classes is None or num_classes > 5:
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
    """Confusion-matrix image (rows = true class, columns = predicted), written under the output policy.

    Cells are coloured by the share of their row (so a small class reads as clearly as a large one) and
    show the count; up to 30 classes are labelled. At least 600 px a side.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    m = np.asarray(confusion, dtype=np.int64)
    k = len(m)
    rows = m.sum(1, keepdims=True)
    share = np.divide(m, rows, out=np.zeros(m.shape, dtype=float), where=rows > 0)
    size = min(20.0, max(6.0, 2 + 0.45 * k))
    fig, ax = plt.subplots(figsize=(size, size))
    im = ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="share of the true class")
    if k <= 30:
        names = [str(n) if len(str(n)) <= 18 else str(n)[:17] + "…" for n in class_names]
        font = 12 if k <= 10 else 9 if k <= 20 else 7
        ax.set_xticks(range(k), names, rotation=45 if k > 5 else 0, ha="right" if k > 5 else "center", fontsize=font)
        ax.set_yticks(range(k), names, fontsize=font)
        for i in range(k):
            for j in range(k):
                if m[i, j] or k <= 10:
                    dark = share[i, j] > 0.5
                    ax.text(
                        j, i, str(m[i, j]), ha="center", va="center", fontsize=font, color="white" if dark else "black"
                    )
    acc = 100.0 * np.trace(m) / max(1, m.sum())
    ax.set_xlabel("predicted", fontsize=12)
    ax.set_ylabel("true", fontsize=12)
    ax.set_title(f"confusion matrix ({int(m.sum())} images, top-1 {acc:.1f}%)", fontsize=13)
    _write_and_close(fig, path, overwrite, "confusion-matrix image")


def eval_output_paths(
    out: str | os.PathLike | None,
    confusion_png: str | os.PathLike | None = None,
    *,
    overwrite: bool = False,
    predictions: str | os.PathLike | None = None,
) -> tuple[Path | None, Path | None]:
    """The JSON and figure paths of ``eval -o OUT [--confusion PNG]``, checked before any work (and the
    ``--predictions`` file, when given).

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
    if predictions is not None:
        given = [p for p in (json_path, png) if p is not None]
        if any(os.path.abspath(predictions) == os.path.abspath(p) for p in given):
            raise InputError(
                f"--predictions {predictions} is also another output of this evaluation; name another file"
            )
        check_output(predictions, overwrite=overwrite, what="predictions file (--predictions)")
    return json_path, png


def write_eval_outputs(
    res: dict[str, Any],
    out: str | os.PathLike | None,
    confusion_png: str | os.PathLike | None = None,
    *,
    overwrite: bool = False,
    predictions: str | os.PathLike | None = None,
) -> tuple[Path | None, Path | None]:
    """Write an evaluation's results JSON (strict: NaN as null, without the per-image rows), its
    confusion-matrix figure and (``predictions``) its per-image rows; the JSON and figure paths."""
    json_path, png = eval_output_paths(out, confusion_png, overwrite=overwrite, predictions=predictions)
    if json_path is not None:
        summary = {k: v for k, v in res.items() if k != "predictions"}
        write_json(summary, json_path, overwrite=overwrite, what="results file (-o)")
    if png is not None:
        plot_confusion(res["confusion"], res["class_names"], png, overwrite=overwrite)
    if predictions is not None:
        write_predictions(res.get("predictions") or [], predictions, overwrite=overwrite, what="--predictions")
    return json_path, png


def write_predictions(
    res: Sequence[dict[str, Any]], out: str | os.PathLike, *, overwrite: bool = False, what: str = "-o"
) -> Path:
    """Write per-image predictions, atomically, under the output policy, in the format of ``out``'s suffix.

    ``.csv``: the :func:`prediction_table` (one row per image); ``.jsonl``: one JSON object per image;
    anything else: one strict JSON list (``predict -o``'s format before CSV and JSON lines existed).
    Rows are ``predict``'s (``{"image", "top"}`` or ``{"image", "error"}``) or ``eval``'s
    (``{"path", "label", "prediction", "top"}``).
    """
    suffix = Path(out).suffix.lower()
    label = f"predictions file ({what})"
    if suffix == ".csv":
        return write_csv(prediction_table(res), out, overwrite=overwrite, what=label)
    if suffix == ".jsonl":
        text = "".join(dumps_json(r, indent=None) for r in res)  # one line each, newline-terminated
        return atomic_write(out, text, overwrite=overwrite, what=label)
    return write_json(list(res), out, overwrite=overwrite, what=label)


def prediction_table(res: Sequence[dict[str, Any]]) -> list[list[Any]]:
    """Per-image predictions as CSV rows, the header first: ``path``, ``label`` (evaluation only),
    ``prediction``, then ``top1``, ``top1_prob``, ... up to the k kept (at most the class count), and
    ``error`` when an image could not be read."""
    k = max((len(r.get("top") or ()) for r in res), default=0)
    labelled = any("label" in r for r in res)
    errors = any("error" in r for r in res)
    header = ["path", *(["label"] if labelled else []), "prediction"]
    header += [c for i in range(1, k + 1) for c in (f"top{i}", f"top{i}_prob")] + (["error"] if errors else [])
    rows: list[list[Any]] = [header]
    for r in res:
        top = list(r.get("top") or ())
        row = [r.get("path", r.get("image")), *([r.get("label")] if labelled else [])]
        row.append(top[0]["class"] if top else None)
        for i in range(k):
            row += [top[i]["class"], f"{top[i]['prob']:.6f}"] if i < len(top) else [None, None]
        rows.append(row + ([r.get("error")] if errors else []))
    return rows


def per_class_table(res: dict[str, Any]) -> str:
    """The per-class report of an evaluation: images, precision and recall (``-``: undefined)."""
    names = res["class_names"]
    prec, rec = res.get("per_class_precision") or {}, res.get("per_class_recall") or res["per_class"]
    support = res.get("per_class_images") or dict.fromkeys(names)
    rows = [[n, support.get(n), _pct(prec.get(n)), _pct(rec.get(n))] for n in names]
    return format_table(["class", "images", "precision", "recall"], rows)


def _pct(v: float | None) -> str | None:
    return None if v is None else f"{v:.2f}%"
