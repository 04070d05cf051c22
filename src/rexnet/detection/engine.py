"""Detection training: a config dataclass, one plain loop, a run folder, exact-epoch resume, DDP via torchrun.

Run folder: ``config.json``, ``metrics.jsonl`` (one line per epoch: loss parts, lr, COCO metrics),
``summary.json``, ``checkpoints/{last,best}.pt`` (atomic writes, read back weights-only).
"""

from __future__ import annotations

import dataclasses
import json
import logging
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

from .._files import hold_folder
from ..errors import CheckpointError, InputError
from ..train.distributed import average_buffers
from ..train.optim import WarmupCosineLR
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
            raise InputError(f"unknown detector {self.arch!r}; expected one of: {', '.join(DETECTORS)}")
        if self.optimizer not in ("adamw", "sgd"):
            raise InputError(f"optimizer must be 'adamw' or 'sgd', got {self.optimizer!r}")
        for name in ("epochs", "batch_size", "image_size"):
            if getattr(self, name) < 1:
                raise InputError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.arch == "maskrcnn_fpn":
            self.masks = True

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> DetectConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise InputError(f"unknown detection config keys: {', '.join(unknown)}")
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


def _optimizer(model: nn.Module, cfg: DetectConfig) -> torch.optim.Optimizer:
    decay, no_decay = [], []
    for p in model.parameters():
        if p.requires_grad:
            (no_decay if p.ndim <= 1 else decay).append(p)  # no weight decay on BN and biases
    groups = [dict(params=decay, weight_decay=cfg.weight_decay), dict(params=no_decay, weight_decay=0.0)]
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=cfg.lr, momentum=0.9)
    return torch.optim.AdamW(groups, lr=cfg.lr)


@dataclass
class _State:
    """What a detection checkpoint restores: weights, optimiser, schedule, data-order RNG, progress."""

    model: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: WarmupCosineLR
    loader_rng: torch.Generator
    epoch: int = 0  # epochs completed
    best: float = -1.0  # best val bbox AP
    history: list[dict[str, Any]] = dataclasses.field(default_factory=list)

    def state_dict(self) -> dict[str, Any]:
        return dict(
            model=self.model.state_dict(),
            optimizer=self.optimizer.state_dict(),
            scheduler=self.scheduler.state_dict(),
            loader_rng=self.loader_rng.get_state(),
            torch_rng=torch.get_rng_state(),
            epoch=self.epoch,
            best=self.best,
            history=self.history,
        )

    def load_state_dict(self, ck: dict[str, Any]) -> None:
        self.model.load_state_dict(ck["model"])
        self.optimizer.load_state_dict(ck["optimizer"])
        self.scheduler.load_state_dict(ck["scheduler"])
        self.loader_rng.set_state(ck["loader_rng"])
        torch.set_rng_state(ck["torch_rng"])
        self.epoch, self.best, self.history = ck["epoch"], ck["best"], list(ck["history"])


