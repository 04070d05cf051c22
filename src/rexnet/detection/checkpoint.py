"""Detection checkpoints: reading one, trusting none of its metadata, and building the detector it describes.

A checkpoint is checked the way classification's are (:mod:`rexnet.weights.metadata`) before any
model is built from it: its fields have the right types and ranges, the network it names is costed
against the memory available, integer or bool tensors are refused (PyTorch would cast them into
float weights without a word) and so are NaN/inf weights.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..errors import CheckpointError, InputError
from ..run import nonfinite_tensors
from ..weights.io import safe_torch_load
from ..weights.metadata import MAX_CLASSES, check_int, check_plan_cost, check_tensor_dtypes
from ..zoo import get_model_info
from .config import DetectConfig
from .models import create_detector

__all__ = ["FORMAT", "build_detector", "read_detect_checkpoint", "load_detector"]

FORMAT = "rexnet.detect/1"
_KEYS = ("model", "config", "num_classes", "class_names", "cat_ids", "epoch")


def build_detector(cfg: DetectConfig, num_classes: int, *, for_loading: bool = False) -> nn.Module:
    """The detector a config describes (two-stage models get ``min_size = max_size = image_size``).

    ``for_loading`` builds the same modules without reading the backbone weights (a checkpoint follows).
    """
    kw: dict[str, Any] = dict(num_classes=num_classes, pretrained_backbone=cfg.pretrained_backbone)
    if cfg.arch == "ssdlite":
        kw["image_size"] = cfg.image_size
    else:
        kw.update(min_size=cfg.image_size, max_size=cfg.image_size)
    if for_loading and cfg.pretrained_backbone:
        kw["pretrained_backbone"] = None
        if cfg.arch != "ssdlite":  # the FPN backbones froze BN because weights were given
            kw.update(frozen_bn=True, trainable_layers=3)
    return create_detector(cfg.arch, cfg.backbone, **kw)


def read_detect_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """The dict of a detection checkpoint (format :data:`FORMAT`) with every key present.

    Raises:
        CheckpointError: Not a detection checkpoint, or a key missing.
    """
    obj = safe_torch_load(path)
    if not isinstance(obj, dict) or obj.get("format") != FORMAT:
        found = obj.get("format") if isinstance(obj, dict) else type(obj).__name__
        raise CheckpointError(f"{path} is not a rexnet detection checkpoint (format {found!r}, expected {FORMAT!r})")
    for key in _KEYS:
        if key not in obj:
            raise CheckpointError(f"{path} lacks {key!r}; not a complete detection checkpoint")
    return obj


def _checked_list(value: Any, path: Path, field: str, kind: type, length: int) -> list[Any]:
    """``value`` if it is a list of ``length`` items of ``kind`` (no bools for ints)."""
    ok = isinstance(value, (list, tuple)) and all(isinstance(v, kind) and not isinstance(v, bool) for v in value)
    if not ok:
        text = repr(value)
        raise CheckpointError(
            f"{path}: field '{field}' is {text[:77] + '...' if len(text) > 80 else text}, "
            f"expected a list of {kind.__name__}"
        )
    if len(value) != length:
        n = len(value)
        raise CheckpointError(f"{path}: field '{field}' holds {n} entries, expected {length} (one per category)")
    return list(value)


def _checked_metadata(ck: dict[str, Any], path: Path) -> tuple[DetectConfig, int]:
    """The config and class count of a checkpoint, every field checked and the network costed before building."""
    if not isinstance(ck["config"], Mapping):
        raise CheckpointError(f"{path}: field 'config' is a {type(ck['config']).__name__}, expected an object")
    try:
        cfg = DetectConfig.from_dict(dict(ck["config"]))
    except InputError as e:
        raise CheckpointError(f"{path}: bad config in the checkpoint: {e}") from None
    k = check_int(ck["num_classes"], path, "num_classes", 2, MAX_CLASSES + 1)  # background + >= 1 category
    _checked_list(ck["class_names"], path, "class_names", str, k - 1)
    _checked_list(ck["cat_ids"], path, "cat_ids", int, k - 1)
    check_int(ck["epoch"], path, "epoch", 0)
    if not isinstance(ck["model"], Mapping) or not all(isinstance(v, torch.Tensor) for v in ck["model"].values()):
        raise CheckpointError(f"{path}: field 'model' is not a state dict of tensors")
    try:
        plan = get_model_info(cfg.backbone).plan()
    except InputError as e:
        raise CheckpointError(f"{path}: field 'config.backbone': {e}") from None
    # the backbone's plan at the recorded image size, with a head of k outputs: refuse before building
    check_plan_cost(plan, k, cfg.image_size, path)
    return cfg, k


def load_detector(checkpoint: str | os.PathLike) -> tuple[nn.Module, dict[str, Any]]:
    """A trained detector (eval mode) and its checkpoint metadata (config, class names, COCO category ids).

    Args:
        checkpoint: A detection checkpoint, or a detection run folder (its ``best.pt``, else ``last.pt``).

    Raises:
        CheckpointError: Not a detection checkpoint, a field of the wrong type or range, integer or
            bool tensors where the detector has float weights, tensors that do not fit, or non-finite weights.
        ResourceError: The network it records would not fit in memory (checked before building it).
    """
    path = Path(checkpoint)
    if path.is_dir():
        found = [p for p in (path / "checkpoints" / "best.pt", path / "checkpoints" / "last.pt") if p.is_file()]
        if not found:
            raise CheckpointError(f"{path} holds no checkpoints/best.pt or last.pt; is it a detection run folder?")
        path = found[0]
    ck = read_detect_checkpoint(path)
    cfg, k = _checked_metadata(ck, path)
    bad = nonfinite_tensors(ck["model"])
    if bad:
        raise CheckpointError(
            f"{path} holds non-finite weights (NaN or inf in {', '.join(bad[:3])}): the run that wrote it "
            "diverged; use an earlier checkpoint"
        )
    model = build_detector(cfg, k, for_loading=True)
    check_tensor_dtypes(ck["model"], model.state_dict(), path)
    try:
        model.load_state_dict(ck["model"])
    except RuntimeError as e:  # missing, unexpected or misshapen tensors
        first = str(e).strip().splitlines()
        raise CheckpointError(
            f"{path}: the weights do not fit a {cfg.arch} on {cfg.backbone} with {k} classes: "
            f"{' '.join(first[1:3]) if len(first) > 1 else first[0] if first else e}"
        ) from None
    meta = {key: ck[key] for key in ("config", "class_names", "cat_ids", "epoch", "num_classes")}
    return model.eval(), meta
