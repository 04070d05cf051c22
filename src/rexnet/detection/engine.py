"""Detection training: a config dataclass, one plain loop, a run folder, exact-epoch resume, DDP via torchrun.

Run folder: ``config.json``, ``metrics.jsonl`` (one line per epoch: loss parts, lr, COCO metrics),
``summary.json``, ``checkpoints/{last,best}.pt`` (atomic writes, read back weights-only).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import random
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader

from ..errors import CheckpointError, RexnetError
from ..weights.io import atomic_torch_save, safe_torch_load
from .data import DetectionDataset, collate, load_detection_data
from .evaluate import evaluate_coco
from .models import DETECTORS, create_detector

__all__ = ["DetectConfig", "build_detector", "fit_detector", "train_detector", "load_detector", "FORMAT"]

log = logging.getLogger(__name__)
FORMAT = "rexnet.detect/1"


@dataclass
class DetectConfig:
    """Everything a detection run needs; saved in the run folder and in every checkpoint."""

    arch: str = "ssdlite"
    backbone: str = "rexnet_100"
    data: str = "demo"  # or a COCO folder
    image_size: int = 128
    masks: bool = False  # Mask R-CNN turns this on
    pretrained_backbone: str | None = None
    epochs: int = 12
    batch_size: int = 16
    optimizer: str = "adamw"  # or "sgd" (momentum 0.9)
    lr: float = 2e-3
    weight_decay: float = 1e-4
    warmup_iters: int = 50
    seed: int = 0
    train_limit: int | None = None
    val_limit: int | None = None
    eval_every: int = 0  # epochs; 0 = at the end only
    grad_clip: float = 10.0
    threads: int = 0  # torch.set_num_threads when > 0
    progress: bool = True
    device: str = "cpu"

    def __post_init__(self) -> None:
        if self.arch not in DETECTORS:
            raise RexnetError(f"unknown detector {self.arch!r}; expected one of: {', '.join(DETECTORS)}")
        if self.optimizer not in ("adamw", "sgd"):
            raise RexnetError(f"optimizer must be 'adamw' or 'sgd', got {self.optimizer!r}")
        for name in ("epochs", "batch_size", "image_size"):
            if getattr(self, name) < 1:
                raise RexnetError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.arch == "maskrcnn_fpn":
            self.masks = True

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> DetectConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise RexnetError(f"unknown detection config keys: {', '.join(unknown)}")
        return cls(**d)


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


def _write_text(text: str, path: Path) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def _write_json(obj: Any, path: Path) -> None:
    _write_text(json.dumps(obj, indent=2) + "\n", path)


def _lr_factor(it: int, total: int, warmup: int) -> float:
    if it < warmup:
        return 0.001 + (1 - 0.001) * it / warmup
    return 0.5 * (1 + math.cos(math.pi * min(1.0, (it - warmup) / max(1, total - warmup))))


def _optimizer(model: nn.Module, cfg: DetectConfig) -> torch.optim.Optimizer:
    decay, no_decay = [], []
    for p in model.parameters():
        if p.requires_grad:
            (no_decay if p.ndim <= 1 else decay).append(p)  # no weight decay on BN and biases
    groups = [dict(params=decay, weight_decay=cfg.weight_decay), dict(params=no_decay, weight_decay=0.0)]
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=cfg.lr, momentum=0.9)
    return torch.optim.AdamW(groups, lr=cfg.lr)


def fit_detector(
    cfg: DetectConfig,
    train_set: DetectionDataset,
    val_set: DetectionDataset,
    out: str | os.PathLike | None = None,
    *,
    resume: bool = False,
    stop_after: int | None = None,
) -> dict[str, Any]:
    """Train ``cfg``'s detector on ``train_set``, evaluate COCO mAP on ``val_set``; returns the summary.

    With ``out``, writes the run folder; ``resume`` continues from ``out/checkpoints/last.pt`` (the
    same weights, optimiser, schedule and data order as an uninterrupted run). ``stop_after`` ends this
    call after that many epochs (the schedule still spans ``cfg.epochs``; resume later).
    """
    if cfg.threads > 0:
        torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    random.seed(cfg.seed)
    dist_info = _init_distributed(cfg)
    world = dist_info.world_size if dist_info else 1
    main_process = dist_info is None or dist_info.is_main
    model = build_detector(cfg, train_set.num_classes).to(cfg.device)
    g = torch.Generator().manual_seed(cfg.seed)
    sampler = None
    if world > 1:  # torchrun: each process takes batch_size / world images of a shared permutation
        from torch.utils.data.distributed import DistributedSampler

        sampler = DistributedSampler(train_set, shuffle=True, seed=cfg.seed, drop_last=True)
    per_process = max(1, cfg.batch_size // world)
    loader = DataLoader(
        train_set,
        batch_size=per_process,
        shuffle=sampler is None,
        sampler=sampler,
        collate_fn=collate,
        generator=g if sampler is None else None,
        drop_last=len(train_set) > cfg.batch_size,  # BatchNorm needs > 1 image per batch
    )
    total = cfg.epochs * len(loader)
    opt = _optimizer(model, cfg)
    net = model  # what is saved and evaluated; ``model`` may become the DDP wrapper
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda it: _lr_factor(it, total, cfg.warmup_iters))
    run = Path(out) if out is not None else None
    history: list[dict[str, Any]] = []
    start_epoch, best = 0, -1.0
    if run is not None:
        (run / "checkpoints").mkdir(parents=True, exist_ok=True)
        if resume and (run / "checkpoints" / "last.pt").is_file():
            ck = _load_checkpoint(run / "checkpoints" / "last.pt")
            net.load_state_dict(ck["model"])
            opt.load_state_dict(ck["optimizer"])
            sched.load_state_dict(ck["scheduler"])
            g.set_state(ck["loader_rng"])
            torch.set_rng_state(ck["torch_rng"])
            start_epoch, best, history = ck["epoch"], ck["best"], list(ck["history"])
            log.info("resumed from epoch %d", start_epoch)
        if main_process:
            _write_json(dataclasses.asdict(cfg), run / "config.json")
    if world > 1:
        from torch.nn.parallel import DistributedDataParallel

        model = DistributedDataParallel(model)
    end = cfg.epochs if stop_after is None else min(cfg.epochs, start_epoch + stop_after)
    for epoch in range(start_epoch, end):
        if sampler is not None:
            sampler.set_epoch(epoch)
        model.train()
        t0, sums, n = time.perf_counter(), {}, 0
        bar = _progress(loader, cfg.progress and main_process, f"epoch {epoch + 1}/{cfg.epochs}")
        for images, targets in bar:
            images = [im.to(cfg.device) for im in images]
            targets = [{k: v.to(cfg.device) for k, v in t.items()} for t in targets]
            losses = model(images, targets)
            loss = sum(losses.values())
            if not torch.isfinite(loss):
                raise RexnetError(
                    f"non-finite loss at epoch {epoch + 1}: { ({k: float(v) for k, v in losses.items()}) }"
                )
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.grad_clip:
                nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            opt.step()
            sched.step()
            n += 1
            for k, v in losses.items():
                sums[k] = sums.get(k, 0.0) + float(v.detach())
            sums["loss"] = sums.get("loss", 0.0) + float(loss.detach())
            if hasattr(bar, "set_postfix"):
                bar.set_postfix(loss=f"{float(loss):.3f}")
        row: dict[str, Any] = {"epoch": epoch + 1, "lr": opt.param_groups[0]["lr"], "seconds": time.perf_counter() - t0}
        row.update({f"train_{k}": v / max(n, 1) for k, v in sums.items()})
        last = epoch + 1 == cfg.epochs
        if dist_info is not None:
            from ..train.distributed import average_buffers

            average_buffers(net, dist_info)  # every rank holds the same BN statistics
        if main_process and (last or (cfg.eval_every and (epoch + 1) % cfg.eval_every == 0)):
            row.update({f"val_{k}": v for k, v in evaluate_coco(net, val_set, device=cfg.device).items()})
        history.append(row)
        if main_process:
            log.info("epoch %d: %s", epoch + 1, ", ".join(f"{k}={v:.4g}" for k, v in row.items() if k != "epoch"))
        if run is not None and main_process:
            _write_text("".join(json.dumps(r) + "\n" for r in history), run / "metrics.jsonl")
            ck = dict(
                format=FORMAT,
                model=net.state_dict(),
                optimizer=opt.state_dict(),
                scheduler=sched.state_dict(),
                loader_rng=g.get_state(),
                torch_rng=torch.get_rng_state(),
                epoch=epoch + 1,
                best=best,
                history=history,
                config=dataclasses.asdict(cfg),
                num_classes=train_set.num_classes,
                class_names=train_set.class_names,
                cat_ids=train_set.cat_ids,
            )
            ap = row.get("val_bbox_AP")
            if ap is not None and ap > best:
                ck["best"] = best = ap
                atomic_torch_save(ck, run / "checkpoints" / "best.pt")
            atomic_torch_save(ck, run / "checkpoints" / "last.pt")
        if dist_info is not None:
            torch.distributed.barrier()  # the others wait for rank 0's evaluation and checkpoint
    final = history[-1] if history else {}
    summary = dict(
        config=dataclasses.asdict(cfg),
        epochs_run=len(history),
        params=sum(p.numel() for p in net.parameters()),
        train_seconds=sum(r["seconds"] for r in history),
        **{k: v for k, v in final.items() if k.startswith("val_")},
    )
    if run is not None and main_process:
        _write_json(summary, run / "summary.json")
    return summary


def _init_distributed(cfg: DetectConfig) -> Any:
    """torchrun's process group (gloo on CPU), or ``None`` for a single process."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return None
    from ..train.distributed import init_distributed

    info = init_distributed(cfg.device)
    if cfg.batch_size // info.world_size < 2:
        raise RexnetError(f"batch_size {cfg.batch_size} over {info.world_size} processes leaves < 2 images each")
    return info


