"""``fit``: the training loop (nanoGPT/timm style, no framework).

:func:`fit` is an epoch loop over the steps of :class:`_Run` acting on a :class:`TrainState`:
``train_one_epoch`` (seed, then steps with autocast, accumulation, clipping, EMA, per-step LR)
-> ``validate`` (BN buffers averaged over ranks first) -> ``end_epoch`` (log, metrics.jsonl,
checkpoints last/best) -> ``on_epoch_end``. A SIGINT/SIGTERM finishes the current optimiser
step, saves a mid-epoch checkpoint and returns; ``resume`` (``restore``) continues from it (or
from an epoch boundary) exactly.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import Dataset

from .._device import autocast, resolve_device
from ..data.evaluation import summarize
from ..errors import InputError, NonFiniteLossError
from .checkpoint import load_checkpoint, rng_state, save_checkpoint, set_rng_state
from .config import TrainConfig
from .distributed import DistInfo, all_gather_objects, all_reduce_sum, average_buffers, init_distributed
from .evaluate import eval_sums, shard
from .loaders import _eval_loader, _train_loader, default_threads
from .optim import ModelEma, WarmupCosineLR, build_optimizer, build_scheduler
from .outputs import RunWriter
from .progress import _Progress, _StopFlag
from .sampling import EpochSampler, mix_seed

__all__ = ["fit", "TrainState", "NonFiniteLossError", "default_threads"]

log = logging.getLogger(__name__)


def _layout_free(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Weights in the default (NCHW) memory format, whatever layout training used."""
    return {k: v.contiguous() for k, v in state.items()}


def _freeze_frozen_bn(model: nn.Module) -> None:
    """Keep BatchNorm layers whose parameters are all frozen in eval mode (fine-tuning a head)."""
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            ps = list(m.parameters())
            if ps and not any(p.requires_grad for p in ps):
                m.eval()


@dataclass
class TrainState:
    """What changes while training, and what a checkpoint holds to continue exactly.

    Attributes:
        model / optimizer / scheduler / scaler / ema: The objects being trained.
        epoch: Epochs completed (the epoch in progress, counted from 0).
        step: Optimiser steps done in that epoch (non-zero after a mid-epoch stop).
        partial: That epoch's running sums so far (``loss``, ``correct``, ``count``, ``seconds``).
        rng: The RNG state to continue that epoch with (mid-epoch resume only).
        history: One metrics dict per completed epoch.
        best: ``{"top1": best val top-1, "epoch": its epoch}``.
    """

    model: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: WarmupCosineLR
    scaler: torch.amp.GradScaler
    ema: ModelEma | None = None
    epoch: int = 0
    step: int = 0
    partial: dict[str, float] | None = None
    rng: dict[str, Any] | None = None
    history: list[dict[str, Any]] = field(default_factory=list)
    best: dict[str, Any] = field(default_factory=lambda: {"top1": -1.0, "epoch": 0})

    def state_dict(self) -> dict[str, Any]:
        """The checkpoint's training part (weights saved NCHW whatever the training layout)."""
        return dict(
            model=_layout_free(self.model.state_dict()),
            optimizer=self.optimizer.state_dict(),
            scheduler=self.scheduler.state_dict(),
            scaler=self.scaler.state_dict(),
            ema=_layout_free(self.ema.module.state_dict()) if self.ema else None,
            rng=rng_state(),
            epoch=self.epoch,
            step_in_epoch=self.step,
            partial=self.partial,
            history=self.history,
            best=self.best,
        )

    def load_state_dict(self, ck: dict[str, Any]) -> None:
        """Continue from checkpoint ``ck``; the LR follows this state's scheduler (the current config)."""
        self.model.load_state_dict(ck["model"])
        self.optimizer.load_state_dict(ck["optimizer"])
        self.scheduler.load_state_dict(ck["scheduler"])  # after the optimiser: sets its LR to the schedule's
        self.scaler.load_state_dict(ck.get("scaler") or {})
        if self.ema is not None and ck.get("ema") is not None:
            self.ema.module.load_state_dict(ck["ema"])
        self.epoch, self.step, self.partial = ck["epoch"], ck["step_in_epoch"], ck.get("partial")
        self.rng = ck.get("rng") if self.step else None
        self.history, self.best = list(ck["history"]), dict(ck.get("best") or self.best)


