"""Detection training on the shared run machinery: only the detection step is detection's own.

:func:`fit_detector` runs the shared epoch loop (:func:`rexnet.run.run_epochs`) with
:class:`DetectSteps`: a step is the detector's own loss (its forward in train mode), validation is
COCO mAP. The run folder, lock, resume rules (``--allow-change``), finite checks, checkpoints,
``metrics.jsonl``/``summary.json`` (strict JSON) and progress are the shared ones. Resume is exact
at epoch boundaries (weights, optimiser, schedule, data-order RNG).
"""

from __future__ import annotations

import logging
import os
import random
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader

from .._config import check_range
from .._memory import check_training_memory
from ..errors import DivergedError, InputError
from ..run import Progress, Run, StopFlag, read_config_json, resume_changes, run_epochs, saved_config
from ..run.loop import failure_status
from ..train.distributed import DistInfo, all_reduce_sum, average_buffers, init_distributed
from ..train.optim import WarmupCosineLR, param_groups
from ..zoo import get_model_info
from .checkpoint import FORMAT, build_detector, load_detector, read_detect_checkpoint
from .config import RESUME_FIXED, RESUME_FREE, DetectConfig
from .data import DetectionDataset, collate, load_detection_data
from .evaluate import evaluate_coco

__all__ = [
    "DetectConfig",
    "DetectSteps",
    "build_detector",
    "fit_detector",
    "train_detector",
    "load_detector",
    "resume_detect_config",
    "FORMAT",
]

log = logging.getLogger(__name__)


@dataclass
class DetectState:
    """What a detection checkpoint restores: weights, optimiser, schedule, data-order RNG, progress."""

    model: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: WarmupCosineLR
    loader_rng: torch.Generator
    epoch: int = 0  # epochs completed
    best: float = -1.0  # best val bbox AP
    history: list[dict[str, Any]] = field(default_factory=list)

    def state_dict(self) -> dict[str, Any]:
        """The checkpoint's training part."""
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
        """Continue from checkpoint ``ck`` (the LR follows the current config's schedule)."""
        self.model.load_state_dict(ck["model"])
        self.optimizer.load_state_dict(ck["optimizer"])
        self.scheduler.load_state_dict(ck["scheduler"])
        self.loader_rng.set_state(ck["loader_rng"])
        torch.set_rng_state(ck["torch_rng"])
        self.epoch, self.best, self.history = ck["epoch"], ck["best"], list(ck["history"])


