"""Evaluation (top-1/top-5, per-class accuracy, confusion matrix) and prediction."""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset, Subset

from ..data.batched import CachedEvalLoader, tensor_source
from ..data.folder import collate_skipping
from ..errors import RexnetError
from .distributed import DistInfo, all_gather_objects, all_reduce_sum

__all__ = ["evaluate", "predict", "autocast", "resolve_device"]


def resolve_device(device: str | torch.device | None = "auto", local_rank: int = 0) -> torch.device:
    """``auto`` -> the local CUDA device if there is one, else CPU."""
    if device is None or device == "auto":
        return torch.device(f"cuda:{local_rank}") if torch.cuda.is_available() else torch.device("cpu")
    try:
        dev = torch.device(device)
    except RuntimeError:
        raise RexnetError(f"bad device {device!r}; expected auto, cpu, cuda or cuda:N") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise RexnetError(f"device {device!r} asked for, but no CUDA GPU is available here; use --device cpu or auto")
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise RexnetError(f"device {device!r}: only {torch.cuda.device_count()} CUDA device(s) here")
    return dev


@functools.lru_cache(maxsize=1)
def cpu_has_native_bf16() -> bool:
    """Whether this CPU computes bf16 natively (AVX512-BF16 or AMX), where bf16 autocast pays off."""
    try:
        with open("/proc/cpuinfo") as f:
            flags = next((line.split(":", 1)[1].split() for line in f if line.startswith("flags")), [])
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def autocast(device: torch.device, amp: str) -> contextlib.AbstractContextManager:
    """Autocast for ``amp`` in ``none | bf16 | fp16 | auto``.

    ``auto``: on CPU bf16 where the CPU has native bf16 (:func:`cpu_has_native_bf16`), else none; on GPU bf16
    where supported, else fp16.
    """
    if amp == "auto":
        if device.type == "cpu":
            amp = "bf16" if cpu_has_native_bf16() else "none"
        else:
            amp = "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    if amp == "none":
        return contextlib.nullcontext()
    if amp == "fp16" and device.type == "cpu":
        amp = "bf16"  # fp16 autocast on CPU is slow and unscaled; bf16 is the CPU mixed precision
    dtype = torch.bfloat16 if amp == "bf16" else torch.float16
    return torch.autocast(device_type=device.type, dtype=dtype)


@torch.no_grad()
def eval_sums(model: nn.Module, loader: DataLoader, num_classes: int, device: torch.device, *,
              amp: str = "none", channels_last: bool = False, info: DistInfo | None = None,
              progress: bool = False) -> dict[str, Any]:
    """Sums over a (possibly sharded) loader, reduced over processes.

    Returns:
        ``loss_sum``, ``top1``/``top5`` correct counts, ``count``, ``confusion`` (K x K, rows =
        true class) and ``skipped`` (list of ``(path, reason)``).
    """
    info = info or DistInfo()
    model.eval()
    k5 = min(5, num_classes)
    sums = torch.zeros(4, dtype=torch.float64)  # loss, top1, top5, count
    confusion = torch.zeros(num_classes, num_classes, dtype=torch.int64)
    skipped: list[tuple[str, str]] = []
    it = loader
    if progress and info.is_main:
        from tqdm import tqdm

        it = tqdm(loader, desc="eval", leave=False, dynamic_ncols=True)
    for images, labels, bad in it:
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
        confusion += torch.bincount(labels.cpu() * num_classes + top[:, 0].cpu(),
                                    minlength=num_classes**2).view(num_classes, num_classes)
    all_reduce_sum(sums, info)
    if info.enabled:
        confusion = all_reduce_sum(confusion, info)
        skipped = [s for part in all_gather_objects(skipped, info) for s in part]
    return dict(loss_sum=float(sums[0]), top1=float(sums[1]), top5=float(sums[2]), count=int(sums[3]),
                confusion=confusion, skipped=skipped)


def summarize(sums: dict[str, Any], class_names: Sequence[str] | None = None) -> dict[str, Any]:
    """Percentages and per-class accuracy from :func:`eval_sums`' counts."""
    n = max(1, sums["count"])
    conf = sums["confusion"]
    per_class_n = conf.sum(1)
    names = list(class_names) if class_names else [str(i) for i in range(len(conf))]
    per_class = {names[i]: (100.0 * float(conf[i, i]) / int(per_class_n[i]) if per_class_n[i] else None)
                 for i in range(len(conf))}
    return dict(
        top1=100.0 * sums["top1"] / n, top5=100.0 * sums["top5"] / n, loss=sums["loss_sum"] / n,
        count=sums["count"], per_class=per_class, confusion=conf.tolist(), class_names=names,
        skipped=[{"path": p, "reason": r} for p, r in sums["skipped"]],
    )


def shard(dataset: Dataset, info: DistInfo) -> Dataset:
    """This process's strided share of an evaluation set (no padding, so nothing counts twice)."""
    if not info.enabled:
        return dataset
    return Subset(dataset, range(info.rank, len(dataset), info.world_size))  # type: ignore[arg-type]


def evaluate(
    model: nn.Module,
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
        model: Any classifier returning logits ``(N, K)``; evaluated in ``eval()`` mode.
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
        raise ValueError("num_classes is required for a model without a num_classes attribute")
    model = model.to(dev)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    loader: Any
    if tensor_source(dataset) is not None and workers == 0:  # in memory: transform once, then slice
        loader = CachedEvalLoader(dataset, batch_size)
    else:
        loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=workers,
                            collate_fn=collate_skipping)
    sums = eval_sums(model, loader, int(k), dev, amp=amp, channels_last=channels_last, progress=progress)
    return summarize(sums, class_names)


@torch.no_grad()
def predict(
    model: nn.Module,
    images: torch.Tensor,
    *,
    top_k: int = 5,
    class_names: Sequence[str] | None = None,
) -> list[list[tuple[str, float]]]:
    """Top-k ``(class name, probability)`` for a batch of preprocessed images ``(N, 3, H, W)``."""
    model.eval()
    dev = next(model.parameters()).device
    probs = model(images.to(dev)).float().softmax(dim=1)
    k = min(top_k, probs.shape[1])
    p, idx = probs.topk(k, dim=1)
    names = list(class_names) if class_names else [str(i) for i in range(probs.shape[1])]
    return [[(names[j], float(q)) for q, j in zip(prow.tolist(), irow.tolist())] for prow, irow in zip(p, idx)]