def _progress(loader: DataLoader, enabled: bool, desc: str) -> Any:
    if not enabled:
        return loader
    from tqdm import tqdm

    return tqdm(loader, desc=desc, leave=False, dynamic_ncols=True)


def _load_checkpoint(path: Path) -> dict[str, Any]:
    obj = safe_torch_load(path)
    if not isinstance(obj, dict) or obj.get("format") != FORMAT:
        found = obj.get("format") if isinstance(obj, dict) else type(obj).__name__
        raise CheckpointError(f"{path} is not a rexnet detection checkpoint (format {found!r}, expected {FORMAT!r})")
    return obj


def train_detector(cfg: DetectConfig, out: str | os.PathLike, *, resume: bool = False) -> dict[str, Any]:
    """Load ``cfg.data`` (train and val splits) and run :func:`fit_detector` into the run folder ``out``."""
    if resume:
        saved = Path(out) / "config.json"
        if not saved.is_file():
            raise RexnetError(f"nothing to resume in {out}: no config.json")
        cfg = DetectConfig.from_dict({**json.loads(saved.read_text()), "progress": cfg.progress})
    train_set = load_detection_data(
        cfg.data, "train", image_size=cfg.image_size, masks=cfg.masks, limit=cfg.train_limit
    )
    val_set = load_detection_data(cfg.data, "val", image_size=cfg.image_size, masks=cfg.masks, limit=cfg.val_limit)
    return fit_detector(cfg, train_set, val_set, out, resume=resume)


def load_detector(checkpoint: str | os.PathLike) -> tuple[nn.Module, dict[str, Any]]:
    """A trained detector (eval mode) and its checkpoint metadata (config, class names, COCO category ids)."""
    ck = _load_checkpoint(Path(checkpoint))
    cfg = DetectConfig.from_dict(ck["config"])
    model = build_detector(cfg, ck["num_classes"], for_loading=True)
    model.load_state_dict(ck["model"])
    meta = {k: ck[k] for k in ("config", "class_names", "cat_ids", "epoch", "num_classes")}
    return model.eval(), meta
