"""Training and evaluation transforms (torchvision v2), following the paper's recipe.

Train: RandomResizedCrop(0.08-1) + horizontal flip + RandAugment(m9, mstd 0.5) + RandomErasing(0.2,
per-pixel noise). Eval: resize to ``size / crop_pct`` (bicubic) + center crop. Mean/std come from
the model's registry entry.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torchvision.transforms import InterpolationMode, v2

from .._config import Config, flag_name
from ..errors import ConfigError
from ..zoo import IMAGENET_MEAN, IMAGENET_STD, get_model_info

__all__ = ["AugmentConfig", "RandAugmentMstd", "build_train_transform", "build_eval_transform", "model_norm"]


@dataclass(frozen=True)
class AugmentConfig(Config):
    """Training-time augmentation (paper defaults); ``TrainConfig.aug`` holds one (flags ``--aug-*``).

    Attributes:
        scale: RandomResizedCrop area range.
        ratio: RandomResizedCrop aspect-ratio range.
        hflip: Probability of a horizontal flip (0 for digits, whose mirror images are other glyphs).
        randaug_n: RandAugment operations per image (0 disables RandAugment).
        randaug_m: RandAugment magnitude on timm's 0-10 scale.
        randaug_mstd: Standard deviation of the per-image magnitude noise.
        reprob: RandomErasing probability (per-pixel normal noise, timm's ``--remode pixel``).
    """

    kind = "augmentation option"
    flag_prefix = "aug"

    scale: tuple[float, float] = field(
        default=(0.08, 1.0), metadata={"help": "RandomResizedCrop area range (low high)", "gt": 0, "max": 1}
    )
    ratio: tuple[float, float] = field(
        default=(3 / 4, 4 / 3), metadata={"help": "RandomResizedCrop aspect range (low high)", "gt": 0, "max": 100}
    )
    hflip: float = field(default=0.5, metadata={"help": "horizontal-flip probability", "min": 0, "max": 1})
    randaug_n: int = field(default=2, metadata={"help": "RandAugment ops (0 = off)", "min": 0, "max": 16})
    randaug_m: float = field(
        default=9.0, metadata={"help": "RandAugment magnitude (timm's 0-10 scale; up to 30)", "min": 0, "max": 30}
    )
    randaug_mstd: float = field(default=0.5, metadata={"help": "RandAugment magnitude noise std", "min": 0, "max": 100})
    reprob: float = field(default=0.2, metadata={"help": "RandomErasing probability (pixel mode)", "min": 0, "max": 1})

    def validate(self) -> None:
        for key in ("scale", "ratio"):
            low, high = getattr(self, key)
            if low > high:
                raise ConfigError(
                    f"{flag_name(type(self), key)}: {key} must be (low, high) with low <= high, got {low}, {high}"
                )


class RandAugmentMstd(v2.RandAugment):
    """RandAugment with timm's magnitude noise: each call draws ``m ~ N(magnitude, mstd)`` on 0-10.

    The 0-10 scale is mapped onto 101 bins, so ``m=9`` equals timm's ``rand-m9``.
    """

    def __init__(self, num_ops: int = 2, magnitude: float = 9.0, mstd: float = 0.5, **kwargs: Any) -> None:
        super().__init__(num_ops=num_ops, magnitude=round(magnitude * 10), num_magnitude_bins=101, **kwargs)
        self.mean_magnitude = float(magnitude)
        self.mstd = float(mstd)

    def forward(self, *inputs: Any) -> Any:
        m = self.mean_magnitude
        if self.mstd > 0:
            m = m + self.mstd * float(torch.randn(()))
        self.magnitude = int(round(min(10.0, max(0.0, m)) * 10))
        return super().forward(*inputs)


def model_norm(model_name: str | None) -> dict[str, Any]:
    """Mean, std, crop_pct and interpolation of a registered model (ImageNet defaults for ``None``)."""
    if model_name is None:
        return dict(mean=IMAGENET_MEAN, std=IMAGENET_STD, crop_pct=0.875, interpolation="bicubic")
    cfg = get_model_info(model_name).pretrained_cfg
    return {k: cfg[k] for k in ("mean", "std", "crop_pct", "interpolation")}


def build_train_transform(
    image_size: int,
    aug: AugmentConfig | None = None,
    *,
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
    interpolation: str = "bicubic",
) -> v2.Compose:
    """The training transform; takes a PIL image or a uint8 ``(C, H, W)`` tensor, returns float CHW.

    Example:
        >>> t = build_train_transform(32)
        >>> t(torch.zeros(3, 40, 40, dtype=torch.uint8)).shape
        torch.Size([3, 32, 32])
    """
    aug = aug or AugmentConfig()
    interp = InterpolationMode(interpolation)
    ops: list[Any] = [
        v2.ToImage(),
        v2.RandomResizedCrop(
            image_size, scale=tuple(aug.scale), ratio=tuple(aug.ratio), interpolation=interp, antialias=True
        ),
    ]
    if aug.hflip > 0:
        ops.append(v2.RandomHorizontalFlip(aug.hflip))
    if aug.randaug_n > 0:
        ops.append(
            RandAugmentMstd(aug.randaug_n, aug.randaug_m, aug.randaug_mstd, interpolation=InterpolationMode.BILINEAR)
        )
    ops += [v2.ToDtype(torch.float32, scale=True), v2.Normalize(list(mean), list(std))]
    if aug.reprob > 0:
        ops.append(v2.RandomErasing(p=aug.reprob, value="random"))
    return v2.Compose(ops)


def build_eval_transform(
    image_size: int,
    *,
    crop_pct: float = 0.875,
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
    interpolation: str = "bicubic",
) -> v2.Compose:
    """Resize the short side to ``image_size / crop_pct``, center-crop ``image_size``, normalize."""
    return v2.Compose(
        [
            v2.ToImage(),
            v2.Resize(int(image_size / crop_pct), interpolation=InterpolationMode(interpolation), antialias=True),
            v2.CenterCrop(image_size),
            v2.ToDtype(torch.float32, scale=True),
            v2.Normalize(list(mean), list(std)),
        ]
    )
