"""Evaluation during training: the shared scoring loop (:mod:`rexnet.data.evaluation`) reduced over processes.

``evaluate`` and ``predict`` live in :mod:`rexnet.data.evaluation` (deploy uses them too); they are
re-exported here because ``rexnet.train`` has always offered them.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, Subset

from ..data.evaluation import count_predictions, evaluate, predict
from .distributed import DistInfo, all_gather_objects, all_reduce_sum

__all__ = ["evaluate", "predict", "eval_sums", "shard"]


def eval_sums(
    model: nn.Module,
    loader: DataLoader,
    num_classes: int,
    device: torch.device,
    *,
    amp: str = "none",
    channels_last: bool = False,
    info: DistInfo | None = None,
    progress: bool = False,
) -> dict[str, Any]:
    """:func:`~rexnet.data.evaluation.count_predictions` over a (possibly sharded) loader, reduced over processes.

    Returns:
        ``loss_sum``, ``top1``/``top5`` correct counts, ``count``, ``confusion`` (K x K, rows =
        true class) and ``skipped`` (list of ``(path, reason)``).
    """
    info = info or DistInfo()
    sums = count_predictions(
        model, loader, num_classes, device, amp=amp, channels_last=channels_last, progress=progress and info.is_main
    )
    if info.enabled:
        totals = torch.tensor([sums["loss_sum"], sums["top1"], sums["top5"], sums["count"]], dtype=torch.float64)
        all_reduce_sum(totals, info)
        sums.update(
            loss_sum=float(totals[0]),
            top1=float(totals[1]),
            top5=float(totals[2]),
            count=int(totals[3]),
            confusion=all_reduce_sum(sums["confusion"], info),
            skipped=[s for part in all_gather_objects(sums["skipped"], info) for s in part],
        )
    return sums


def shard(dataset: Dataset, info: DistInfo) -> Dataset:
    """This process's strided share of an evaluation set (no padding, so nothing counts twice)."""
    if not info.enabled:
        return dataset
    return Subset(dataset, range(info.rank, len(dataset), info.world_size))  # type: ignore[arg-type]
