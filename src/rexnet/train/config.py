"""``TrainConfig``: every knob of a run, the presets (``quick``, ``finetune``, ``paper``, ...), and strict overrides.

Overrides come from a YAML/JSON file and/or ``key=value`` pairs (the CLI generates one flag per
field); an unknown key or a value of the wrong type is an error, as in nanoGPT's configurator.
"""

from __future__ import annotations

import json
import os
import re
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from .._config import Config, ConfigError
from .._config import coerce as _coerce
from .._env import THREAD_BOUNDS
from ..data.build import data_help
from ..data.transforms import AugmentConfig

__all__ = ["TrainConfig", "ConfigError", "PRESETS", "load_config_file"]


#: Largest seed: what every generator (torch, numpy, Python) accepts.
MAX_SEED = 2**32 - 1

#: The resize filters a run may use (those torchvision applies to tensors and PIL images alike).
Interpolation = Literal["bilinear", "bicubic", "nearest"]
INTERPOLATIONS: tuple[str, ...] = typing.get_args(Interpolation)

#: Smallest crop a run accepts (the networks downsample 32x; below this, pooling sees almost nothing).
MIN_IMAGE_SIZE = 8


def _from_weights(help_: str, **bounds: float) -> Any:
    """A preprocessing field whose ``None`` means: the pretrained weights' value, else the model's."""
    help_ += " (None: the pretrained weights', else the model's)"
    return field(default=None, metadata={"help": help_, **bounds})