def _new_sums() -> dict[str, float]:
    return dict(loss=0.0, correct=0.0, count=0.0, seconds=0.0)


class _Run:
    """The fixed parts of one ``fit`` call: config, processes, device, data, output; and the
    steps of the loop (:meth:`train_one_epoch`, :meth:`validate`, :meth:`end_epoch`, :meth:`save`,
    :meth:`restore`) that act on a :class:`TrainState`."""

    def __init__(
        self,
        model: nn.Module,
        train_set: Dataset,
        val_set: Dataset,
        cfg: TrainConfig,
        out_dir: Any,
        class_names: list[str] | None,
    ) -> None:
        self.cfg, self.class_names, self.out_dir = cfg, class_names, out_dir
        self.info = info = init_distributed(cfg.device)
        self.device = resolve_device(cfg.device, info.local_rank)
        torch.use_deterministic_algorithms(cfg.deterministic, warn_only=True)
        torch.backends.cudnn.benchmark = not cfg.deterministic
        self.num_classes = len(class_names) if class_names else getattr(model, "num_classes", None)
        if not self.num_classes:
            raise InputError("fit needs class_names or a model with a num_classes attribute")
        if cfg.batch_size % (info.world_size * cfg.accum_steps):
            raise InputError(
                f"batch_size {cfg.batch_size} must be divisible by processes x accum_steps "
                f"({info.world_size} x {cfg.accum_steps})"
            )
        self.micro = cfg.batch_size // (info.world_size * cfg.accum_steps)
        torch.set_num_threads(cfg.threads or default_threads(cfg.image_size, self.micro))
        n = len(train_set)  # type: ignore[arg-type]
        self.sampler = EpochSampler(n, cfg.batch_size, cfg.seed, info.rank, info.world_size)
        if self.sampler.steps == 0:
            raise InputError(f"the training set ({n} images) is smaller than one batch ({cfg.batch_size})")
        self.train_loader = _train_loader(train_set, self.micro, cfg, self.device, self.sampler)
        self.val_loader = _eval_loader(shard(val_set, info), max(self.micro, 64), cfg, self.device)
        self.sizes = {"train_size": n, "val_size": len(val_set)}  # type: ignore[arg-type]
        self.ckpt_dir = Path(out_dir) / "checkpoints" if out_dir is not None else None
        self.skipped: list[tuple[str, str]] = []
        self.net: nn.Module = model  # the module that runs forward: DDP and/or compiled (see ``wrap``)
        self.ddp: nn.parallel.DistributedDataParallel | None = None
        self.writer = RunWriter(None)

    # ---- setup ------------------------------------------------------------------------------------
    def new_state(self, model: nn.Module) -> TrainState:
        """Model on the device (SyncBN, channels-last as configured), EMA, optimiser, schedule, scaler."""
        cfg = self.cfg
        model.to(self.device)
        if cfg.sync_bn and self.info.enabled:
            model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
        if cfg.channels_last:
            model.to(memory_format=torch.channels_last)
        ema = ModelEma(model, cfg.ema_decay) if cfg.ema else None
        opt = build_optimizer(model, cfg)
        sched = build_scheduler(opt, cfg, self.sampler.steps)
        scaler = torch.amp.GradScaler(self.device.type, enabled=self.device.type == "cuda" and cfg.amp == "fp16")
        return TrainState(model, opt, sched, scaler, ema)

    def restore(self, state: TrainState, resume: bool | str | os.PathLike) -> bool:
        """Load the checkpoint ``resume`` names into ``state``; False when there is none to load yet."""
        path = self._resume_path(resume)
        if path is None:
            return False
        state.load_state_dict(load_checkpoint(path))
        log.info("resumed from %s: epoch %d, step %d", path, state.epoch + 1, state.step)
        return True

    def _resume_path(self, resume: bool | str | os.PathLike) -> Path | None:
        if not resume:
            return None
        if not isinstance(resume, bool):
            return Path(resume)
        if self.ckpt_dir is None:
            raise InputError("resume=True needs an out_dir")
        path = self.ckpt_dir / "last.pt"
        if not path.exists() and (Path(self.out_dir) / "config.json").exists():
            log.warning("no checkpoint in %s yet (stopped during epoch 1): starting from scratch", self.ckpt_dir)
            return None
        return path

    def open_writer(self, state: TrainState, resumed: bool, run_info: dict[str, Any] | None) -> None:
        """The run folder: ``metrics.jsonl`` rewritten from the history, a fresh ``config.json``."""
        info = self.info
        self.writer = RunWriter(
            self.out_dir if info.is_main else None,
            self.cfg.tensorboard,
            purge_step=state.epoch + 1 if resumed else None,
        )
        self.writer.reset_metrics(state.history)
        self.writer.write(
            "config.json",
            {
                **self.cfg.to_dict(),
                "world_size": info.world_size,
                "device": str(self.device),
                "class_names": self.class_names,
                **self.sizes,
                **(run_info or {}),
            },
        )

    def wrap(self, model: nn.Module) -> None:
        """DDP under torchrun (BN statistics are averaged before evaluation instead), then ``torch.compile``."""
        net = model
        if self.info.enabled:
            net = nn.parallel.DistributedDataParallel(
                model, device_ids=[self.device.index] if self.device.type == "cuda" else None, broadcast_buffers=False
            )
        self.net = torch.compile(net) if self.cfg.compile else net  # type: ignore[assignment]
        self.ddp = net if self.info.enabled else None

    # ---- checkpoints ------------------------------------------------------------------------------
    def save(self, state: TrainState, name: str = "last.pt") -> None:
        """Write ``checkpoints/<name>`` (main process only; nothing without an out_dir)."""
        if self.ckpt_dir is None or not self.info.is_main:
            return
        cfg, model = self.cfg, state.model
        plan = getattr(model, "plan", None)
        save_checkpoint(
            {
                **state.state_dict(),
                "config": cfg.to_dict(),
                "model_name": getattr(model, "model_name", cfg.model),
                "num_classes": self.num_classes,
                "class_names": self.class_names,
                "plan": plan.to_dict() if hasattr(plan, "to_dict") else None,
            },
            self.ckpt_dir / name,
        )

    def _copy_to_best(self) -> None:
        if self.ckpt_dir is not None and self.info.is_main:
            tmp = self.ckpt_dir / ".best.pt.tmp"
            shutil.copyfile(self.ckpt_dir / "last.pt", tmp)
            os.replace(tmp, self.ckpt_dir / "best.pt")

    # ---- one epoch --------------------------------------------------------------------------------
    def train_one_epoch(self, state: TrainState, stop: _StopFlag) -> dict[str, float] | None:
        """Train epoch ``state.epoch`` (the rest of it after a mid-epoch resume).

        Returns:
            ``loss``, ``top1``, ``images_per_sec``, ``lr`` (of the last step), or ``None`` when a stop
            request ended the epoch early (after saving a mid-epoch checkpoint).
        """
        cfg = self.cfg
        self._start_epoch(state)
        sums = state.partial = dict(state.partial) if state.step and state.partial else _new_sums()
        t_start, micro_i, lr = time.time(), 0, 0.0
        step_loss = torch.zeros(2, dtype=torch.float64)  # loss sum, count (this rank, this step)
        bar = _Progress(
            cfg.progress and self.info.is_main,
            self.sampler.steps,
            state.step,
            f"epoch {state.epoch + 1}/{cfg.epochs}",
            cfg.log_every_steps,
        )
        for images, labels, bad in self.train_loader:
            self.skipped += [(b.path, b.reason) for b in bad]
            micro_i += 1
            sync_now = micro_i % cfg.accum_steps == 0
            if len(labels):
                self._forward_backward(state, images, labels, sync_now, step_loss)
            if not sync_now:
                continue
            lr, interrupt = self._optimizer_step(state, step_loss, stop)
            seconds = sums["seconds"] + time.time() - t_start
            bar.update(
                state.step,
                loss=f"{sums['loss'] / max(1, sums['count']):.3f}",
                acc=f"{100 * sums['correct'] * self.info.world_size / max(1, sums['count']):.1f}",
                img_s=f"{sums['count'] / max(seconds, 1e-9):.0f}",
                lr=f"{lr:.2e}",
            )
            periodic = cfg.save_every_steps and state.step % cfg.save_every_steps == 0
            if (interrupt or periodic) and state.step < self.sampler.steps:
                self.save(replace(state, partial={**sums, "seconds": seconds}))
                if interrupt:
                    break
        bar.close()
        if state.step < self.sampler.steps:
            return None
        return self._epoch_train_metrics(state, sums, sums["seconds"] + time.time() - t_start, lr)

    def _start_epoch(self, state: TrainState) -> None:
        """Train mode, the epoch's data order (skipping what a resumed epoch has seen) and RNG."""
        state.model.train()
        _freeze_frozen_bn(state.model)
        self.sampler.set_epoch(state.epoch, skip=state.step * self.cfg.accum_steps * self.micro)
        if state.step and state.rng is not None:
            set_rng_state(state.rng)
        else:
            torch.manual_seed(mix_seed(self.cfg.seed, state.epoch, self.info.rank, 4))

    def _forward_backward(
        self, state: TrainState, images: torch.Tensor, labels: torch.Tensor, sync_now: bool, step_loss: torch.Tensor
    ) -> None:
        """One micro-batch: forward under autocast, scaled backward (no DDP all-reduce until the last one)."""
        cfg, device = self.cfg, self.device
        images, labels = images.to(device, non_blocking=True), labels.to(device, non_blocking=True)
        if cfg.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        no_sync = self.ddp.no_sync() if self.ddp is not None and not sync_now else contextlib.nullcontext()
        with no_sync:
            with autocast(device, cfg.amp):
                logits = self.net(images)
                loss = F.cross_entropy(logits.float(), labels, label_smoothing=cfg.label_smoothing)
            state.scaler.scale(loss / cfg.accum_steps).backward()
        step_loss += torch.tensor([loss.item() * len(labels), len(labels)], dtype=torch.float64)
        state.partial["correct"] += float((logits.argmax(1) == labels).sum())  # type: ignore[index]

    def _optimizer_step(self, state: TrainState, step_loss: torch.Tensor, stop: _StopFlag) -> tuple[float, bool]:
        """Agree over ranks on the loss and any stop request, then clip, step, schedule, EMA.

        Returns:
            The step's LR and whether any rank asked to stop (the same answer on every rank).
        """
        flags = torch.cat([step_loss, torch.tensor([float(stop.signal is not None)], dtype=torch.float64)])
        all_reduce_sum(flags, self.info)
        if not math.isfinite(flags[0]):
            raise self._non_finite(float(flags[0]), state)
        opt, scaler = state.optimizer, state.scaler
        lr = opt.param_groups[0]["lr"]
        if self.cfg.clip_grad:
            scaler.unscale_(opt)
            nn.utils.clip_grad_norm_(state.model.parameters(), self.cfg.clip_grad)
        scaler.step(opt)
        scaler.update()
        opt.zero_grad(set_to_none=True)
        state.scheduler.step()
        if state.ema is not None:
            state.ema.update(state.model)
        state.step += 1
        state.partial["loss"] += float(flags[0])  # type: ignore[index]
        state.partial["count"] += float(flags[1])  # type: ignore[index]
        step_loss.zero_()
        return lr, bool(flags[2] > 0)

    def _non_finite(self, loss: float, state: TrainState) -> NonFiniteLossError:
        ckpt = self.ckpt_dir
        good = (
            ckpt / "last.pt"
            if ckpt and (ckpt / "last.pt").is_file()
            else "none (no out_dir)"
            if ckpt is None
            else "none saved yet"
        )
        return NonFiniteLossError(
            f"loss became {loss} at epoch {state.epoch + 1}, step {state.step + 1}; stopped without "
            f"saving. Last good checkpoint: {good}. Try a lower --lr, --clip-grad 1.0 or --amp none."
        )

    def _epoch_train_metrics(
        self, state: TrainState, sums: dict[str, float], seconds: float, lr: float
    ) -> dict[str, float]:
        if not sums["count"]:  # every image of the epoch was skipped as unreadable
            eg = f" (e.g. {self.skipped[0][0]}: {self.skipped[0][1]})" if self.skipped else ""
            raise InputError(
                f"no readable training image in epoch {state.epoch + 1}: {len(self.skipped)} "
                f"image(s) skipped as unreadable{eg}; check the data folder"
            )
        correct = all_reduce_sum(torch.tensor([sums["correct"]], dtype=torch.float64), self.info)
        return dict(
            loss=sums["loss"] / sums["count"],
            top1=100.0 * float(correct[0]) / sums["count"],
            images_per_sec=sums["count"] / seconds,
            lr=lr,
        )

    def validate(self, state: TrainState, train: dict[str, float]) -> dict[str, Any]:
        """Average BN statistics over ranks, evaluate the model (and the EMA); the epoch's metrics."""
        model = state.model
        average_buffers(model, self.info)
        val = summarize(self._eval_sums(model), self.class_names)
        metrics: dict[str, Any] = dict(
            epoch=state.epoch + 1,
            lr=train["lr"],
            train_loss=train["loss"],
            val_loss=val["loss"],
            val_top1=val["top1"],
            val_top5=val["top5"],
            images_per_sec=train["images_per_sec"],
            seconds=0.0,
            train_top1=train["top1"],
        )
        if state.ema is not None:
            ev = summarize(self._eval_sums(state.ema.module))
            metrics.update(val_loss_ema=ev["loss"], val_top1_ema=ev["top1"], val_top5_ema=ev["top5"])
        self.skipped += [(s["path"], s["reason"]) for s in val["skipped"]]
        return metrics

    def _eval_sums(self, model: nn.Module) -> dict[str, Any]:
        return eval_sums(
            model,
            self.val_loader,
            self.num_classes,
            self.device,
            amp=self.cfg.amp,  # type: ignore[arg-type]
            channels_last=self.cfg.channels_last,
            info=self.info,
        )

    def end_epoch(self, state: TrainState, metrics: dict[str, Any]) -> None:
        """Close the epoch in ``state``; log it, append ``metrics.jsonl``, save ``last.pt`` (and ``best.pt``)."""
        state.history.append(metrics)
        state.epoch, state.step, state.partial, state.rng = state.epoch + 1, 0, None, None
        is_best = metrics["val_top1"] > state.best["top1"]
        if is_best:
            state.best = {"top1": metrics["val_top1"], "epoch": state.epoch}
        if self.info.is_main:
            log.info(
                "epoch %d/%d  train_loss %.4f  val_loss %.4f  top1 %.2f  top5 %.2f  %.0f img/s  %.1fs",
                state.epoch,
                self.cfg.epochs,
                metrics["train_loss"],
                metrics["val_loss"],
                metrics["val_top1"],
                metrics["val_top5"],
                metrics["images_per_sec"],
                metrics["seconds"],
            )
        self.writer.log_epoch(metrics)
        self.save(state)
        if is_best:
            self._copy_to_best()

    def stop_requested(self, stop: _StopFlag) -> bool:
        """Whether any rank received SIGINT/SIGTERM (a collective: every rank calls it)."""
        return bool(all_reduce_sum(torch.tensor([float(stop.signal is not None)]), self.info)[0] > 0)

    # ---- the end ----------------------------------------------------------------------------------
    def finish(self, state: TrainState, status: str, last: dict[str, Any], seconds: float) -> dict[str, Any]:
        """``summary.json``, ``curves.png`` and the skipped-image report; returns the summary."""
        # gather skipped files from all ranks only on a clean exit (a collective could hang otherwise)
        info = self.info
        skipped = _dedupe(self.skipped, info if status in ("completed", "interrupted") else DistInfo())
        summary = dict(
            status=status,
            **last,
            best_top1=state.best["top1"],
            best_epoch=state.best["epoch"],
            epochs_completed=len(state.history),
            total_seconds=seconds,
            skipped_images=[{"path": p, "reason": r} for p, r in skipped],
            model=getattr(state.model, "model_name", self.cfg.model),
            data=self.cfg.data,
            world_size=info.world_size,
            device=str(self.device),
            torch=torch.__version__,
            threads=torch.get_num_threads(),
        )
        if info.is_main:
            self.writer.write("summary.json", summary)
            self.writer.close(state.history)
            if skipped:
                log.warning(
                    "skipped %d unreadable image(s):\n  %s", len(skipped), "\n  ".join(f"{p} ({r})" for p, r in skipped)
                )
        return summary


