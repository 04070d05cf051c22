"""Scoring a classifier on a dataset (top-1/top-5, loss, per-class accuracy, confusion matrix) and
top-k prediction for image files: one loop shared by training, evaluation and the deploy runtimes."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset

from .._device import autocast, resolve_device
from ..errors import InputError
from .batched import CachedEvalLoader, tensor_source
from .folder import collate_skipping

__all__ = ["evaluate", "count_predictions", "summarize", "predict", "predict_images"]

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
) -> dict[str, Any]:
    """Sums over ``loader`` (batches of ``(images, labels, skipped)``) in this process.

    Returns:
        ``loss_sum``, ``top1``/``top5`` correct counts, ``count``, ``confusion`` (K x K, rows =
        true class) and ``skipped`` (list of ``(path, reason)``).
    """
    if isinstance(model, nn.Module):
        model.eval()
    k5 = min(5, num_classes)
    sums = torch.zeros(4, dtype=torch.float64)  # loss, top1, top5, count
    confusion = torch.zeros(num_classes, num_classes, dtype=torch.int64)
    skipped: list[tuple[str, str]] = []
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
    return dict(
        loss_sum=float(sums[0]),
        top1=float(sums[1]),
        top5=float(sums[2]),
        count=int(sums[3]),
        confusion=confusion,
        skipped=skipped,
    )


def summarize(sums: dict[str, Any], class_names: Sequence[str] | None = None) -> dict[str, Any]:
    """Percentages and per-class accuracy from :func:`count_predictions`' counts."""
    n = max(1, sums["count"])
    conf = sums["confusion"]
    per_class_n = conf.sum(1)
    names = list(class_names) if class_names else [str(i) for i in range(len(conf))]
    per_class = {
        names[i]: (100.0 * float(conf[i, i]) / int(per_class_n[i]) if per_class_n[i] else None)
        for i in range(len(conf))
    }
    return dict(
        top1=100.0 * sums["top1"] / n,
        top5=100.0 * sums["top5"] / n,
        loss=sums["loss_sum"] / n,
        count=sums["count"],
        per_class=per_class,
        confusion=conf.tolist(),
        class_names=names,
        skipped=[{"path": p, "reason": r} for p, r in sums["skipped"]],
    )


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
) -> dict[str, Any]:
    """Top-1/top-5 accuracy (in %), mean cross-entropy, per-class accuracy and confusion matrix.

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

    Returns:
        ``{"top1", "top5", "loss", "count", "per_class": {name: % or None}, "confusion":
        [[int]] (rows = true class, columns = predicted), "class_names", "skipped": [...]}``.

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
    sums = count_predictions(model, loader, int(k), dev, amp=amp, channels_last=channels_last, progress=progress)
    return summarize(sums, class_names)


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
    """Top-k classes for each image file, read as RGB and passed through ``transform``.

    Returns:
        One ``{"image": path, "top": [{"class": name, "prob": p}, ...]}`` per file; an unreadable
        file gets ``{"image": path, "error": reason}``.
    """
    from PIL import Image

    out: list[dict[str, Any]] = []
    for p in images:
        try:
            with Image.open(p) as im:
                x = transform(im.convert("RGB"))
        except Exception as e:
            out.append({"image": str(p), "error": f"{type(e).__name__}: {e}"})
            continue
        top = predict(model, x[None], top_k=top_k, class_names=class_names)[0]
        out.append({"image": str(p), "top": [{"class": c, "prob": q} for c, q in top]})
    return out
