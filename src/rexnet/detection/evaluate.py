"""COCO mAP through pycocotools' ``COCOeval`` (boxes, and masks for Mask R-CNN)."""

from __future__ import annotations

import contextlib
import copy
import io
import logging
import os
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader

from ..errors import InputError
from .data import DetectionDataset, collate

__all__ = ["evaluate_coco", "evaluate_detector", "run_detector", "METRIC_NAMES"]

log = logging.getLogger(__name__)

# COCOeval.stats order
METRIC_NAMES = ("AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100", "ARs", "ARm", "ARl")


def _pycocotools() -> Any:
    try:
        from pycocotools import mask as mask_utils
        from pycocotools.coco import COCO
        from pycocotools.cocoeval import COCOeval
    except ImportError as e:
        raise InputError("COCO evaluation needs pycocotools: pip install 'rexnet[detection]'") from e
    return COCO, COCOeval, mask_utils


@torch.no_grad()
def run_detector(
    model: nn.Module, dataset: DetectionDataset, *, batch_size: int = 8, device: str | torch.device = "cpu"
) -> list[dict[str, Any]]:
    """Detections in COCO results format (``bbox`` xywh, ``score``, ``category_id``, [``segmentation``])."""
    _, _, mask_utils = _pycocotools()
    import numpy as np

    model.eval().to(device)
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, collate_fn=collate)
    results: list[dict[str, Any]] = []
    for images, targets in loader:
        outputs = model([im.to(device) for im in images])
        for out, tgt in zip(outputs, targets):
            image_id = int(tgt["image_id"])
            boxes = out["boxes"].cpu()
            xywh = torch.cat([boxes[:, :2], boxes[:, 2:] - boxes[:, :2]], 1).tolist()
            masks = out.get("masks")
            for j, (box, score, label) in enumerate(zip(xywh, out["scores"].tolist(), out["labels"].tolist())):
                det = dict(image_id=image_id, category_id=dataset.cat_ids[label - 1], bbox=box, score=score)
                if masks is not None:
                    m = (masks[j, 0] > 0.5).cpu().numpy().astype(np.uint8)
                    rle = mask_utils.encode(np.asfortranarray(m))
                    rle["counts"] = rle["counts"].decode("ascii")
                    det["segmentation"] = rle
                results.append(det)
    return results


def evaluate_coco(
    model: nn.Module, dataset: DetectionDataset, *, batch_size: int = 8, device: str | torch.device = "cpu"
) -> dict[str, float]:
    """COCO metrics of ``model`` on ``dataset``: ``bbox_AP``, ``bbox_AP50``, ... (and ``segm_*`` with masks).

    Values are in percent, as the paper prints them. An image subset (``dataset.image_ids``)
    is evaluated on those images only.
    """
    COCO, COCOeval, _ = _pycocotools()
    results = run_detector(model, dataset, batch_size=batch_size, device=device)
    gt = COCO()
    gt.dataset = copy.deepcopy(dataset.coco)
    with contextlib.redirect_stdout(io.StringIO()):
        gt.createIndex()
    iou_types = ["bbox"] + (["segm"] if results and "segmentation" in results[0] else [])
    metrics: dict[str, float] = {"num_detections": float(len(results))}
    for iou_type in iou_types:
        if not results:
            metrics.update({f"{iou_type}_{k}": 0.0 for k in METRIC_NAMES})
            continue
        buf = io.StringIO()
        with contextlib.redirect_stdout(buf):
            dt = gt.loadRes(copy.deepcopy(results))
            ev = COCOeval(gt, dt, iou_type)
            ev.params.imgIds = list(dataset.image_ids)
            ev.evaluate()
            ev.accumulate()
            ev.summarize()
        log.debug("COCOeval %s:\n%s", iou_type, buf.getvalue())
        # COCOeval's -1 (an area range without ground truth) stays -1
        metrics.update({f"{iou_type}_{k}": float(v) * 100 if v >= 0 else -1.0 for k, v in zip(METRIC_NAMES, ev.stats)})
    return metrics


def evaluate_detector(
    checkpoint: str | os.PathLike,
    data: str | None = None,
    *,
    split: str = "val",
    limit: int | None = None,
    batch_size: int = 8,
) -> dict[str, Any]:
    """COCO metrics of a trained detector on the data and at the size its run was trained on.

    Args:
        checkpoint: A detection run folder, or one of its checkpoints.
        data: ``demo`` or a COCO folder (default: the data the run was trained on).
        split: The split to score.
        limit: The first ``limit`` images only (``None``: all).
        batch_size: Images per forward pass.

    Returns:
        :func:`evaluate_coco`'s metrics plus ``data``, ``split`` and ``image_size`` (the run's).

    Raises:
        InputError: A ``limit`` or ``batch_size`` under 1, a missing split.
        CheckpointError: Not a detection checkpoint or run folder (see :func:`~rexnet.detection.load_detector`).
    """
    from .._config import check_range
    from .checkpoint import load_detector
    from .data import load_detection_data

    check_range("--limit", limit, 1, none_means="all images")
    check_range("--batch-size", batch_size, 1)
    model, meta = load_detector(checkpoint)
    cfg = meta["config"]
    data = data or cfg["data"]
    ds = load_detection_data(data, split, image_size=cfg["image_size"], masks=cfg["masks"], limit=limit)
    metrics = evaluate_coco(model, ds, batch_size=batch_size)
    return dict(metrics, data=data, split=split, image_size=cfg["image_size"])