def fit(
    model: nn.Module,
    train_set: Dataset,
    val_set: Dataset,
    cfg: TrainConfig,
    out_dir: str | os.PathLike | None = None,
    on_epoch_end: Callable[[int, dict[str, Any]], None] | None = None,
    *,
    resume: bool | str | os.PathLike = False,
    class_names: list[str] | None = None,
    run_info: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Train ``model`` in place with the recipe in ``cfg``; validate after every epoch.

    Args:
        model: Any classifier; modified in place (use it after ``fit`` returns).
        train_set / val_set: Yield ``(image tensor, label)``; see :func:`rexnet.data.build_datasets`.
        cfg: Epochs, batch size (global), LR, seed, workers, precision, ... (:class:`TrainConfig`).
        out_dir: Run folder (config.json, metrics.jsonl, summary.json, checkpoints/, curves.png);
            ``None`` writes nothing (in-memory trials).
        on_epoch_end: Called as ``on_epoch_end(epoch, metrics)`` (epoch from 1) on every process
            after validation and checkpointing; an exception it raises propagates (pruning).
        resume: ``True`` continues from ``out_dir/checkpoints/last.pt``, a path from that file.
            The LR schedule is the one ``cfg`` describes (e.g. more epochs), at the saved step.
        class_names: Names for per-class metrics and the checkpoint.
        run_info: Extra keys for ``config.json`` (e.g. ``resume_changes``).

    Returns:
        The last epoch's metrics (``val_top1``, ``val_top5`` in %, ``val_loss``, ...) plus
        ``best_top1``, ``best_epoch``, ``status`` (``completed`` or ``interrupted``),
        ``history`` and ``skipped_images``.

    Raises:
        NonFiniteLossError: The loss became NaN/Inf (the last good checkpoint is kept).
        CheckpointError: ``resume`` names a missing, truncated or foreign checkpoint.
    """
    saved = (
        torch.get_num_threads(),
        torch.are_deterministic_algorithms_enabled(),
        torch.is_deterministic_algorithms_warn_only_enabled(),
        torch.backends.cudnn.benchmark,
    )
    try:
        return _fit(model, train_set, val_set, cfg, out_dir, on_epoch_end, resume, class_names, run_info)
    finally:  # leave the process's global torch settings as we found them
        torch.set_num_threads(saved[0])
        torch.use_deterministic_algorithms(saved[1], warn_only=saved[2])
        torch.backends.cudnn.benchmark = saved[3]


def _fit(
    model: nn.Module,
    train_set: Dataset,
    val_set: Dataset,
    cfg: TrainConfig,
    out_dir: Any,
    on_epoch_end: Callable[[int, dict[str, Any]], None] | None,
    resume: bool | str | os.PathLike,
    class_names: list[str] | None,
    run_info: dict[str, Any] | None,
) -> dict[str, Any]:
    t_start = time.time()
    run = _Run(model, train_set, val_set, cfg, out_dir, class_names)
    state = run.new_state(model)
    run.open_writer(state, run.restore(state, resume), run_info)
    run.wrap(state.model)
    status, last = "completed", state.history[-1] if state.history else {}
    with _StopFlag() as stop:
        try:
            while state.epoch < cfg.epochs:
                t0 = time.time()
                train = run.train_one_epoch(state, stop)
                if train is None:  # stopped mid-epoch; last.pt holds the place
                    status = "interrupted"
                    break
                last = run.validate(state, train)
                last["seconds"] = time.time() - t0
                run.end_epoch(state, last)
                if on_epoch_end is not None:
                    on_epoch_end(state.epoch, dict(last))
                if run.stop_requested(stop):
                    status = "interrupted" if state.epoch < cfg.epochs else status
                    break
        except BaseException as e:
            status = f"{_failure_kind(e)}: {type(e).__name__}: {e}"
            raise
        finally:
            summary = run.finish(state, status, last, time.time() - t_start)
    return {**summary, "history": state.history}


def _failure_kind(e: BaseException) -> str:
    if isinstance(e, NonFiniteLossError):
        return "failed"
    return "interrupted" if isinstance(e, KeyboardInterrupt) else "stopped"


def _dedupe(skipped: list[tuple[str, str]], info: DistInfo) -> list[tuple[str, str]]:
    if info.enabled:
        skipped = [s for part in all_gather_objects(skipped, info) for s in part]
    seen: dict[str, str] = {}
    for p, r in skipped:
        seen.setdefault(p, r)
    return sorted(seen.items())
