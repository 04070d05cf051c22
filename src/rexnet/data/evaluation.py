"""Scoring a classifier on a dataset (top-1/top-5, loss, per-class precision and recall, confusion matrix,
optionally each image's top-k) and top-k prediction for image files: one loop shared by training,
evaluation and the deploy runtimes.

Top-5 is top-``min(5, K)``: with ``K <= 5`` classes it is 100% by construction, so results carry
``top5_k`` and printed reports leave top-5 out (see :func:`topk_label`)."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset

from .._device import autocast, resolve_device
from .._images import read_image
from ..errors import InputError, ResourceError
from .batched import CachedEvalLoader, tensor_source
from .folder import collate_skipping, list_image_files, sample_paths

__all__ = ["evaluate", "count_predictions", "summarize", "predict", "predict_images", "topk_label"]

#: A model or any callable taking an NCHW float batch and returning logits ``(N, K)``.
Classifier = Callable[[torch.Tensor], torch.Tensor]


@torch.no_grad()
def count_predictions(
    model: Classifier,
    loader: Iterable,
    num_classes: int,
    device: torch.device,
    *,
    amp: str = "none",
    channels_last: bool = False,
    progress: bool = False,
    keep_top: int = 0,
) -> dict[str, Any]:
    """Sums over ``loader`` (batches of ``(images, labels, skipped)``) in this process.

    Args:
        keep_top: Also keep each image's label and its ``keep_top`` best classes and probabilities
            (capped at K), in loader order, as ``kept`` (``labels``, ``index``, ``prob`` tensors).

    Returns:
        ``loss_sum``, ``top1``/``top5`` correct counts, ``count``, ``confusion`` (K x K, rows =
        true class), ``skipped`` (list of ``(path, reason)``) and, with ``keep_top``, ``kept``.
    """
    if isinstance(model, nn.Module):
        model.eval()
    k5 = min(5, num_classes)
    sums = torch.zeros(4, dtype=torch.float64)  # loss, top1, top5, count
    confusion = torch.zeros(num_classes, num_classes, dtype=torch.int64)
    skipped: list[tuple[str, str]] = []
    kept: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = []
    if progress:
        from tqdm import tqdm

        loader = tqdm(loader, desc="eval", leave=False, dynamic_ncols=True)
    for images, labels, bad in loader:
        skipped += [(b.path, b.reason) for b in bad]
        if not len(labels):
            continue
        images, labels = images.to(device, non_blocking=True), labels.to(device, non_blocking=True)
        if channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        with autocast(device, amp):
            logits = model(images)
        logits = logits.float()
        sums[0] += F.cross_entropy(logits, labels, reduction="sum").item()
        top = logits.topk(k5, dim=1).indices
        hit = top == labels[:, None]
        sums[1] += hit[:, 0].sum().item()
        sums[2] += hit.any(dim=1).sum().item()
        sums[3] += len(labels)
        confusion += torch.bincount(labels.cpu() * num_classes + top[:, 0].cpu(), minlength=num_classes**2).view(
            num_classes, num_classes
        )
        if keep_top:
            p, idx = logits.softmax(dim=1).topk(min(keep_top, num_classes), dim=1)
            kept.append((labels.cpu(), idx.cpu(), p.cpu()))
    out = dict(
        loss_sum=float(sums[0]),
        top1=float(sums[1]),
        top5=float(sums[2]),
        count=int(sums[3]),
        confusion=confusion,
        skipped=skipped,
    )
    if keep_top:
        out["kept"] = {
            k: torch.cat([b[i] for b in kept]) if kept else torch.empty(0)
            for i, k in enumerate(("labels", "index", "prob"))
        }
    return out


def summarize(sums: dict[str, Any], class_names: Sequence[str] | None = None) -> dict[str, Any]:
    """Percentages, per-class accuracy (= recall) and precision from :func:`count_predictions`' counts.

    A class no image belongs to has recall ``None``; a class nothing was predicted as has precision ``None``.
    """
    n = max(1, sums["count"])
    conf = sums["confusion"]
    per_class_n, predicted_n = conf.sum(1), conf.sum(0)
    names = list(class_names) if class_names else [str(i) for i in range(len(conf))]

    def share(i: int, total: Any) -> float | None:
        return 100.0 * float(conf[i, i]) / int(total[i]) if total[i] else None

    recall = {names[i]: share(i, per_class_n) for i in range(len(conf))}
    return dict(
        top1=100.0 * sums["top1"] / n,
        top5=100.0 * sums["top5"] / n,
        top5_k=min(5, len(conf)),
        loss=sums["loss_sum"] / n,
        count=sums["count"],
        per_class=recall,
        per_class_precision={names[i]: share(i, predicted_n) for i in range(len(conf))},
        per_class_recall=dict(recall),
        per_class_images={names[i]: int(per_class_n[i]) for i in range(len(conf))},
        confusion=conf.tolist(),
        class_names=names,
        skipped=[{"path": p, "reason": r} for p, r in sums["skipped"]],
    )


def topk_label(res: dict[str, Any], num_classes: int | None = None, key: str = "top5") -> str:
    """``"  top-5 12.34%"`` for a printed report, or ``""`` when top-5 says nothing: 5 classes or fewer
    (``num_classes``, default: the size of ``res``'s confusion matrix), or no value."""
    k = num_classes if num_classes is not None else len(res.get("confusion") or ()) or None
    v = res.get(key)
    return f"  top-5 {v:.2f}%" if (k is None or k > 5) and isinstance(v, (int, float)) else ""


def evaluate(
    model: Classifier,
    dataset: Dataset,
    *,
    batch_size: int = 128,
    num_classes: int | None = None,
    class_names: Sequence[str] | None = None,
    device: str | torch.device | None = "auto",
    workers: int = 0,
    amp: str = "none",
    channels_last: bool = False,
    progress: bool = False,
    keep_top: int = 0,
) -> dict[str, Any]:
    """Top-1/top-5 accuracy (in %), mean cross-entropy, per-class precision/recall and confusion matrix.

    Ties in the logits are broken by ``torch.topk`` (lowest index first on CPU).

    Args:
        model: Any classifier returning logits ``(N, K)`` (an ``nn.Module`` runs in ``eval()`` mode;
            an exported model's callable works too).
        dataset: Yields ``(image tensor, label)`` (or :class:`~rexnet.data.SkippedImage`).
        batch_size: Images per forward pass.
        num_classes: K (default: ``len(class_names)`` or the model's ``num_classes``).
        class_names: Names for ``per_class``; default ``"0"``, ``"1"``, ...
        device: ``auto``, ``cpu``, ``cuda``...
        workers: DataLoader worker processes.
        amp: ``none``, ``bf16``, ``fp16`` or ``auto``.
        channels_last: Feed channels_last tensors.
        progress: Show a progress bar.
        keep_top: Also return each image's ``keep_top`` best classes (capped at K) as ``predictions``.

    Returns:
        ``{"top1", "top5", "top5_k", "loss", "count", "per_class": {name: % or None},
        "per_class_precision", "per_class_recall", "per_class_images", "confusion": [[int]] (rows =
        true class, columns = predicted), "class_names", "skipped": [...]}``; ``per_class`` is the
        recall (the class's accuracy) and ``top5`` is top-``top5_k`` = top-``min(5, K)``. With
        ``keep_top``, ``predictions``: one ``{"path", "label", "prediction", "top": [{"class",
        "prob"}, ...]}`` per scored image, in dataset order (``path`` is ``#i``, the index in the
        split, for data held in memory).

    Example:
        >>> import torch
        >>> from torch.utils.data import TensorDataset
        >>> m = torch.nn.Linear(2, 3)
        >>> ds = TensorDataset(torch.eye(2), torch.tensor([0, 1]))
        >>> sorted(evaluate(m, ds, num_classes=3))[:3]
        ['class_names', 'confusion', 'count']
    """
    dev = resolve_device(device)
    k = num_classes or (len(class_names) if class_names else None) or getattr(model, "num_classes", None)
    if not k:
        raise InputError("num_classes is required for a model without a num_classes attribute")
    if isinstance(model, nn.Module):
        model = model.to(dev)
        if channels_last:
            model = model.to(memory_format=torch.channels_last)
    loader: Any
    if tensor_source(dataset) is not None and workers == 0:  # in memory: transform once, then slice
        loader = CachedEvalLoader(dataset, batch_size)
    else:
        loader = DataLoader(
            dataset, batch_size=batch_size, shuffle=False, num_workers=workers, collate_fn=collate_skipping
        )
    sums = count_predictions(
        model, loader, int(k), dev, amp=amp, channels_last=channels_last, progress=progress, keep_top=keep_top
    )
    res = summarize(sums, class_names)
    if keep_top:
        res["predictions"] = _prediction_rows(sums, dataset, res["class_names"])
    return res


def _prediction_rows(sums: dict[str, Any], dataset: Dataset, names: Sequence[str]) -> list[dict[str, Any]]:
    """Each scored image's path, label and top-k, matching :func:`count_predictions`' kept rows to the
    dataset's samples (an unreadable image is missing from both, reported under ``skipped``)."""
    kept = sums["kept"]
    paths = sample_paths(dataset)
    if paths is None:
        paths = [f"#{i}" for i in range(len(dataset))]  # type: ignore[arg-type]
    skipped = {p for p, _ in sums["skipped"]}
    scored = [p for p in paths if p not in skipped]
    if len(scored) != len(kept["labels"]):  # the loader and the dataset disagree: no row may be mislabelled
        raise RuntimeError(f"internal error: {len(kept['labels'])} predictions for {len(scored)} images")
    rows = []
    for path, y, idx, prob in zip(scored, kept["labels"].tolist(), kept["index"].tolist(), kept["prob"].tolist()):
        top = [{"class": names[j], "prob": q} for j, q in zip(idx, prob)]
        rows.append({"path": path, "label": names[y], "prediction": top[0]["class"], "top": top})
    return rows


@torch.no_grad()
def predict(
    model: Classifier,
    images: torch.Tensor,
    *,
    top_k: int = 5,
    class_names: Sequence[str] | None = None,
) -> list[list[tuple[str, float]]]:
    """Top-k ``(class name, probability)`` for a batch of preprocessed images ``(N, 3, H, W)``."""
    if isinstance(model, nn.Module):
        model.eval()
        param = next(model.parameters(), None)
        images = images.to(param.device if param is not None else "cpu")
    probs = model(images).float().softmax(dim=1)
    k = min(top_k, probs.shape[1])
    p, idx = probs.topk(k, dim=1)
    names = list(class_names) if class_names else [str(i) for i in range(probs.shape[1])]
    return [[(names[j], float(q)) for q, j in zip(prow.tolist(), irow.tolist())] for prow, irow in zip(p, idx)]


def predict_images(
    model: Classifier,
    images: Sequence[str | os.PathLike],
    transform: Callable[[Any], torch.Tensor],
    *,
    top_k: int = 5,
    class_names: Sequence[str] | None = None,
) -> list[dict[str, Any]]:
    """Top-k classes for each image file (each image of a folder or glob: :func:`~rexnet.data.list_image_files`),
    read by the one decoder (:func:`rexnet._images.read_image`, the folder loader's) and passed through
    ``transform``.

    Returns:
        One ``{"image": path, "top": [{"class": name, "prob": p}, ...]}`` per file; an unreadable
        file (missing, corrupt, a FIFO) gets ``{"image": path, "error": reason}``.

    Raises:
        ResourceError: An image over the pixel limit (refused before decoding, as every reader does).
    """
    out: list[dict[str, Any]] = []
    for p in list_image_files(images):  # folders and globs too, for every caller (the deploy runtimes')
        try:
            x = transform(read_image(p))
        except ResourceError:
            raise
        except Exception as e:
            out.append({"image": str(p), "error": f"{type(e).__name__}: {e}"})
            continue
        top = predict(model, x[None], top_k=top_k, class_names=class_names)[0]
        out.append({"image": str(p), "top": [{"class": c, "prob": q} for c, q in top]})
    return out