class DetectSteps:
    """The detection steps of the shared loop: data loader, DDP, loss step, COCO validation, checkpoint."""

    def __init__(
        self, cfg: DetectConfig, train_set: DetectionDataset, val_set: DetectionDataset, info: DistInfo
    ) -> None:
        self.cfg, self.train_set, self.val_set, self.info = cfg, train_set, val_set, info
        self.sampler = None
        if info.enabled:  # torchrun: each process takes batch_size / world images of a shared permutation
            from torch.utils.data.distributed import DistributedSampler

            self.sampler = DistributedSampler(train_set, shuffle=True, seed=cfg.seed, drop_last=True)
        self.rng = torch.Generator().manual_seed(cfg.seed)
        self.loader = DataLoader(
            train_set,
            batch_size=max(1, cfg.batch_size // info.world_size),
            shuffle=self.sampler is None,
            sampler=self.sampler,
            collate_fn=collate,
            generator=self.rng if self.sampler is None else None,
            drop_last=len(train_set) > cfg.batch_size,  # BatchNorm needs > 1 image per batch
        )
        self.net: nn.Module | None = None

    def new_state(self) -> DetectState:
        """The detector on the device, AdamW/SGD (no decay on BN and biases), warm-up + cosine schedule."""
        cfg = self.cfg
        model = build_detector(cfg, self.train_set.num_classes).to(cfg.device)
        groups = param_groups(model, cfg.weight_decay)
        if cfg.optimizer == "sgd":
            opt: torch.optim.Optimizer = torch.optim.SGD(groups, lr=cfg.lr, momentum=0.9)
        else:
            opt = torch.optim.AdamW(groups, lr=cfg.lr)
        total = cfg.epochs * len(self.loader)  # warm-up from 0.001 x lr, then cosine to 0
        sched = WarmupCosineLR(opt, total, cfg.warmup_iters, peak=1.0, warmup_lr=0.001, min_lr=0.0)
        self.net = nn.parallel.DistributedDataParallel(model) if self.info.enabled else model
        return DetectState(model, opt, sched, self.rng)

    def train_epoch(self, state: DetectState, stop: StopFlag) -> dict[str, Any]:
        """One epoch of loss steps (a stop signal ends the run after it: no mid-epoch resume here)."""
        cfg, net = self.cfg, self.net
        assert net is not None
        if self.sampler is not None:
            self.sampler.set_epoch(state.epoch)
        net.train()
        t0, sums, n = time.perf_counter(), {}, 0
        desc, steps = f"epoch {state.epoch + 1}/{cfg.epochs}", len(self.loader)
        bar = Progress(cfg.progress and self.info.is_main, steps, 0, desc, max(1, steps // 4))
        for images, targets in self.loader:
            images = [im.to(cfg.device) for im in images]
            targets = [{k: v.to(cfg.device) for k, v in t.items()} for t in targets]
            losses = net(images, targets)
            loss = sum(losses.values())
            self._check_loss(loss, losses, state)
            state.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.grad_clip:
                nn.utils.clip_grad_norm_(net.parameters(), cfg.grad_clip)
            state.optimizer.step()
            state.scheduler.step()
            n += 1
            for k, v in {**losses, "loss": loss}.items():
                sums[k] = sums.get(k, 0.0) + float(v.detach())
            bar.update(n, loss=f"{float(loss.detach()):.3f}")
        bar.close()
        row = {"lr": state.optimizer.param_groups[0]["lr"], "seconds": time.perf_counter() - t0}
        return {**row, **{f"train_{k}": v / max(n, 1) for k, v in sums.items()}}

    def _check_loss(self, loss: torch.Tensor, parts: dict[str, torch.Tensor], state: DetectState) -> None:
        """Every rank learns whether any rank's loss is NaN/inf, so all stop together."""
        bad = all_reduce_sum(torch.tensor([0.0 if torch.isfinite(loss) else 1.0]), self.info)
        if bad[0]:
            what = {k: float(v) for k, v in parts.items()}
            raise DivergedError(
                f"loss became non-finite at epoch {state.epoch + 1}: {what}; stopped without saving (the last "
                "finite checkpoint is kept). Try a lower --lr or --grad-clip"
            )

    def validate(self, state: DetectState, train: dict[str, Any]) -> dict[str, Any]:
        """BN statistics averaged over ranks; COCO metrics on the main process when this epoch evaluates."""
        average_buffers(state.model, self.info)  # every rank holds the same BN statistics
        epoch, cfg = state.epoch + 1, self.cfg
        row = {"epoch": epoch, **train}
        due = epoch == cfg.epochs or (cfg.eval_every and epoch % cfg.eval_every == 0)
        if due and self.info.is_main:
            row.update({f"val_{k}": v for k, v in evaluate_coco(state.model, self.val_set, device=cfg.device).items()})
        return row

    def end_epoch(self, state: DetectState, metrics: dict[str, Any]) -> bool:
        """Count the epoch, log it; whether its val bbox AP is the best so far."""
        state.history.append(metrics)
        state.epoch += 1
        if self.info.is_main:
            log.info("epoch %d: %s", state.epoch, ", ".join(f"{k}={v:.4g}" for k, v in metrics.items() if k != "epoch"))
        ap = metrics.get("val_bbox_AP")
        if ap is None or ap <= state.best:
            return False
        state.best = ap
        return True

    def weights(self, state: DetectState) -> dict[str, torch.Tensor]:
        """The tensors that must stay finite."""
        return state.model.state_dict()

    def checkpoint(self, state: DetectState) -> dict[str, Any]:
        """The detection checkpoint (format :data:`FORMAT`)."""
        ds = self.train_set
        extra = dict(num_classes=ds.num_classes, class_names=ds.class_names, cat_ids=ds.cat_ids)
        return dict(format=FORMAT, **state.state_dict(), config=self.cfg.to_dict(), **extra)

    def stop_requested(self, stop: StopFlag) -> bool:
        """Whether any rank received SIGINT/SIGTERM (a collective: also the barrier after rank 0's checkpoint)."""
        return bool(all_reduce_sum(torch.tensor([float(stop.signal is not None)]), self.info)[0] > 0)


def fit_detector(
    cfg: DetectConfig,
    train_set: DetectionDataset,
    val_set: DetectionDataset,
    out: str | os.PathLike | None = None,
    *,
    resume: bool = False,
    stop_after: int | None = None,
    allow_change: Iterable[str] = (),
) -> dict[str, Any]:
    """Train ``cfg``'s detector on ``train_set``, evaluate COCO mAP on ``val_set``; returns the summary.

    With ``out``, writes the run folder (under the run lock; a folder of another kind, or a finished
    detection run without ``resume``, is refused). ``resume`` continues from ``out/checkpoints/last.pt``
    (the same weights, optimiser, schedule and data order as an uninterrupted run); ``cfg`` must equal
    the run's ``config.json`` except for the fields named in ``allow_change`` (e.g. ``epochs``, ``lr``,
    ``batch_size``). ``stop_after`` ends this call after that many epochs (the schedule still spans
    ``cfg.epochs``; resume later).

    Raises:
        DivergedError: The loss or the weights became NaN/inf (status ``diverged``; the last finite checkpoint stays).
        RunLockedError: Another live process holds ``out``.
        ResumeMismatchError: ``resume`` with settings that differ from the run's, not in ``allow_change``.
    """
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    check_range("threads", cfg.threads, 0, cores)
    if cfg.threads > 0:
        torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    random.seed(cfg.seed)
    info = init_distributed(cfg.device)
    if cfg.batch_size // info.world_size < 2 and info.enabled:
        raise InputError(f"batch_size {cfg.batch_size} over {info.world_size} processes leaves < 2 images each")
    with Run(out, "detect", main=info.is_main).open(resume=resume) as run:
        record = _resume_record(run, cfg, allow_change) if resume else {}
        steps = DetectSteps(cfg, train_set, val_set, info)
        state = steps.new_state()
        last = run.last_checkpoint()
        if resume and last is not None:
            state.load_state_dict(read_detect_checkpoint(last))
            log.info("resumed from epoch %d", state.epoch)
        run.reset_metrics(state.history)
        run.write_config({**cfg.to_dict(), **record})
        end = cfg.epochs if stop_after is None else min(cfg.epochs, state.epoch + stop_after)
        status = "completed"
        try:
            status = run_epochs(run, steps, state, end)
        except BaseException as e:
            status = failure_status(e)
            raise
        finally:
            summary = _summary(run, state, cfg, status)
    return summary


def _resume_record(run: Run, cfg: DetectConfig, allow_change: Iterable[str]) -> dict[str, Any]:
    """Check ``cfg`` against the run's ``config.json``; the ``resume_changes`` history to keep in it."""
    if run.folder is None or not (run.folder / "config.json").is_file():
        return {}
    saved = saved_config(DetectConfig, run.folder)
    changes = resume_changes(saved, cfg, allow_change, free=RESUME_FREE, fixed=RESUME_FIXED)
    history = list(read_config_json(run.folder).get("resume_changes") or [])
    if changes:
        log.warning("resuming %s with changed settings: %s", run.folder, changes)
        history.append({"time": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "changes": changes})
    return {"resume_changes": history} if history else {}


def _summary(run: Run, state: DetectState, cfg: DetectConfig, status: str) -> dict[str, Any]:
    """The run's summary, written to ``summary.json``."""
    final = state.history[-1] if state.history else {}
    summary = dict(
        status=status,
        config=cfg.to_dict(),
        epochs_run=len(state.history),
        params=sum(p.numel() for p in state.model.parameters()),
        train_seconds=sum(r["seconds"] for r in state.history),
        **{k: v for k, v in final.items() if k.startswith("val_")},
    )
    run.write_json("summary.json", summary)
    return summary


def resume_detect_config(out: str | os.PathLike, **overrides: Any) -> DetectConfig:
    """The config of the detection run in ``out`` with ``overrides`` (the flags given with ``--resume``).

    Raises:
        InputError: Nothing to resume in ``out``, or it holds another kind of run.
    """
    if not (Path(out) / "config.json").is_file():
        raise InputError(f"nothing to resume in {out}: no config.json")
    Run(out, "detect").check(resume=True)
    return saved_config(DetectConfig, out).replace(**overrides)


def train_detector(
    cfg: DetectConfig, out: str | os.PathLike, *, resume: bool = False, allow_change: Iterable[str] = ()
) -> dict[str, Any]:
    """Load ``cfg.data`` (train and val splits) and run :func:`fit_detector` into the run folder ``out``.

    Raises:
        ResourceError: Training the backbone alone at ``cfg.image_size`` and ``cfg.batch_size`` would not
            fit in memory (checked before any data or model is built).
    """
    Run(out, "detect").check(resume=resume)  # refuse a wrong folder before loading anything
    plan = get_model_info(cfg.backbone).plan()
    per_process = max(1, cfg.batch_size // init_distributed(cfg.device).world_size)
    check_training_memory(plan, cfg.image_size, 1, per_process, what=f"{cfg.arch} on {cfg.backbone}")
    load = dict(image_size=cfg.image_size, masks=cfg.masks)
    train_set = load_detection_data(cfg.data, "train", limit=cfg.train_limit, **load)  # type: ignore[arg-type]
    val_set = load_detection_data(cfg.data, "val", limit=cfg.val_limit, **load)  # type: ignore[arg-type]
    return fit_detector(cfg, train_set, val_set, out, resume=resume, allow_change=allow_change)
