"""``TrainConfig``: every knob of a run, the ``paper`` and ``quick`` presets, and strict overrides.

Overrides come from a YAML/JSON file and/or ``key=value`` pairs (the CLI generates one flag per
field); an unknown key or a value of the wrong type is an error, as in nanoGPT's configurator.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .._config import Config, ConfigError
from .._config import coerce as _coerce
from ..data.build import data_help

__all__ = ["TrainConfig", "ConfigError", "PRESETS", "load_config_file"]


#: Smallest crop a run accepts (the networks downsample 32x; below this, pooling sees almost nothing).
MIN_IMAGE_SIZE = 8


@dataclass
class TrainConfig(Config):
    """A training run. Defaults are the ``quick`` preset (the embedded demo); see :data:`PRESETS`.

    ``lr=None`` means ``base_lr * batch_size / base_batch`` (the paper's linear scaling).
    ``batch_size`` is global: split over DDP processes and ``accum_steps`` micro-batches.
    """

    # what to train
    model: str = field(default="rexnet_100", metadata={"help": "registered model name"})
    data: str = field(default="digits", metadata={"help": data_help()})
    image_size: int = field(default=32, metadata={"help": "crop size"})
    num_classes: int | None = field(default=None, metadata={"help": "classifier size (default: from the data)"})
    pretrained: str | None = field(default=None, metadata={"help": "local checkpoint to start from (fine-tuning)"})
    freeze_backbone: bool = field(default=False, metadata={"help": "train only the new head"})
    train_limit: int | None = field(default=None, metadata={"help": "use a fixed subset of this many train images"})
    val_limit: int | None = field(default=None, metadata={"help": "use a fixed subset of this many val images"})
    strict: bool = field(default=False, metadata={"help": "fail on an unreadable image instead of skipping it"})
    # schedule and optimiser
    epochs: int = field(default=10, metadata={"help": "epochs"})
    batch_size: int = field(default=64, metadata={"help": "global batch size"})
    accum_steps: int = field(default=1, metadata={"help": "gradient-accumulation micro-batches per step"})
    lr: float | None = field(default=None, metadata={"help": "peak LR (default: base_lr * batch_size / base_batch)"})
    base_lr: float = field(default=0.2, metadata={"help": "LR at base_batch (paper: 0.5 at 512)"})
    base_batch: int = field(default=256, metadata={"help": "batch size base_lr refers to"})
    min_lr: float = field(default=1e-6, metadata={"help": "final LR of the cosine"})
    warmup_epochs: float = field(default=1.0, metadata={"help": "linear warm-up epochs"})
    warmup_lr: float = field(default=1e-4, metadata={"help": "LR at the start of warm-up"})
    momentum: float = field(default=0.9, metadata={"help": "SGD momentum"})
    nesterov: bool = field(default=True, metadata={"help": "Nesterov momentum"})
    weight_decay: float = field(default=5e-5, metadata={"help": "weight decay (not on BN/bias)"})
    label_smoothing: float = field(default=0.1, metadata={"help": "label smoothing"})
    dropout: float | None = field(default=0.2, metadata={"help": "dropout before the classifier (None: model's)"})
    drop_path: float = field(default=0.0, metadata={"help": "stochastic depth (recommended for widths >= 1.5)"})
    clip_grad: float | None = field(default=None, metadata={"help": "clip the gradient norm to this"})
    ema: bool = field(default=False, metadata={"help": "keep an EMA of the weights (evaluated too)"})
    ema_decay: float = field(default=0.9998, metadata={"help": "EMA decay per optimiser step"})
    # augmentation (train split)
    aug_scale: tuple[float, float] = field(default=(0.35, 1.0), metadata={"help": "RandomResizedCrop area range"})
    aug_ratio: tuple[float, float] = field(default=(0.75, 1.333), metadata={"help": "RandomResizedCrop aspect range"})
    hflip: float = field(default=0.0, metadata={"help": "horizontal-flip probability"})
    randaug_n: int = field(default=0, metadata={"help": "RandAugment ops (0 = off)"})
    randaug_m: float = field(default=9.0, metadata={"help": "RandAugment magnitude (0-10)"})
    randaug_mstd: float = field(default=0.5, metadata={"help": "RandAugment magnitude noise std"})
    reprob: float = field(default=0.0, metadata={"help": "RandomErasing probability (pixel mode)"})
    # execution
    amp: str = field(
        default="none",
        metadata={
            "help": "mixed precision: none | bf16 | fp16 | auto (bf16 on CPUs with native bf16: AVX512-BF16 or AMX)"
        },
    )
    channels_last: bool = field(default=True, metadata={"help": "channels_last memory format (faster on CPU)"})
    compile: bool = field(default=False, metadata={"help": "torch.compile the model (inductor)"})
    aug_backend: str = field(
        default="auto",
        metadata={
            "help": "auto | batched | per-sample: augment whole batches in memory (in-memory data, no RandAugment) "
            "or each image in DataLoader workers; auto = batched where possible"
        },
    )
    sync_bn: bool = field(default=False, metadata={"help": "SyncBatchNorm under DDP (GPU only)"})
    device: str = field(default="auto", metadata={"help": "auto | cpu | cuda | cuda:N"})
    workers: int = field(default=0, metadata={"help": "DataLoader worker processes (per-sample augmentation)"})
    threads: int | None = field(
        default=None,
        metadata={"help": "torch CPU threads (None: the cores this process may use, split over local DDP processes)"},
    )
    seed: int = field(default=0, metadata={"help": "random seed"})
    deterministic: bool = field(default=True, metadata={"help": "deterministic kernels (bitwise resume on CPU)"})
    # output
    out: str | None = field(default=None, metadata={"help": "run folder (default: runs/<model>-<data>)"})
    save_every_steps: int = field(default=0, metadata={"help": "also checkpoint every N steps inside an epoch"})
    progress: bool = field(
        default=True,
        metadata={
            "help": "progress: a tqdm bar on a terminal; plain log lines (see log_every_steps) to a file or pipe"
        },
    )
    log_every_steps: int = field(
        default=0, metadata={"help": "without a terminal, also log a line every N steps (0: one line per epoch)"}
    )
    tensorboard: bool = field(default=True, metadata={"help": "write TensorBoard events if installed"})

    def validate(self) -> None:
        # construction and replace() coerce every value to its field's type first (rexnet._config)
        _check_ranges(self)

    def peak_lr(self) -> float:
        """The LR after warm-up."""
        return self.lr if self.lr is not None else self.base_lr * self.batch_size / self.base_batch

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (tuples become lists)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any], preset: str | None = None) -> TrainConfig:
        """A config from ``preset`` (default ``quick``) with ``d`` applied.

        Raises:
            ConfigError: Unknown key or preset, or a value that does not fit the field's type.
        """
        return preset_config(preset or "quick").replace(**d)

    @classmethod
    def preset(cls, name: str, **overrides: Any) -> TrainConfig:
        """A named preset (``quick`` or ``paper``) with ``overrides``.

        Example:
            >>> TrainConfig.preset("paper", batch_size=256).peak_lr()
            0.25
        """
        return preset_config(name).replace(**overrides)


#: ``paper``: the recipe of the paper / official README (SGD Nesterov, LR 0.5 at 512, WD 1e-5
#: not on BN/bias, 5 warm-up epochs + cosine, label smoothing 0.1, dropout 0.2, 400 epochs,
#: RandAugment m9 mstd0.5, random erasing 0.2 pixel mode, mixed precision).
#: ``quick``: the embedded-digits demo that finishes in a few minutes on 2 CPU cores: channels-last,
#: batched in-memory augmentation, all available cores (with passive OpenMP waiting, set by
#: ``import rexnet``, so a busy machine does not make the threads spin; see benchmarks/RESULTS.md).
#: ``fashion``: the Fashion-MNIST recipe of the reproduction experiments (benchmarks/RESULTS.md):
#: 32 px, 30 epochs, batch 128, horizontal flips, random erasing, EMA off; ``fashion-short``: its light-augmentation
#: variant for the 8-10-epoch experiments that a CPU budget allows.
PRESETS: dict[str, dict[str, Any]] = {
    "quick": {},
    "fashion": dict(
        data="fashion-mnist", epochs=30, batch_size=128, hflip=0.5, reprob=0.25, aug_scale=(0.5, 1.0), warmup_epochs=2.0
    ),
    # The short-schedule recipe of the CPU experiments: crops that keep the garment whole and no erasing. With
    # `fashion`'s augmentation, 4 epochs on 12,000 images reached 73.5 % validation (mobilenetv2_100); eval-size
    # images with flips reached 87.7 % after 2 epochs on 15,000 (rexnet_100, benchmarks/fmnist_short_train.py).
    "fashion-short": dict(
        data="fashion-mnist",
        epochs=8,
        batch_size=128,
        hflip=0.5,
        aug_scale=(0.85, 1.0),
        aug_ratio=(0.9, 1.11),
        warmup_epochs=1.0,
    ),
    "paper": dict(
        image_size=224,
        epochs=400,
        batch_size=512,
        base_lr=0.5,
        base_batch=512,
        warmup_epochs=5.0,
        weight_decay=1e-5,
        min_lr=1e-6,
        aug_scale=(0.08, 1.0),
        aug_ratio=(0.75, 1.333),
        hflip=0.5,
        randaug_n=2,
        randaug_m=9.0,
        randaug_mstd=0.5,
        reprob=0.2,
        amp="auto",
        channels_last=True,
        workers=8,
        deterministic=False,
        threads=None,
    ),
}


def preset_config(name: str) -> TrainConfig:
    """The preset ``name`` as a :class:`TrainConfig`."""
    if name not in PRESETS:
        raise ConfigError(f"unknown preset {name!r}; expected one of: {', '.join(PRESETS)}")
    return dataclasses.replace(TrainConfig(), **PRESETS[name])


def coerce(name: str, value: Any) -> Any:
    """Convert ``value`` (possibly a CLI string) to the type of :class:`TrainConfig` field ``name``.

    Raises:
        ConfigError: Unknown field or a value that does not fit.
    """
    return _coerce(TrainConfig, name, value)


def _check_ranges(cfg: TrainConfig) -> None:
    if cfg.amp not in ("none", "bf16", "fp16", "auto"):
        raise ConfigError(f"bad value for amp: {cfg.amp!r}; expected one of: none, bf16, fp16, auto")
    if cfg.aug_backend not in ("auto", "batched", "per-sample"):
        raise ConfigError(f"bad value for aug_backend: {cfg.aug_backend!r}; expected one of: auto, batched, per-sample")
    if cfg.threads is not None and cfg.threads < 1:
        raise ConfigError(f"threads must be >= 1 (or None for all available cores), got {cfg.threads}")
    for key in ("epochs", "batch_size", "accum_steps", "image_size", "base_batch"):
        if getattr(cfg, key) < 1:
            raise ConfigError(f"{key} must be >= 1, got {getattr(cfg, key)}")
    if cfg.image_size < MIN_IMAGE_SIZE:
        raise ConfigError(f"image_size must be >= {MIN_IMAGE_SIZE}, got {cfg.image_size}")
    if not re.fullmatch(r"auto|cpu|mps|cuda(:\d+)?", cfg.device):
        raise ConfigError(f"bad value for device: {cfg.device!r}; expected auto, cpu, cuda or cuda:N")
    for key in ("lr", "base_lr", "clip_grad"):
        if getattr(cfg, key) is not None and not getattr(cfg, key) > 0:
            raise ConfigError(f"{key} must be > 0, got {getattr(cfg, key)}")
    # (key, low, high, high allowed): a value outside fails in torch much later, with a traceback
    for key, lo, hi, closed in (
        ("label_smoothing", 0, 1, False),
        ("dropout", 0, 1, False),
        ("drop_path", 0, 1, False),
        ("momentum", 0, 1, False),
        ("ema_decay", 0, 1, False),
        ("hflip", 0, 1, True),
        ("reprob", 0, 1, True),
        ("randaug_m", 0, 30, True),
        ("min_lr", 0, math.inf, False),
        ("warmup_lr", 0, math.inf, False),
        ("randaug_mstd", 0, math.inf, False),
        ("randaug_n", 0, math.inf, False),
    ):
        v = getattr(cfg, key)
        if v is not None and not (lo <= v <= hi if closed else lo <= v < hi):
            raise ConfigError(f"{key} must be in [{lo}, {hi:g}{']' if closed else ')'}, got {v}")
    for key, hi in (("aug_scale", 1.0), ("aug_ratio", math.inf)):
        lo_v, hi_v = getattr(cfg, key)
        if not 0 < lo_v <= hi_v <= hi:
            raise ConfigError(
                f"{key} must be (low, high) with 0 < low <= high{' <= 1' if hi == 1 else ''}, got {lo_v}, {hi_v}"
            )
    for key in (
        "workers",
        "save_every_steps",
        "log_every_steps",
        "weight_decay",
        "warmup_epochs",
        "drop_path",
        "reprob",
        "hflip",
    ):
        if getattr(cfg, key) < 0:
            raise ConfigError(f"{key} must be >= 0, got {getattr(cfg, key)}")


def load_config_file(path: str | os.PathLike) -> dict[str, Any]:
    """Read overrides from a ``.yaml``/``.yml`` or ``.json`` file (a flat mapping of field names).

    A ``preset`` key is kept as is for the caller; other keys are checked against
    :class:`TrainConfig`.

    Raises:
        ConfigError: Missing/unparsable file, not a mapping, or an unknown key.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    text = path.read_text()
    try:
        if path.suffix in (".yaml", ".yml"):
            import yaml

            d = yaml.safe_load(text)
        else:
            d = json.loads(text)
    except Exception as e:
        raise ConfigError(f"cannot parse {path}: {e}") from e
    if not isinstance(d, dict):
        raise ConfigError(f"{path} must hold a mapping of config keys, got {type(d).__name__}")
    for k in d:
        if k != "preset":
            coerce(k, d[k])
    return d