def _train_loader(
    cfg: DetectConfig, train_set: DetectionDataset, world: int, g: torch.Generator
) -> tuple[DataLoader, Any]:
    """The training loader and its ``DistributedSampler`` (``None`` for one process)."""
    sampler = None
    if world > 1:  # torchrun: each process takes batch_size / world images of a shared permutation
        from torch.utils.data.distributed import DistributedSampler

        sampler = DistributedSampler(train_set, shuffle=True, seed=cfg.seed, drop_last=True)
    loader = DataLoader(
        train_set,
        batch_size=max(1, cfg.batch_size // world),
        shuffle=sampler is None,
        sampler=sampler,
        collate_fn=collate,
        generator=g if sampler is None else None,
        drop_last=len(train_set) > cfg.batch_size,  # BatchNorm needs > 1 image per batch
    )
    return loader, sampler


def _new_state(cfg: DetectConfig, num_classes: int, steps_per_epoch: int, g: torch.Generator) -> _State:
    model = build_detector(cfg, num_classes).to(cfg.device)
    opt = _optimizer(model, cfg)
    # linear warm-up from 0.001 x lr, then cosine to 0 (factors of cfg.lr)
    sched = WarmupCosineLR(opt, cfg.epochs * steps_per_epoch, cfg.warmup_iters, peak=1.0, warmup_lr=0.001, min_lr=0.0)
    return _State(model, opt, sched, g)


def _train_one_epoch(
    net: nn.Module, state: _State, loader: DataLoader, cfg: DetectConfig, show: bool
) -> dict[str, Any]:
    """One epoch of ``net`` (the model, or its DDP wrapper); the epoch's row (lr, seconds, mean losses)."""
    net.train()
    t0, sums, n = time.perf_counter(), {}, 0
    bar = _progress(loader, show, f"epoch {state.epoch + 1}/{cfg.epochs}")
    for images, targets in bar:
        images = [im.to(cfg.device) for im in images]
        targets = [{k: v.to(cfg.device) for k, v in t.items()} for t in targets]
        losses = net(images, targets)
        loss = sum(losses.values())
        if not torch.isfinite(loss):
            parts = {k: float(v) for k, v in losses.items()}
            raise InputError(f"non-finite loss at epoch {state.epoch + 1}: {parts}")
        state.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if cfg.grad_clip:
            nn.utils.clip_grad_norm_(net.parameters(), cfg.grad_clip)
        state.optimizer.step()
        state.scheduler.step()
        n += 1
        for k, v in {**losses, "loss": loss}.items():
            sums[k] = sums.get(k, 0.0) + float(v.detach())
        if hasattr(bar, "set_postfix"):
            bar.set_postfix(loss=f"{float(loss):.3f}")
    row: dict[str, Any] = {
        "epoch": state.epoch + 1,
        "lr": state.optimizer.param_groups[0]["lr"],
        "seconds": time.perf_counter() - t0,
    }
    row.update({f"train_{k}": v / max(n, 1) for k, v in sums.items()})
    return row


def _validate(state: _State, val_set: DetectionDataset, cfg: DetectConfig, dist_info: Any) -> dict[str, float]:
    """BN statistics averaged over ranks; COCO metrics on the main process when this epoch evaluates."""
    if dist_info is not None:
        average_buffers(state.model, dist_info)  # every rank holds the same BN statistics
    epoch = state.epoch + 1
    due = epoch == cfg.epochs or (cfg.eval_every and epoch % cfg.eval_every == 0)
    if not due or (dist_info is not None and not dist_info.is_main):
        return {}
    return {f"val_{k}": v for k, v in evaluate_coco(state.model, val_set, device=cfg.device).items()}


def _save(state: _State, run: Path, cfg: DetectConfig, train_set: DetectionDataset) -> None:
    """``metrics.jsonl`` and ``checkpoints/last.pt`` (and ``best.pt`` when val bbox AP improved)."""
    _write_text("".join(json.dumps(r) + "\n" for r in state.history), run / "metrics.jsonl")
    ap = state.history[-1].get("val_bbox_AP")
    is_best = ap is not None and ap > state.best
    if is_best:
        state.best = ap
    ck = dict(
        format=FORMAT,
        **state.state_dict(),
        config=dataclasses.asdict(cfg),
        num_classes=train_set.num_classes,
        class_names=train_set.class_names,
        cat_ids=train_set.cat_ids,
    )
    if is_best:
        atomic_torch_save(ck, run / "checkpoints" / "best.pt")
    atomic_torch_save(ck, run / "checkpoints" / "last.pt")


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
    world, main = (dist_info.world_size, dist_info.is_main) if dist_info else (1, True)
    g = torch.Generator().manual_seed(cfg.seed)
    loader, sampler = _train_loader(cfg, train_set, world, g)
    state = _new_state(cfg, train_set.num_classes, len(loader), g)
    run = Path(out) if out is not None else None
    if run is not None:
        _open_run(run, state, cfg, resume, main)
    net = nn.parallel.DistributedDataParallel(state.model) if world > 1 else state.model
    end = cfg.epochs if stop_after is None else min(cfg.epochs, state.epoch + stop_after)
    while state.epoch < end:
        if sampler is not None:
            sampler.set_epoch(state.epoch)
        row = _train_one_epoch(net, state, loader, cfg, cfg.progress and main)
        row.update(_validate(state, val_set, cfg, dist_info))
        state.history.append(row)
        if main:
            log.info("epoch %d: %s", row["epoch"], ", ".join(f"{k}={v:.4g}" for k, v in row.items() if k != "epoch"))
        state.epoch += 1
        if run is not None and main:
            _save(state, run, cfg, train_set)
        if dist_info is not None:
            torch.distributed.barrier()  # the others wait for rank 0's evaluation and checkpoint
    return _summary(state, cfg, run if main else None)


def _open_run(run: Path, state: _State, cfg: DetectConfig, resume: bool, main: bool) -> None:
    """Create the run folder, restore ``last.pt`` when resuming, write ``config.json``."""
    (run / "checkpoints").mkdir(parents=True, exist_ok=True)
    hold_folder(run)  # TODO(run machinery): the run lock will hold it
    last = run / "checkpoints" / "last.pt"
    if resume and last.is_file():
        state.load_state_dict(_load_checkpoint(last))
        log.info("resumed from epoch %d", state.epoch)
    if main:
        _write_json(dataclasses.asdict(cfg), run / "config.json")


def _summary(state: _State, cfg: DetectConfig, run: Path | None) -> dict[str, Any]:
    """The run's summary (written to ``summary.json`` when ``run`` is given)."""
    final = state.history[-1] if state.history else {}
    summary = dict(
        config=dataclasses.asdict(cfg),
        epochs_run=len(state.history),
        params=sum(p.numel() for p in state.model.parameters()),
        train_seconds=sum(r["seconds"] for r in state.history),
        **{k: v for k, v in final.items() if k.startswith("val_")},
    )
    if run is not None:
        _write_json(summary, run / "summary.json")
    return summary


def _init_distributed(cfg: DetectConfig) -> Any:
    """torchrun's process group (gloo on CPU), or ``None`` for a single process."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return None
    from ..train.distributed import init_distributed

    info = init_distributed(cfg.device)
    if cfg.batch_size // info.world_size < 2:
        raise InputError(f"batch_size {cfg.batch_size} over {info.world_size} processes leaves < 2 images each")
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
            raise InputError(f"nothing to resume in {out}: no config.json")
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
