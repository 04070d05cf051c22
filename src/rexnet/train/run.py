"""``train(cfg)``: datasets + model + :func:`~rexnet.train.loop.fit` + run folder, as the CLI runs it."""

from __future__ import annotations

import logging
import os
import re
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist

from .._env import available_cores
from .._memory import check_training_memory
from ..data import AugmentConfig, build_datasets
from ..errors import InputError, ResumeMismatchError
from ..run import Run, folder_kind, read_config_json, saved_config
from ..run import resume_changes as _generic_resume_changes
from ..zoo import create_model, get_model_info
from .checkpoint import load_checkpoint
from .config import ConfigError, TrainConfig
from .distributed import init_distributed
from .evaluate import evaluate
from .finetune import PREPROCESSING, finetune_defaults
from .loaders import default_threads
from .loop import fit
from .weights_source import pretrained_source

__all__ = [
    "RunResult",
    "train",
    "finetune",
    "resume_config",
    "resume_changes",
    "augment_from_config",
    "build_model",
    "resolve_out",
    "ResumeMismatchError",
    "RESUME_FREE",
]

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
    """The training augmentation a config describes (``cfg.aug``)."""
    return cfg.aug


def build_model(cfg: TrainConfig, num_classes: int) -> torch.nn.Module:
    """``create_model`` with the config's dropout, drop-path, pretrained weights (new head) and freezing.

    The model's ``pretrained_cfg`` records the run's image size and preprocessing (as
    :func:`rexnet.save_weights` and :func:`rexnet.save_pretrained` then write them).

    Raises:
        ResourceError: Training the model at ``cfg.image_size`` and ``cfg.batch_size`` would not fit
            in the memory available (checked on the plan, before the model is built).
    """
    micro = max(1, cfg.batch_size // cfg.accum_steps)
    check_training_memory(get_model_info(cfg.model).plan(), cfg.image_size, num_classes, micro, what=cfg.model)
    model = create_model(
        cfg.model,
        pretrained=pretrained_source(cfg.pretrained).weights if cfg.pretrained else None,
        num_classes=num_classes,
        drop_head=cfg.pretrained is not None,
        drop_rate=cfg.dropout,
        drop_path_rate=cfg.drop_path,
    )
    pcfg = model.pretrained_cfg
    pcfg.update({k: getattr(cfg, k) for k in PREPROCESSING if getattr(cfg, k) is not None})
    pcfg.update(test_crop_pct=pcfg["crop_pct"], pool_size=(max(1, cfg.image_size // 32),) * 2)
    pcfg["input_size"] = pcfg["test_input_size"] = (pcfg["input_size"][0], cfg.image_size, cfg.image_size)
    width = dict(getattr(getattr(model, "plan", None), "params", ()) or ()).get("width_mult", 1.0)
    if cfg.drop_path == 0 and width >= 1.5 and cfg.pretrained is None:
        log.warning(
            "%s (width %.1f): the paper's authors recommend stochastic depth for widths >= 1.5, e.g. --drop-path 0.2",
            cfg.model,
            width,
        )
    if cfg.freeze_backbone:
        if cfg.pretrained is None:
            log.warning("freeze_backbone without pretrained weights trains only a head on random features")
        head = ("classifier.", "head_hidden.")
        for name, p in model.named_parameters():
            p.requires_grad_(name.startswith(head))
    return model


def _slug(s: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", Path(s).name if os.sep in s or "/" in s else s).strip("_") or "data"


def resolve_out(cfg: TrainConfig, resume: bool) -> Path:
    """The run folder of ``cfg``: ``cfg.out``, or the next free (``resume``: the newest) ``runs/<model>-<data>[-N]``.

    Raises:
        InputError: Nothing to resume; or ``cfg.out`` is a file, holds another kind of run, or
            (without ``resume``) a finished training run.
    """
    if cfg.out:
        out = Path(cfg.out)
        Run(out, "train").check(resume=resume)
        return out
    base = Path("runs") / f"{cfg.model}-{_slug(cfg.data)}"
    candidates = [base] + [base.with_name(f"{base.name}-{i}") for i in range(2, 1000)]
    used = [c for c in candidates if c.exists()]
    if resume:
        if not used:
            raise InputError(f"nothing to resume: no run folder {base}; pass --out RUN_DIR")
        return used[-1]
    return next(c for c in candidates if not c.exists())


#: Fields that change how a run executes, not what it computes: free to change on resume.
RESUME_FREE = frozenset(
    {
        "out",
        "progress",
        "log_every_steps",
        "tensorboard",
        "threads",
        "workers",
        "save_every_steps",
        "device",
        "compile",
        "plan",
    }
)
# The checkpoint's weights are tied to these: no resume can change them.
_RESUME_FIXED = ("model", "num_classes")


def resume_config(out_dir: str | os.PathLike) -> TrainConfig:
    """The config a run folder was started with (from ``config.json``), to resume it.

    Raises:
        InputError: No ``config.json`` in ``out_dir``, one that is corrupt or holds bad values, or a
            folder that holds another kind of run.
    """
    kind = folder_kind(out_dir)
    if kind not in (None, "train"):
        Run(out_dir, "train").check(resume=True)  # raises, naming what the folder holds
    return saved_config(TrainConfig, out_dir, adjust=_threads_of_this_machine)


def _threads_of_this_machine(values: dict[str, Any]) -> None:
    """A run started on a bigger machine resumes with this one's cores (threads may change on resume)."""
    if isinstance(values.get("threads"), int) and values["threads"] > available_cores():
        values["threads"] = None


def resume_changes(saved: TrainConfig, cfg: TrainConfig, allow_change: Iterable[str] = ()) -> dict[str, Any]:
    """The settings ``cfg`` changes relative to the run's ``saved`` config, checked against ``allow_change``.

    Fields in :data:`RESUME_FREE` (threads, progress, ...) may always change; ``model`` and
    ``num_classes`` never (the checkpoint's weights depend on them); any other change must be
    named in ``allow_change`` (:func:`rexnet.run.resume_changes`).

    Example:
        >>> resume_changes(TrainConfig(epochs=5), TrainConfig(epochs=8), ["epochs"])
        {'epochs': {'from': 5, 'to': 8}}
    """
    return _generic_resume_changes(
        saved,
        cfg,
        allow_change,
        free=RESUME_FREE,
        fixed=_RESUME_FIXED,
        fixed_hint="start a new run (--pretrained to start from them)",
    )


def _test_best(model: torch.nn.Module, bundle: Any, cfg: TrainConfig, out: Path) -> dict[str, Any]:
    """Top-1/top-5 of the best-on-validation checkpoint on the official test split (reported, never chosen on)."""
    best = out / "checkpoints" / "best.pt"
    if best.is_file():
        model.load_state_dict(load_checkpoint(best)["model"])
    res = evaluate(
        model,
        bundle.test,
        batch_size=256,
        class_names=bundle.class_names,
        device=cfg.device,
        channels_last=cfg.channels_last,
        amp=cfg.amp,
    )
    log.info(
        "test split (%d images, best-val checkpoint): top1 %.2f  top5 %.2f", res["count"], res["top1"], res["top5"]
    )
    return dict(
        test_top1=res["top1"],
        test_top5=res["top5"],
        test_loss=res["loss"],
        test_size=res["count"],
        test_per_class=res["per_class"],
    )


def train(
    cfg: TrainConfig,
    *,
    resume: bool = False,
    model: torch.nn.Module | None = None,
    allow_change: Iterable[str] = (),
    explicit: Iterable[str] | None = None,
) -> RunResult:
    """Train ``cfg.model`` on ``cfg.data`` and write the run folder (under torchrun: DDP).

    Args:
        cfg: The run's config (see :class:`TrainConfig`; ``cfg.out`` is the run folder, default
            ``runs/<model>-<data>[-N]``).
        resume: Continue the run in ``cfg.out`` (default: the newest matching run folder)
            from its ``checkpoints/last.pt``. ``cfg`` must equal the run's ``config.json`` except
            for :data:`RESUME_FREE` fields and those named in ``allow_change``.
        allow_change: Config fields ``resume`` may change on purpose (e.g. ``["epochs", "lr"]``);
            the changes are logged and kept in ``config.json`` under ``resume_changes``.
        model: A model built by the caller (e.g. ``RexNet(plan, num_classes=10)`` for a plan
            no registered name describes) instead of ``cfg.model``; build it after
            ``torch.manual_seed(cfg.seed)`` for reproducible weights.
        explicit: The config fields the user set. With ``cfg.pretrained``, a fresh run takes the others
            of the model, image size, interpolation, crop_pct, mean and std from the weights'
            ``pretrained_cfg`` and logs why (:func:`~rexnet.train.finetune.finetune_defaults`).
            ``None``: every field with a value is the user's; only unset (``None``) preprocessing
            fields follow the weights. :func:`finetune` passes its keyword arguments.

    Returns:
        A :class:`RunResult`.

    Raises:
        InputError: Bad data/model names, a folder that already holds a run, unreadable checkpoints.
        RunLockedError: Another live process is writing the same run folder.
        ResumeMismatchError: ``resume`` with settings that differ from the run's (see ``allow_change``).

    Example:
        >>> res = train(TrainConfig(epochs=1, train_limit=64, out="/tmp/rexnet-doc"))  # doctest: +SKIP
    """
    info = init_distributed(cfg.device)
    if not resume:  # a resumed run keeps the values its config.json records
        cfg = finetune_defaults(cfg, explicit, announce=info.is_main)
    out = resolve_out(cfg, resume) if info.is_main else None
    if info.enabled:
        box = [out]
        dist.broadcast_object_list(box, src=0)
        out = box[0]
    assert out is not None
    cfg = cfg.replace(out=str(out))
    with Run(out, "train", main=info.is_main).open(resume=resume) as run:
        return _train(cfg, run, info, resume, allow_change, model)


def _resume_record(cfg: TrainConfig, out: Path, allow_change: Iterable[str]) -> dict[str, Any]:
    """Check ``cfg`` against the run's config; the ``resume_changes`` history for ``config.json``."""
    saved_raw = read_config_json(out)
    changes = resume_changes(resume_config(out), cfg, allow_change)
    history = list(saved_raw.get("resume_changes") or [])
    last = out / "checkpoints" / "last.pt"
    if {"batch_size", "accum_steps"} & set(changes) and last.is_file():
        ck = load_checkpoint(last)
        if ck["step_in_epoch"]:  # the skip of the seen images is counted in batches of the old size
            raise ResumeMismatchError(
                f"{last} stopped mid-epoch (epoch {ck['epoch'] + 1}, step {ck['step_in_epoch']}); a new batch size "
                "would skip the wrong images. Resume with the old batch size to the end of the epoch first"
            )
    if changes:
        log.warning(
            "resuming %s with changed settings: %s",
            out,
            ", ".join(f"{k} {v['from']!r} -> {v['to']!r}" for k, v in changes.items()),
        )
        history.append({"time": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "changes": changes})
    return {"resume_changes": history} if history else {}


def _train(
    cfg: TrainConfig, run: Run, info: Any, resume: bool, allow_change: Iterable[str], model: torch.nn.Module | None
) -> RunResult:
    out: Path = run.folder  # type: ignore[assignment]
    if resume and (out / "config.json").is_file():
        saved = resume_config(out)  # unset preprocessing is what the run chose (None in a run from before them)
        cfg = cfg.replace(**{k: getattr(saved, k) for k in PREPROCESSING if getattr(cfg, k) is None})
    run_info = _resume_record(cfg, out, allow_change) if resume and (out / "config.json").is_file() else {}
    torch.set_num_threads(cfg.threads or default_threads(cfg.image_size, cfg.batch_size))
    bundle = build_datasets(
        cfg.data,
        cfg.image_size,
        model=cfg.model,
        augment=augment_from_config(cfg),
        strict=cfg.strict,
        train_limit=cfg.train_limit,
        val_limit=cfg.val_limit,
        preprocessing={k: getattr(cfg, k) for k in PREPROCESSING},
    )
    num_classes = cfg.num_classes or bundle.num_classes
    if num_classes != bundle.num_classes:
        raise ConfigError(f"num_classes={cfg.num_classes} but {bundle.name} has {bundle.num_classes} classes")
    torch.manual_seed(cfg.seed)  # the same initial weights on every process
    if model is None:
        model = build_model(cfg, num_classes)
    if info.is_main:
        log.info(
            "training %s on %s (%d train / %d val images, %d classes) -> %s",
            cfg.model,
            bundle.name,
            len(bundle.train),
            len(bundle.val),
            num_classes,
            out,
        )
    res = fit(
        model,
        bundle.train,
        bundle.val,
        cfg,
        out_dir=run,
        resume=resume,
        class_names=bundle.class_names,
        run_info=run_info,
    )
    history = res.pop("history")
    if bundle.test is not None and res["status"] == "completed" and info.is_main:
        res.update(_test_best(model, bundle, cfg, out))
        run.write_json("summary.json", res)
    return RunResult(Path(out), res["status"], res.get("val_top1", float("nan")), res["best_top1"], res, history)


def finetune(
    pretrained: str | os.PathLike,
    data: str,
    *,
    preset: str = "finetune",
    resume: bool = False,
    allow_change: Iterable[str] = (),
    **overrides: Any,
) -> RunResult:
    """Fine-tune ``pretrained`` weights on ``data`` with a new head: the Python twin of ``rexnet finetune``.

    The model, image size, interpolation, crop and mean/std come from the weights' ``pretrained_cfg``
    unless ``overrides`` set them (the ``preset``'s values do not count as set); the log says what was
    chosen and why, and the run's ``config.json`` records it.

    Args:
        pretrained: A weights file, a run folder, a registered name (timm's hub weights),
            ``local-dir:DIR`` or ``hf-hub:ORG/NAME`` (see :mod:`rexnet.train.weights_source`).
        data: What to train on (``--data``: a folder of class folders, ``digits``, ...).
        preset: The recipe (:data:`~rexnet.train.PRESETS`; ``finetune``: 10 epochs at a fine-tuning LR).
        resume: Continue the run in ``overrides["out"]`` (default: the newest matching run folder) with
            the config its ``config.json`` records, ``overrides`` applied (as ``rexnet finetune --resume``).
        allow_change: With ``resume``: config fields changed on purpose (see :func:`train`).
        **overrides: :class:`TrainConfig` fields (``epochs=3``, ``image_size=128``, ``out="runs/ft"``).

    Returns:
        A :class:`RunResult`.

    Raises:
        ConfigError: An unknown field or preset, or a bad value.
        InputError: See :func:`train`.

    Example:
        >>> res = finetune("rexnet_100.safetensors", "photos/", epochs=3)  # doctest: +SKIP
    """
    from .config import preset_config

    fields = {"pretrained": str(pretrained), "data": data, **overrides}
    cfg = preset_config(preset).replace(**fields)
    if not resume:
        return train(cfg, allow_change=allow_change, explicit=fields)
    # as the CLI: the run's own config.json, with what is given now on top
    out = resolve_out(finetune_defaults(cfg, fields, announce=False), resume=True)
    cfg = resume_config(out).replace(**fields).replace(out=str(out))
    return train(cfg, resume=True, allow_change=allow_change)
