"""``train(cfg)``: datasets + model + :func:`~rexnet.train.loop.fit` + run folder, as the CLI runs it."""

from __future__ import annotations

import json
import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist

from ..data import AugmentConfig, build_datasets
from ..errors import RexnetError
from ..zoo import create_model
from .checkpoint import load_checkpoint
from .config import ConfigError, TrainConfig
from .distributed import init_distributed
from .evaluate import evaluate
from .loop import default_threads, fit
from .outputs import write_json

__all__ = ["RunResult", "train", "resume_config", "augment_from_config", "build_model"]

log = logging.getLogger(__name__)


@dataclass
class RunResult:
    """What :func:`train` returns.

    Attributes:
        out_dir: The run folder.
        status: ``completed`` or ``interrupted`` (resume with ``resume=True``).
        val_top1 / best_top1: Last and best validation top-1 (%).
        metrics: The summary (last epoch's metrics, best, skipped images, timing).
        history: One dict per epoch, as in ``metrics.jsonl``.
    """

    out_dir: Path | None
    status: str
    val_top1: float
    best_top1: float
    metrics: dict[str, Any] = field(repr=False, default_factory=dict)
    history: list[dict[str, Any]] = field(repr=False, default_factory=list)


def augment_from_config(cfg: TrainConfig) -> AugmentConfig:
    """The training augmentation a config describes."""
    return AugmentConfig(scale=cfg.aug_scale, ratio=cfg.aug_ratio, hflip=cfg.hflip, randaug_n=cfg.randaug_n,
                         randaug_m=cfg.randaug_m, randaug_mstd=cfg.randaug_mstd, reprob=cfg.reprob)


def build_model(cfg: TrainConfig, num_classes: int) -> torch.nn.Module:
    """``create_model`` with the config's dropout, drop-path, pretrained weights (new head) and freezing."""
    model = create_model(cfg.model, pretrained=cfg.pretrained, num_classes=num_classes,
                         drop_head=cfg.pretrained is not None, drop_rate=cfg.dropout, drop_path_rate=cfg.drop_path)
    width = dict(getattr(getattr(model, "plan", None), "params", ()) or ()).get("width_mult", 1.0)
    if cfg.drop_path == 0 and width >= 1.5 and cfg.pretrained is None:
        log.warning("%s (width %.1f): the paper's authors recommend stochastic depth for widths >= 1.5, "
                    "e.g. --drop-path 0.2", cfg.model, width)
    if cfg.freeze_backbone:
        if cfg.pretrained is None:
            log.warning("freeze_backbone without pretrained weights trains only a head on random features")
        head = ("classifier.", "head_hidden.")
        for name, p in model.named_parameters():
            p.requires_grad_(name.startswith(head))
    return model


def _slug(s: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", Path(s).name if os.sep in s or "/" in s else s).strip("_") or "data"


def _resolve_out(cfg: TrainConfig, resume: bool) -> Path:
    if cfg.out:
        out = Path(cfg.out)
        if not resume and (out / "checkpoints" / "last.pt").exists():
            raise RexnetError(f"{out} already holds a run; pass --resume to continue it or choose another --out")
        return out
    base = Path("runs") / f"{cfg.model}-{_slug(cfg.data)}"
    candidates = [base] + [base.with_name(f"{base.name}-{i}") for i in range(2, 1000)]
    used = [c for c in candidates if c.exists()]
    if resume:
        if not used:
            raise RexnetError(f"nothing to resume: no run folder {base}; pass --out RUN_DIR")
        return used[-1]
    return next(c for c in candidates if not c.exists())


def resume_config(out_dir: str | os.PathLike) -> TrainConfig:
    """The config a run folder was started with (from ``config.json``), to resume it.

    Raises:
        RexnetError: No ``config.json`` in ``out_dir``.
    """
    path = Path(out_dir) / "config.json"
    if not path.is_file():
        raise RexnetError(f"cannot resume: {path} not found (is {out_dir} a run folder?)")
    saved = json.loads(path.read_text())
    known = {f for f in TrainConfig.__dataclass_fields__}
    return TrainConfig().replace(**{k: v for k, v in saved.items() if k in known})


def _test_best(model: torch.nn.Module, bundle: Any, cfg: TrainConfig, out: Path) -> dict[str, Any]:
    """Top-1/top-5 of the best-on-validation checkpoint on the official test split (reported, never chosen on)."""
    best = out / "checkpoints" / "best.pt"
    if best.is_file():
        model.load_state_dict(load_checkpoint(best)["model"])
    res = evaluate(model, bundle.test, batch_size=256, class_names=bundle.class_names, device=cfg.device,
                   channels_last=cfg.channels_last, amp=cfg.amp)
    log.info("test split (%d images, best-val checkpoint): top1 %.2f  top5 %.2f", res["count"], res["top1"],
             res["top5"])
    return dict(test_top1=res["top1"], test_top5=res["top5"], test_loss=res["loss"], test_size=res["count"],
                test_per_class=res["per_class"])


def train(cfg: TrainConfig, *, resume: bool = False, model: torch.nn.Module | None = None) -> RunResult:
    """Train ``cfg.model`` on ``cfg.data`` and write the run folder (under torchrun: DDP).

    Args:
        cfg: The run's config (see :class:`TrainConfig`; ``cfg.out`` is the run folder, default
            ``runs/<model>-<data>[-N]``).
        resume: Continue the run in ``cfg.out`` (default: the newest matching run folder)
            from its ``checkpoints/last.pt``.
        model: A model built by the caller (e.g. ``RexNet(plan, num_classes=10)`` for a plan
            no registered name describes) instead of ``cfg.model``; build it after
            ``torch.manual_seed(cfg.seed)`` for reproducible weights.

    Returns:
        A :class:`RunResult`.

    Raises:
        RexnetError: Bad data/model names, a folder that already holds a run, unreadable checkpoints.

    Example:
        >>> res = train(TrainConfig(epochs=1, train_limit=64, out="/tmp/rexnet-doc"))  # doctest: +SKIP
    """
    info = init_distributed(cfg.device)
    out = _resolve_out(cfg, resume) if info.is_main else None
    if info.enabled:
        box = [out]
        dist.broadcast_object_list(box, src=0)
        out = box[0]
    assert out is not None
    cfg = cfg.replace(out=str(out))
    torch.set_num_threads(cfg.threads or default_threads())
    bundle = build_datasets(cfg.data, cfg.image_size, model=cfg.model, augment=augment_from_config(cfg),
                            strict=cfg.strict, train_limit=cfg.train_limit, val_limit=cfg.val_limit)
    num_classes = cfg.num_classes or bundle.num_classes
    if num_classes != bundle.num_classes:
        raise ConfigError(f"num_classes={cfg.num_classes} but {bundle.name} has {bundle.num_classes} classes")
    torch.manual_seed(cfg.seed)  # the same initial weights on every process
    if model is None:
        model = build_model(cfg, num_classes)
    if info.is_main:
        log.info("training %s on %s (%d train / %d val images, %d classes) -> %s", cfg.model, bundle.name,
                 len(bundle.train), len(bundle.val), num_classes, out)
    res = fit(model, bundle.train, bundle.val, cfg, out_dir=out, resume=resume, class_names=bundle.class_names)
    history = res.pop("history")
    if bundle.test is not None and res["status"] == "completed" and info.is_main:
        res.update(_test_best(model, bundle, cfg, Path(out)))
        write_json(res, Path(out) / "summary.json")
    return RunResult(Path(out), res["status"], res.get("val_top1", float("nan")), res["best_top1"], res, history)