@dataclass
class TrainConfig(Config):
    """A training run. Defaults are the ``quick`` preset (the embedded demo); see :data:`PRESETS`.

    ``lr=None`` means ``base_lr * batch_size / base_batch`` (the paper's linear scaling).
    ``batch_size`` is global: split over DDP processes and ``accum_steps`` micro-batches.
    """

    #: The flat keys of runs from before ``aug`` was a nested config (their config.json still loads).
    legacy_keys = {
        "aug_scale": "aug.scale",
        "aug_ratio": "aug.ratio",
        **{k: f"aug.{k}" for k in ("hflip", "randaug_n", "randaug_m", "randaug_mstd", "reprob")},
    }

    # what to train
    model: str = field(default="rexnet_100", metadata={"help": "registered model name"})
    data: str = field(default="digits", metadata={"help": data_help()})
    image_size: int = field(
        default=32,
        metadata={
            "help": "crop size (with pretrained weights: theirs unless set)",
            "min": MIN_IMAGE_SIZE,
            "max": 1 << 14,
        },
    )
    # preprocessing: None is the pretrained weights' pretrained_cfg, else the model's registry entry; a fresh run
    # records the value it chose in config.json (rexnet.train.finetune_defaults)
    interpolation: Interpolation | None = _from_weights("resize filter")
    crop_pct: float | None = _from_weights(
        "evaluation resize to image_size / crop_pct, then centre crop; in-memory sets are shown whole", gt=0, max=1
    )
    mean: tuple[float, float, float] | None = _from_weights("normalisation mean per RGB channel", min=0, max=1)
    std: tuple[float, float, float] | None = _from_weights("normalisation std per RGB channel", gt=0, max=10)
    num_classes: int | None = field(
        default=None, metadata={"help": "classifier size (default: from the data)", "min": 1, "max": 1_000_000}
    )
    pretrained: str | None = field(
        default=None,
        metadata={
            "help": "weights to start from (fine-tuning): a weights file, a run folder, a model name "
            "(timm's hub weights), local-dir:DIR or hf-hub:ORG/NAME; the model, image size and "
            "preprocessing then default to the weights'"
        },
    )
    freeze_backbone: bool = field(default=False, metadata={"help": "train only the new head"})
    train_limit: int | None = field(
        default=None, metadata={"help": "use a fixed subset of this many train images", "min": 1}
    )
    val_limit: int | None = field(
        default=None, metadata={"help": "use a fixed subset of this many val images", "min": 1}
    )
    strict: bool = field(default=False, metadata={"help": "fail on an unreadable image instead of skipping it"})
    # schedule and optimiser
    epochs: int = field(default=10, metadata={"help": "epochs", "min": 1, "max": 100_000})
    batch_size: int = field(default=64, metadata={"help": "global batch size", "min": 1, "max": 1 << 20})
    accum_steps: int = field(
        default=1, metadata={"help": "gradient-accumulation micro-batches per step", "min": 1, "max": 1 << 16}
    )
    lr: float | None = field(
        default=None,
        metadata={"help": "peak LR (default: base_lr * batch_size / base_batch)", "gt": 0, "max": 100},
    )
    base_lr: float = field(default=0.2, metadata={"help": "LR at base_batch (paper: 0.5 at 512)", "gt": 0, "max": 100})
    base_batch: int = field(default=256, metadata={"help": "batch size base_lr refers to", "min": 1, "max": 1 << 20})
    min_lr: float = field(default=1e-6, metadata={"help": "final LR of the cosine", "min": 0, "max": 100})
    warmup_epochs: float = field(default=1.0, metadata={"help": "linear warm-up epochs", "min": 0, "max": 100_000})
    warmup_lr: float = field(default=1e-4, metadata={"help": "LR at the start of warm-up", "min": 0, "max": 100})
    momentum: float = field(default=0.9, metadata={"help": "SGD momentum", "min": 0, "lt": 1})
    nesterov: bool = field(default=True, metadata={"help": "Nesterov momentum"})
    weight_decay: float = field(default=5e-5, metadata={"help": "weight decay (not on BN/bias)", "min": 0, "max": 1})
    label_smoothing: float = field(default=0.1, metadata={"help": "label smoothing", "min": 0, "lt": 1})
    dropout: float | None = field(
        default=0.2, metadata={"help": "dropout before the classifier (None: model's)", "min": 0, "lt": 1}
    )
    drop_path: float = field(
        default=0.0, metadata={"help": "stochastic depth (recommended for widths >= 1.5)", "min": 0, "lt": 1}
    )
    clip_grad: float | None = field(
        default=None, metadata={"help": "clip the gradient norm to this", "gt": 0, "max": 1e6}
    )
    ema: bool = field(default=False, metadata={"help": "keep an EMA of the weights (evaluated too)"})
    ema_decay: float = field(default=0.9998, metadata={"help": "EMA decay per optimiser step", "min": 0, "lt": 1})
    # augmentation (train split): flags --aug-scale, --aug-hflip, ...
    aug: AugmentConfig = field(
        default_factory=lambda: AugmentConfig(
            scale=(0.35, 1.0), ratio=(0.75, 1.333), hflip=0.0, randaug_n=0, randaug_m=9.0, randaug_mstd=0.5, reprob=0.0
        ),
        metadata={"help": "training augmentation"},
    )
    # execution
    amp: Literal["none", "bf16", "fp16", "auto"] = field(
        default="none",
        metadata={"help": "mixed precision; auto: bf16 on CPUs with native bf16 (AVX512-BF16 or AMX)"},
    )
    channels_last: bool = field(default=True, metadata={"help": "channels_last memory format (faster on CPU)"})
    compile: bool = field(default=False, metadata={"help": "torch.compile the model (inductor)"})
    aug_backend: Literal["auto", "batched", "per-sample"] = field(
        default="auto",
        metadata={
            "help": "augment whole batches in memory (batched: in-memory data, no RandAugment) "
            "or each image in DataLoader workers (per-sample); auto = batched where possible"
        },
    )
    sync_bn: bool = field(default=False, metadata={"help": "SyncBatchNorm under DDP (GPU only)"})
    device: str = field(default="auto", metadata={"help": "auto | cpu | cuda | cuda:N"})
    workers: int = field(
        default=0, metadata={"help": "DataLoader worker processes (per-sample augmentation)", "min": 0, "max": 256}
    )
    threads: int | None = field(
        default=None,
        metadata={
            "help": "torch CPU threads (None: the cores this process may use, split over local DDP processes)",
            **THREAD_BOUNDS,
        },
    )
    plan: Literal["auto", "fixed"] = field(
        default="auto",
        metadata={
            "help": "auto: time the first steps with 1..cores threads, keep the fastest, re-time on drift or "
            "every few minutes (rexnet.train.plan); fixed: --threads or the size rule, no timing (reproducible)"
        },
    )
    seed: int = field(default=0, metadata={"help": "random seed", "min": 0, "max": MAX_SEED})
    deterministic: bool = field(default=True, metadata={"help": "deterministic kernels (bitwise resume on CPU)"})
    # output
    out: str | None = field(default=None, metadata={"help": "run folder (default: runs/<model>-<data>)"})
    save_every_steps: int = field(
        default=0, metadata={"help": "also checkpoint every N steps inside an epoch", "min": 0}
    )
    progress: bool = field(
        default=True,
        metadata={
            "help": "progress: a tqdm bar on a terminal; plain log lines (see log_every_steps) to a file or pipe"
        },
    )
    log_every_steps: int = field(
        default=0,
        metadata={"help": "without a terminal, also log a line every N steps (0: one line per epoch)", "min": 0},
    )
    tensorboard: bool = field(default=True, metadata={"help": "write TensorBoard events if installed"})

    def validate(self) -> None:
        # types and the ranges in the fields' metadata are checked first (rexnet._config)
        if not re.fullmatch(r"auto|cpu|mps|cuda(:\d+)?", self.device):
            raise ConfigError(f"--device: bad value for device: {self.device!r}; expected auto, cpu, cuda or cuda:N")

    def peak_lr(self) -> float:
        """The LR after warm-up."""
        return self.lr if self.lr is not None else self.base_lr * self.batch_size / self.base_batch

    @classmethod
    def from_dict(cls, d: dict[str, Any], preset: str | None = None) -> TrainConfig:
        """A config from ``preset`` (default ``quick``) with ``d`` applied.

        Raises:
            ConfigError: Unknown key or preset, or a value that does not fit the field's type.
        """
        return preset_config(preset or "quick").replace(**d)

    @classmethod
    def preset(cls, name: str, **overrides: Any) -> TrainConfig:
        """A named preset (see :data:`PRESETS`) with ``overrides``.

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
#: ``finetune``: the short recipe for fine-tuning pretrained weights on your own images (``rexnet finetune``'s
#: default; see the entry below).
#: ``fashion``: the Fashion-MNIST recipe of the reproduction experiments (benchmarks/RESULTS.md):
#: 32 px, 30 epochs, batch 128, horizontal flips, random erasing, EMA off; ``fashion-short``: its light-augmentation
#: variant for the 8-10-epoch experiments that a CPU budget allows.
#: What the Fashion-MNIST recipes share.
_FASHION: dict[str, Any] = dict(data="fashion-mnist", batch_size=128)

PRESETS: dict[str, dict[str, Any]] = {
    "quick": {},
    # Fine-tuning pretrained weights on a small set of your own images, as timm users do it (timm's train.py with
    # --pretrained and a tenth of the from-scratch LR): 10 epochs, SGD Nesterov at LR 0.01 for batch 64 (0.04 at
    # 256: a sixth of the paper's from-scratch 0.25 at 256, the new head learns fast and the backbone keeps its
    # features), one warm-up epoch, weight decay 1e-5 (the paper's), label smoothing 0.1, dropout 0.2, flips and
    # timm's default random-resized crops (8-100 % of the area). Image size, interpolation, crop and mean/std come
    # from the weights' pretrained_cfg (224 px for ImageNet weights); 224 where the weights record none.
    "finetune": dict(
        image_size=224,
        epochs=10,
        batch_size=64,
        base_lr=0.04,
        base_batch=256,
        warmup_epochs=1.0,
        weight_decay=1e-5,
        label_smoothing=0.1,
        dropout=0.2,
        aug=dict(scale=(0.08, 1.0), ratio=(0.75, 1.333), hflip=0.5, randaug_n=0, reprob=0.0),
    ),
    "fashion": dict(_FASHION, epochs=30, aug=dict(hflip=0.5, reprob=0.25, scale=(0.5, 1.0)), warmup_epochs=2.0),
    # The short-schedule recipe of the CPU experiments: crops that keep the garment whole and no erasing. With
    # `fashion`'s augmentation, 4 epochs on 12,000 images reached 73.5 % validation (mobilenetv2_100); eval-size
    # images with flips reached 87.7 % after 2 epochs on 15,000 (rexnet_100, benchmarks/fmnist_short_train.py).
    "fashion-short": dict(
        _FASHION, epochs=8, warmup_epochs=1.0, aug=dict(hflip=0.5, scale=(0.85, 1.0), ratio=(0.9, 1.11))
    ),
    # The converged recipe for Fashion-MNIST (issue 27): 30 epochs on all 55,000 images with the paper's
    # regularisers that the batched in-memory path supports: random erasing, label smoothing, dropout and an EMA of
    # the weights (RandAugment needs per-image augmentation in loader workers, about 6x slower at 32 px, and is off).
    # Crops keep most of the garment (70-100 % of the area): at 28 px a 50 % crop loses whole sleeves and collars.
    "fashion-long": dict(
        _FASHION,
        epochs=30,
        aug=dict(hflip=0.5, scale=(0.7, 1.0), ratio=(0.85, 1.18), reprob=0.25),
        warmup_epochs=2.0,
        ema=True,
        ema_decay=0.9995,
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
        aug=dict(
            scale=(0.08, 1.0), ratio=(0.75, 1.333), hflip=0.5, randaug_n=2, randaug_m=9.0, randaug_mstd=0.5, reprob=0.2
        ),
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
    return TrainConfig().replace(**PRESETS[name])


def coerce(name: str, value: Any) -> Any:
    """Convert ``value`` (possibly a CLI string) to the type of :class:`TrainConfig` field ``name``.

    Raises:
        ConfigError: Unknown field or a value that does not fit.
    """
    return _coerce(TrainConfig, name, value)


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
    try:
        TrainConfig().replace(**{k: v for k, v in d.items() if k != "preset"})
    except ConfigError as e:
        raise ConfigError(f"{path}: {e}") from None
    return d
