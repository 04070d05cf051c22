"""``fit``: the training loop, in one readable piece (nanoGPT style, no framework).

Order of work per epoch: seed -> train steps (autocast, accumulation, clipping, EMA, per-step
LR) -> average BN buffers over ranks -> validate -> log -> checkpoint (last, best) ->
``on_epoch_end``. A SIGINT/SIGTERM finishes the current optimiser step, saves a mid-epoch
checkpoint and returns; ``resume`` continues from it (or from an epoch boundary) exactly.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import shutil
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset

from .._signals import repair_altstack
from ..data.batched import CachedEvalLoader, TensorBatchLoader, tensor_source
from ..data.folder import collate_skipping
from ..errors import RexnetError
from .checkpoint import load_checkpoint, rng_state, save_checkpoint, set_rng_state
from .config import TrainConfig
from .distributed import DistInfo, all_gather_objects, all_reduce_sum, average_buffers, init_distributed
from .evaluate import autocast, eval_sums, resolve_device, shard, summarize
from .optim import ModelEma, build_optimizer, build_scheduler
from .outputs import RunWriter
from .sampling import EpochSampler, SeededView, mix_seed

__all__ = ["fit", "NonFiniteLossError", "default_threads"]

log = logging.getLogger(__name__)


class NonFiniteLossError(RexnetError):
    """The loss became NaN or infinite; the run stopped without saving the bad state."""


class _StopFlag:
    """Turns SIGINT/SIGTERM into a flag the loop checks after each optimiser step."""

    def __init__(self) -> None:
        self.signal: int | None = None
        self._old: dict[int, Any] = {}

    def __enter__(self) -> _StopFlag:
        if threading.current_thread() is threading.main_thread():
            repair_altstack()  # an earlier OpenVINO model may have left a dangling one: Ctrl-C would segfault
            for s in (signal.SIGINT, signal.SIGTERM):
                self._old[s] = signal.signal(s, self._handle)
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        if self.signal is not None:  # second signal: stop now
            raise KeyboardInterrupt
        self.signal = signum
        log.warning("received %s: finishing this step, saving a checkpoint, then stopping",
                    signal.Signals(signum).name)

    def __exit__(self, *exc: Any) -> None:
        for s, h in self._old.items():
            signal.signal(s, h)


def _loader(ds: Dataset, batch: int, cfg: TrainConfig, device: torch.device, sampler: Any = None) -> DataLoader:
    return DataLoader(ds, batch_size=batch, sampler=sampler, shuffle=False, num_workers=cfg.workers,
                      collate_fn=collate_skipping, pin_memory=device.type == "cuda",
                      persistent_workers=cfg.workers > 0 and sampler is not None,
                      prefetch_factor=4 if cfg.workers > 0 else None,
                      generator=torch.Generator())  # own generator: the global RNG stays the model's


def _train_loader(ds: Dataset, batch: int, cfg: TrainConfig, device: torch.device, sampler: EpochSampler) -> Any:
    """Batched in-memory augmentation where the data allows it (see ``cfg.aug_backend``), else a DataLoader."""
    src = tensor_source(ds) if cfg.aug_backend != "per-sample" else None
    augment = getattr(src[0], "batch_transform", None) if src is not None else None
    if augment is None:
        if cfg.aug_backend == "batched":
            raise RexnetError("aug_backend='batched' needs an in-memory dataset (digits, shapes, fashion-mnist, "
                              "mnist, cifar) and no RandAugment (randaug_n=0); use aug_backend='auto'")
        return _loader(SeededView(ds, cfg.seed), batch, cfg, device, sampler)
    base, index = src  # type: ignore[misc]
    return TensorBatchLoader(base.images[index], base.labels[index], sampler, batch, augment, cfg.seed)


_EVAL_CACHE_BYTES = 1 << 30  # cache evaluation tensors up to 1 GiB; larger sets stream per image


def _eval_loader(ds: Dataset, batch: int, cfg: TrainConfig, device: torch.device) -> Any:
    src = tensor_source(ds)
    if src is not None and cfg.aug_backend != "per-sample":
        c, size = 3, cfg.image_size
        if len(ds) * c * size * size * 4 <= _EVAL_CACHE_BYTES:  # type: ignore[arg-type]
            return CachedEvalLoader(ds, batch)
    return _loader(ds, batch, cfg, device)


#: Pixels per micro-batch below which one thread is faster: the per-op work is too small for OpenMP's
#: wake-ups (32 px, batch 64: 1 thread 340 img/s, 2 threads 270, 2-core EPYC; benchmarks/RESULTS.md).
SMALL_WORK_PIXELS = 1 << 19


def default_threads(image_size: int | None = None, micro_batch: int | None = None) -> int:
    """CPU threads for one training process: the cores it may use, split over the local DDP processes;
    one thread when a micro-batch is too small to share (``micro_batch * image_size**2 < SMALL_WORK_PIXELS``)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    cores = max(1, cores // max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1"))))
    if image_size and micro_batch and micro_batch * image_size**2 < SMALL_WORK_PIXELS:
        return 1
    return cores


class _Progress:
    """A tqdm bar on a terminal; otherwise a log line every ``every`` steps (none inside the epoch if 0)."""

    def __init__(self, enabled: bool, total: int, initial: int, desc: str, every: int) -> None:
        self.bar, self.every, self.total, self.desc = None, every if enabled else 0, total, desc
        if enabled and _is_terminal():
            from tqdm import tqdm

            self.bar = tqdm(total=total, initial=initial, desc=desc, leave=False, dynamic_ncols=True)

    def update(self, step: int, **stats: str) -> None:
        if self.bar is not None:
            self.bar.set_postfix(**stats)
            self.bar.update(1)
        elif self.every and step % self.every == 0:
            log.info("%s step %d/%d  %s", self.desc, step, self.total, "  ".join(f"{k} {v}" for k, v in stats.items()))

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _is_terminal() -> bool:
    import sys

    return sys.stderr.isatty()


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
    saved = (torch.get_num_threads(), torch.are_deterministic_algorithms_enabled(),
             torch.is_deterministic_algorithms_warn_only_enabled(), torch.backends.cudnn.benchmark)
    try:
        return _fit(model, train_set, val_set, cfg, out_dir, on_epoch_end, resume, class_names, run_info)
    finally:  # leave the process's global torch settings as we found them
        torch.set_num_threads(saved[0])
        torch.use_deterministic_algorithms(saved[1], warn_only=saved[2])
        torch.backends.cudnn.benchmark = saved[3]


def _fit(model: nn.Module, train_set: Dataset, val_set: Dataset, cfg: TrainConfig, out_dir: Any,
         on_epoch_end: Any, resume: Any, class_names: list[str] | None,
         run_info: dict[str, Any] | None = None) -> dict[str, Any]:
    t_start = time.time()
    info = init_distributed(cfg.device)
    device = resolve_device(cfg.device, info.local_rank)
    torch.use_deterministic_algorithms(cfg.deterministic, warn_only=True)
    torch.backends.cudnn.benchmark = not cfg.deterministic
    num_classes = len(class_names) if class_names else getattr(model, "num_classes", None)
    if not num_classes:
        raise RexnetError("fit needs class_names or a model with a num_classes attribute")
    if cfg.batch_size % (info.world_size * cfg.accum_steps):
        raise RexnetError(f"batch_size {cfg.batch_size} must be divisible by processes x accum_steps "
                          f"({info.world_size} x {cfg.accum_steps})")
    micro = cfg.batch_size // (info.world_size * cfg.accum_steps)
    torch.set_num_threads(cfg.threads or default_threads(cfg.image_size, micro))

    # model, EMA, optimiser, schedule, scaler
    model.to(device)
    if cfg.sync_bn and info.enabled:
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    if cfg.channels_last:
        model.to(memory_format=torch.channels_last)
    ema = ModelEma(model, cfg.ema_decay) if cfg.ema else None
    opt = build_optimizer(model, cfg)
    sampler = EpochSampler(len(train_set), cfg.batch_size, cfg.seed, info.rank, info.world_size)  # type: ignore[arg-type]
    if sampler.steps == 0:
        raise RexnetError(f"the training set ({len(train_set)} images) is smaller than one batch ({cfg.batch_size})")
    sched = build_scheduler(opt, cfg, sampler.steps)
    use_fp16 = device.type == "cuda" and cfg.amp == "fp16"
    scaler = torch.amp.GradScaler(device.type, enabled=use_fp16)
    train_loader = _train_loader(train_set, micro, cfg, device, sampler)
    val_loader = _eval_loader(shard(val_set, info), max(micro, 64), cfg, device)

    # resume
    ckpt_dir = Path(out_dir) / "checkpoints" if out_dir is not None else None
    start_epoch, start_step, partial, history, best = 0, 0, None, [], {"top1": -1.0, "epoch": 0}
    if resume:
        path = Path(resume) if not isinstance(resume, bool) else (ckpt_dir / "last.pt" if ckpt_dir else None)
        if path is None:
            raise RexnetError("resume=True needs an out_dir")
        if isinstance(resume, bool) and not path.exists() and (Path(out_dir) / "config.json").exists():
            log.warning("no checkpoint in %s yet (stopped during epoch 1): starting from scratch", ckpt_dir)
            resume = False
    if resume:
        ck = load_checkpoint(path)
        model.load_state_dict(ck["model"])
        opt.load_state_dict(ck["optimizer"])
        fresh = sched.lr_lambdas[0].__dict__.copy()
        sched.load_state_dict(ck["scheduler"])
        sched.lr_lambdas[0].__dict__.update(fresh)  # the current cfg's schedule (e.g. more epochs)
        scaler.load_state_dict(ck.get("scaler") or {})
        if ema is not None and ck.get("ema") is not None:
            ema.module.load_state_dict(ck["ema"])
        start_epoch, start_step, partial = ck["epoch"], ck["step_in_epoch"], ck.get("partial")
        history, best = list(ck["history"]), dict(ck.get("best") or best)
        log.info("resumed from %s: epoch %d, step %d", path, start_epoch + 1, start_step)
    writer = RunWriter(out_dir if info.is_main else None, cfg.tensorboard,
                       purge_step=start_epoch + 1 if resume else None)
    writer.reset_metrics(history)
    writer.write("config.json", {**cfg.to_dict(), "world_size": info.world_size, "device": str(device),
                                 "class_names": class_names, "train_size": len(train_set), "val_size": len(val_set),
                                 **(run_info or {})})

    net: nn.Module = model
    if info.enabled:
        ddp = nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None,
                                                  broadcast_buffers=False)  # BN stats: averaged before eval
        net = ddp
    if cfg.compile:
        net = torch.compile(net)  # type: ignore[assignment]
    plan = getattr(model, "plan", None)

    def state(epoch: int, step: int, partial_state: dict | None) -> dict[str, Any]:
        return dict(model=_layout_free(model.state_dict()), optimizer=opt.state_dict(), scheduler=sched.state_dict(),
                    scaler=scaler.state_dict(), ema=_layout_free(ema.module.state_dict()) if ema else None,
                    rng=rng_state(),
                    epoch=epoch, step_in_epoch=step, partial=partial_state, history=history, best=best,
                    config=cfg.to_dict(), model_name=getattr(model, "model_name", cfg.model),
                    num_classes=num_classes, class_names=class_names,
                    plan=plan.to_dict() if hasattr(plan, "to_dict") else None)

    def save(name: str, st: dict[str, Any]) -> None:
        if ckpt_dir is not None and info.is_main:
            save_checkpoint(st, ckpt_dir / name)

    skipped: list[tuple[str, str]] = []
    status: str = "completed"
    last: dict[str, Any] = history[-1] if history else {}
    with _StopFlag() as stop:
        try:
            for epoch in range(start_epoch, cfg.epochs):
                t0 = time.time()
                # ---- train -------------------------------------------------------------
                model.train()
                _freeze_frozen_bn(model)
                skip_steps = start_step if epoch == start_epoch else 0
                sampler.set_epoch(epoch, skip=skip_steps * cfg.accum_steps * micro)
                if skip_steps and resume:
                    set_rng_state(ck["rng"])
                else:
                    torch.manual_seed(mix_seed(cfg.seed, epoch, info.rank, 4))
                acc = dict(partial) if skip_steps and partial else dict(loss=0.0, correct=0.0, count=0.0, seconds=0.0)
                step, micro_i, t_train = skip_steps, 0, time.time()
                step_loss = torch.zeros(2, dtype=torch.float64)  # loss sum, count (this rank, this step)
                bar = _Progress(cfg.progress and info.is_main, sampler.steps, skip_steps,
                                f"epoch {epoch + 1}/{cfg.epochs}", cfg.log_every_steps)
                for images, labels, bad in train_loader:
                    skipped += [(b.path, b.reason) for b in bad]
                    micro_i += 1
                    sync_now = micro_i % cfg.accum_steps == 0
                    if len(labels):
                        images, labels = images.to(device, non_blocking=True), labels.to(device, non_blocking=True)
                        if cfg.channels_last:
                            images = images.contiguous(memory_format=torch.channels_last)
                        no_sync = ddp.no_sync() if info.enabled and not sync_now else contextlib.nullcontext()
                        with no_sync:
                            with autocast(device, cfg.amp):
                                logits = net(images)
                                loss = F.cross_entropy(logits.float(), labels, label_smoothing=cfg.label_smoothing)
                            scaler.scale(loss / cfg.accum_steps).backward()
                        step_loss += torch.tensor([loss.item() * len(labels), len(labels)], dtype=torch.float64)
                        acc["correct"] += float((logits.argmax(1) == labels).sum())
                    if not sync_now:
                        continue
                    # one optimiser step: agree over ranks on loss and stop request first
                    flags = torch.cat([step_loss, torch.tensor([float(stop.signal is not None)], dtype=torch.float64)])
                    all_reduce_sum(flags, info)
                    if not math.isfinite(flags[0]):
                        good = (ckpt_dir / "last.pt" if ckpt_dir and (ckpt_dir / "last.pt").is_file()
                                else "none (no out_dir)" if ckpt_dir is None else "none saved yet")
                        raise NonFiniteLossError(
                            f"loss became {flags[0].item()} at epoch {epoch + 1}, step {step + 1}; stopped without "
                            f"saving. Last good checkpoint: {good}. Try a lower --lr, --clip-grad 1.0 or --amp none.")
                    lr = opt.param_groups[0]["lr"]
                    if cfg.clip_grad:
                        scaler.unscale_(opt)
                        nn.utils.clip_grad_norm_(model.parameters(), cfg.clip_grad)
                    scaler.step(opt)
                    scaler.update()
                    opt.zero_grad(set_to_none=True)
                    sched.step()
                    if ema is not None:
                        ema.update(model)
                    step += 1
                    acc["loss"] += float(flags[0])
                    acc["count"] += float(flags[1])
                    step_loss.zero_()
                    el = acc["seconds"] + time.time() - t_train
                    bar.update(step, loss=f"{acc['loss'] / max(1, acc['count']):.3f}",
                               acc=f"{100 * acc['correct'] * info.world_size / max(1, acc['count']):.1f}",
                               img_s=f"{acc['count'] / max(el, 1e-9):.0f}", lr=f"{lr:.2e}")
                    interrupt = bool(flags[2] > 0)  # the agreed value: every rank stops at the same step
                    periodic = cfg.save_every_steps and step % cfg.save_every_steps == 0
                    if (interrupt or periodic) and step < sampler.steps:
                        part = {**acc, "seconds": acc["seconds"] + time.time() - t_train}
                        save("last.pt", state(epoch, step, part))
                        if interrupt:
                            break
                bar.close()
                if step < sampler.steps:  # interrupted mid-epoch
                    status = "interrupted"
                    break
                train_seconds = acc["seconds"] + time.time() - t_train
                if not acc["count"]:  # every image of the epoch was skipped as unreadable
                    eg = f" (e.g. {skipped[0][0]}: {skipped[0][1]})" if skipped else ""
                    raise RexnetError(f"no readable training image in epoch {epoch + 1}: {len(skipped)} image(s) "
                                      f"skipped as unreadable{eg}; check the data folder")
                train_correct = all_reduce_sum(torch.tensor([acc["correct"]], dtype=torch.float64), info)
                # ---- validate ------------------------------------------------------------
                average_buffers(model, info)
                val = summarize(eval_sums(model, val_loader, num_classes, device, amp=cfg.amp,
                                          channels_last=cfg.channels_last, info=info), class_names)
                metrics: dict[str, Any] = dict(
                    epoch=epoch + 1, lr=lr, train_loss=acc["loss"] / acc["count"], val_loss=val["loss"],
                    val_top1=val["top1"], val_top5=val["top5"], images_per_sec=acc["count"] / train_seconds,
                    seconds=0.0, train_top1=100.0 * float(train_correct[0]) / acc["count"],
                )
                if ema is not None:
                    ev = summarize(eval_sums(ema.module, val_loader, num_classes, device, amp=cfg.amp,
                                             channels_last=cfg.channels_last, info=info))
                    metrics.update(val_loss_ema=ev["loss"], val_top1_ema=ev["top1"], val_top5_ema=ev["top5"])
                skipped += [(s["path"], s["reason"]) for s in val["skipped"]]
                metrics["seconds"] = time.time() - t0
                history.append(metrics)
                last = metrics
                is_best = metrics["val_top1"] > best["top1"]
                if is_best:
                    best = {"top1": metrics["val_top1"], "epoch": epoch + 1}
                if info.is_main:
                    log.info("epoch %d/%d  train_loss %.4f  val_loss %.4f  top1 %.2f  top5 %.2f  %.0f img/s  %.1fs",
                             epoch + 1, cfg.epochs, metrics["train_loss"], metrics["val_loss"], metrics["val_top1"],
                             metrics["val_top5"], metrics["images_per_sec"], metrics["seconds"])
                writer.log_epoch(metrics)
                save("last.pt", state(epoch + 1, 0, None))
                if is_best and ckpt_dir is not None and info.is_main:
                    tmp = ckpt_dir / ".best.pt.tmp"
                    shutil.copyfile(ckpt_dir / "last.pt", tmp)
                    os.replace(tmp, ckpt_dir / "best.pt")
                if on_epoch_end is not None:
                    on_epoch_end(epoch + 1, dict(metrics))
                stop_all = all_reduce_sum(torch.tensor([float(stop.signal is not None)]), info)
                if stop_all[0] > 0:
                    status = "interrupted" if epoch + 1 < cfg.epochs else status
                    break
        except BaseException as e:
            kind = "failed" if isinstance(e, NonFiniteLossError) else "interrupted" if isinstance(
                e, KeyboardInterrupt) else "stopped"
            status = f"{kind}: {type(e).__name__}: {e}"
            raise
        finally:
            # gather skipped files from all ranks only on a clean exit (a collective could hang otherwise)
            skipped = _dedupe(skipped, info if status in ("completed", "interrupted") else DistInfo())
            summary = dict(status=status, **last, best_top1=best["top1"], best_epoch=best["epoch"],
                           epochs_completed=len(history), total_seconds=time.time() - t_start,
                           skipped_images=[{"path": p, "reason": r} for p, r in skipped],
                           model=getattr(model, "model_name", cfg.model), data=cfg.data,
                           world_size=info.world_size, device=str(device), torch=torch.__version__,
                           threads=torch.get_num_threads())
            if info.is_main:
                writer.write("summary.json", summary)
                writer.close(history)
                if skipped:
                    log.warning("skipped %d unreadable image(s):\n  %s", len(skipped),
                                "\n  ".join(f"{p} ({r})" for p, r in skipped))
    return {**summary, "history": history}


def _dedupe(skipped: list[tuple[str, str]], info: DistInfo) -> list[tuple[str, str]]:
    if info.enabled:
        skipped = [s for part in all_gather_objects(skipped, info) for s in part]
    seen: dict[str, str] = {}
    for p, r in skipped:
        seen.setdefault(p, r)
    return sorted(seen.items())
