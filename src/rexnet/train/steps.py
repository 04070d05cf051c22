"""``ClassifySteps``: the classification steps of the shared epoch loop (:func:`rexnet.run.run_epochs`).

One epoch: seed -> micro-batches (autocast, accumulation) -> optimiser steps (clipping, per-step LR,
EMA; a stop signal saves a mid-epoch checkpoint and ends the epoch) -> validation (BN statistics
averaged over ranks first) -> the epoch's row of ``metrics.jsonl``.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import Dataset

from .._device import autocast, resolve_device
from .._env import WAIT_POLICY, available_cores, dist_env
from ..data.evaluation import summarize
from ..errors import DivergedError, InputError
from ..run import Progress, Run, StopFlag
from .checkpoint import FORMAT, load_checkpoint, set_rng_state
from .config import TrainConfig
from .distributed import all_reduce_sum, average_buffers, init_distributed
from .evaluate import eval_sums, shard
from .loaders import default_threads, eval_batch_size, eval_loader, in_memory, train_loader
from .optim import ModelEma, build_optimizer, build_scheduler
from .plan import planner_for
from .sampling import EpochSampler, mix_seed
from .state import TrainState, freeze_frozen_bn

__all__ = ["ClassifySteps"]

log = logging.getLogger("rexnet.train.loop")


def _new_sums() -> dict[str, float]:
    return dict(loss=0.0, correct=0.0, count=0.0, seconds=0.0)


class ClassifySteps:
    """The fixed parts of one ``fit`` call (config, processes, device, data) and the classification
    steps of the shared loop, acting on a :class:`TrainState`."""

    def __init__(
        self, model: nn.Module, train_set: Dataset, val_set: Dataset, cfg: TrainConfig, run: Run, class_names: Any
    ) -> None:
        self.cfg, self.class_names, self.run = cfg, class_names, run
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
        # an image folder that fits is decoded into memory first: its unreadable files are left out of n
        train_set, bad = in_memory(train_set, cfg)
        self.skipped: list[tuple[str, str]] = [(b.path, b.reason) for b in bad]
        n = len(train_set)  # type: ignore[arg-type]
        self.sampler = EpochSampler(n, cfg.batch_size, cfg.seed, info.rank, info.world_size)
        if self.sampler.steps == 0:
            raise InputError(f"the training set ({n} images) is smaller than one batch ({cfg.batch_size})")
        self.train_loader = train_loader(train_set, self.micro, cfg, self.device, self.sampler)
        val_batch = eval_batch_size(self.micro, cfg.image_size)
        self.val_loader = eval_loader(shard(val_set, info), val_batch, cfg, self.device)
        self.sizes = {"train_size": n, "val_size": len(val_set)}  # type: ignore[arg-type]
        cores = max(1, available_cores() // dist_env().local_world_size)
        self.planner = planner_for(cfg, self.device, info.world_size, cores, WAIT_POLICY)
        # waiting for loader workers is idle time, not a sign of another process on our core (ThreadPlanner)
        self.idle_waits = getattr(self.train_loader, "num_workers", 0) > 0
        # wall time by phase: the training step proper, waiting for batches, evaluation (time_report)
        self.times = {"step": 0.0, "data": 0.0, "eval": 0.0}
        self.net: nn.Module = model  # the module that runs forward: DDP and/or compiled (see ``wrap``)
        self.ddp: nn.parallel.DistributedDataParallel | None = None

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
        if not resume:
            return False
        if isinstance(resume, bool):
            if self.run.folder is None:
                raise InputError("resume=True needs an out_dir")
            path = self.run.last_checkpoint()
            if path is None and (self.run.folder / "config.json").exists():
                log.warning("no checkpoint in %s yet (stopped during epoch 1): starting from scratch", self.run.folder)
                return False
            path = path or self.run.folder / "checkpoints" / "last.pt"  # missing: load_checkpoint names it
        else:
            path = Path(resume)
        state.load_state_dict(load_checkpoint(path))
        log.info("resumed from %s: epoch %d, step %d", path, state.epoch + 1, state.step)
        return True

    def wrap(self, model: nn.Module) -> None:
        """DDP under torchrun (BN statistics are averaged before evaluation instead), then ``torch.compile``."""
        net = model
        if self.info.enabled:
            ids = [self.device.index] if self.device.type == "cuda" else None
            net = nn.parallel.DistributedDataParallel(model, device_ids=ids, broadcast_buffers=False)
        self.net = torch.compile(net) if self.cfg.compile else net  # type: ignore[assignment]
        self.ddp = net if self.info.enabled else None

    # ---- one epoch --------------------------------------------------------------------------------
    def train_epoch(self, state: TrainState, stop: StopFlag) -> dict[str, float] | None:
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
        desc = f"epoch {state.epoch + 1}/{cfg.epochs}"
        bar = Progress(cfg.progress and self.info.is_main, self.sampler.steps, state.step, desc, cfg.log_every_steps)
        self.planner.start_epoch()
        times, step_images, step_wait, t_mark = self.times, 0, 0.0, time.perf_counter()
        for images, labels, bad in self.train_loader:
            t_got = time.perf_counter()
            times["data"] += t_got - t_mark
            step_wait += t_got - t_mark
            self.skipped += [(b.path, b.reason) for b in bad]
            micro_i += 1
            sync_now = micro_i % cfg.accum_steps == 0
            if len(labels):
                self._forward_backward(state, images, labels, sync_now, step_loss)
                step_images += len(labels)
            if not sync_now:
                times["step"] += time.perf_counter() - t_got
                t_mark = time.perf_counter()
                continue
            lr, interrupt = self._optimizer_step(state, step_loss, stop)
            times["step"] += time.perf_counter() - t_got
            self.planner.step_done(step_images, step_wait if self.idle_waits else 0.0)
            step_images, step_wait = 0, 0.0
            seconds = sums["seconds"] + time.time() - t_start
            count = max(1, sums["count"])
            bar.update(
                state.step,
                loss=f"{sums['loss'] / count:.3f}",
                acc=f"{100 * sums['correct'] * self.info.world_size / count:.1f}",
                img_s=f"{sums['count'] / max(seconds, 1e-9):.0f}",
                lr=f"{lr:.2e}",
            )
            periodic = cfg.save_every_steps and state.step % cfg.save_every_steps == 0
            if (interrupt or periodic) and state.step < self.sampler.steps:
                mid = replace(state, partial={**sums, "seconds": seconds})
                self.run.save_checkpoint(self.checkpoint(mid), where=f"in epoch {state.epoch + 1}")
                if interrupt:
                    break
            t_mark = time.perf_counter()
        bar.close()
        if state.step < self.sampler.steps:
            return None
        return self._epoch_train_metrics(state, sums, sums["seconds"] + time.time() - t_start, lr)

    def _start_epoch(self, state: TrainState) -> None:
        """Train mode, the epoch's data order (skipping what a resumed epoch has seen) and RNG."""
        state.model.train()
        freeze_frozen_bn(state.model)
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

    def _optimizer_step(self, state: TrainState, step_loss: torch.Tensor, stop: StopFlag) -> tuple[float, bool]:
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
        if state.ema is not None:  # the schedule counts optimiser steps, and resumes with them
            state.ema.update(state.model, step=state.scheduler.last_epoch - 1)
        state.step += 1
        state.partial["loss"] += float(flags[0])  # type: ignore[index]
        state.partial["count"] += float(flags[1])  # type: ignore[index]
        step_loss.zero_()
        return lr, bool(flags[2] > 0)

    def _non_finite(self, loss: float, state: TrainState) -> DivergedError:
        last = self.run.last_checkpoint()
        good = last if last else "none (no out_dir)" if self.run.folder is None else "none saved yet"
        return DivergedError(
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
        average_buffers(state.model, self.info)
        t0 = time.perf_counter()
        val = summarize(self._eval_sums(state.model), self.class_names)
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
        self.times["eval"] += time.perf_counter() - t0
        self.skipped += [(s["path"], s["reason"]) for s in val["skipped"]]
        return metrics

    def _eval_sums(self, model: nn.Module) -> dict[str, Any]:
        cfg = self.cfg
        with torch.inference_mode():  # no autograd state at all: cheaper than no_grad
            return eval_sums(
                model,
                self.val_loader,
                self.num_classes,
                self.device,
                amp=cfg.amp,
                channels_last=cfg.channels_last,
                info=self.info,
            )  # type: ignore[arg-type]

    def time_report(self, total_seconds: float) -> dict[str, Any]:
        """The run's execution plan and where its wall time went, for ``summary.json``.

        ``step_share``: the share of the wall time spent in training steps (forward, backward, optimiser);
        the rest is waiting for batches (``data``), evaluation (``eval``) and everything else (``other``:
        start-up, decoding a folder into memory, checkpoints).
        """
        t = {k: round(v, 2) for k, v in self.times.items()}
        t["other"] = round(max(0.0, total_seconds - sum(self.times.values())), 2)
        share = self.times["step"] / total_seconds if total_seconds > 0 else 0.0
        return {"plan": self.planner.summary(), "step_share": round(share, 4), "time_split": t}

    def end_epoch(self, state: TrainState, metrics: dict[str, Any]) -> bool:
        """Close the epoch in ``state`` and log it; whether its val top-1 is the best so far."""
        state.history.append(metrics)
        state.epoch, state.step, state.partial, state.rng = state.epoch + 1, 0, None, None
        is_best = metrics["val_top1"] > state.best["top1"]
        if is_best:
            state.best = {"top1": metrics["val_top1"], "epoch": state.epoch}
        if self.info.is_main:
            m = metrics
            top5 = f"  top5 {m['val_top5']:.2f}" if self.num_classes > 5 else ""  # top-5 of <= 5 classes is 100%
            log.info(
                "epoch %d/%d  train_loss %.4f  val_loss %.4f  top1 %.2f%s  %.0f img/s  %.1fs",
                state.epoch,
                self.cfg.epochs,
                *(m[k] for k in ("train_loss", "val_loss", "val_top1")),
                top5,
                *(m[k] for k in ("images_per_sec", "seconds")),
            )
        return is_best

    def weights(self, state: TrainState) -> dict[str, torch.Tensor]:
        """The tensors that must stay finite."""
        return state.weights()

    def checkpoint(self, state: TrainState) -> dict[str, Any]:
        """The training checkpoint of ``state`` (format :data:`~rexnet.weights.TRAINING_FORMAT`)."""
        cfg, model = self.cfg, state.model
        plan = getattr(model, "plan", None)
        return {
            "format": FORMAT,
            **state.state_dict(),
            "config": cfg.to_dict(),
            "model_name": getattr(model, "model_name", cfg.model),
            "num_classes": self.num_classes,
            "class_names": self.class_names,
            "plan": plan.to_dict() if hasattr(plan, "to_dict") else None,
        }

    def stop_requested(self, stop: StopFlag) -> bool:
        """Whether any rank received SIGINT/SIGTERM (a collective: every rank calls it)."""
        return bool(all_reduce_sum(torch.tensor([float(stop.signal is not None)]), self.info)[0] > 0)
