"""``DetectConfig``: every setting of a detection run, checked like every :class:`~rexnet._config.Config`.

The flags of ``rexnet detect train`` are generated from its fields; the run folder's ``config.json``
holds it, and ``--resume`` compares against it (:data:`RESUME_FREE`, :data:`RESUME_FIXED`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from .._config import Config, check_range
from ..errors import ConfigError
from .models import DETECTORS

__all__ = ["DetectConfig", "RESUME_FREE", "RESUME_FIXED"]

#: Fields that change how a run executes, not what it computes: free to change on resume.
RESUME_FREE = frozenset({"progress", "threads", "device"})
#: The checkpoint's weights are tied to these: no resume can change them.
RESUME_FIXED = ("arch", "backbone", "masks")


def _help(text: str) -> dict[str, str]:
    return {"help": text}


@dataclass
class DetectConfig(Config):
    """Everything a detection run needs; saved in the run folder and in every checkpoint."""

    kind = "detection config key"

    arch: str = field(default="ssdlite", metadata=_help(f"detector: {', '.join(DETECTORS)}"))
    backbone: str = field(default="rexnet_100", metadata=_help("zoo model name of the backbone"))
    data: str = field(
        default="demo", metadata=_help("'demo' (embedded) or a COCO folder with instances_{train,val}.json")
    )
    image_size: int = field(default=128, metadata=_help("input side; the demo canvas size"))
    masks: bool = field(default=False, metadata=_help("predict instance masks (Mask R-CNN turns this on)"))
    pretrained_backbone: str | None = field(
        default=None, metadata=_help("classification weights for the backbone (None: random)")
    )
    epochs: int = field(default=12, metadata=_help("epochs"))
    batch_size: int = field(default=16, metadata=_help("images per step (over all processes)"))
    optimizer: Literal["adamw", "sgd"] = field(default="adamw", metadata=_help("optimizer (sgd: momentum 0.9)"))
    lr: float = field(default=2e-3, metadata=_help("peak learning rate"))
    weight_decay: float = field(default=1e-4, metadata=_help("weight decay, not on BN/bias"))
    warmup_iters: int = field(default=50, metadata=_help("linear warm-up steps"))
    seed: int = field(default=0, metadata=_help("seed"))
    train_limit: int | None = field(default=None, metadata=_help("use only the first N training images (None: all)"))
    val_limit: int | None = field(default=None, metadata=_help("use only the first N validation images (None: all)"))
    eval_every: int = field(default=0, metadata=_help("COCO eval every N epochs; 0 = at the end only"))
    grad_clip: float = field(default=10.0, metadata=_help("gradient-norm clip; 0 = none"))
    threads: int = field(default=0, metadata=_help("torch threads; 0 = torch's choice"))
    progress: bool = field(default=True, metadata=_help("progress bar on a terminal (log lines otherwise)"))
    device: str = field(default="cpu", metadata=_help("cpu or cuda"))

    def validate(self) -> None:
        """Ranges of every number, the detector name, and ``masks`` for Mask R-CNN."""
        if self.arch not in DETECTORS:
            raise ConfigError(f"unknown detector {self.arch!r}; expected one of: {', '.join(DETECTORS)}")
        for name in ("epochs", "batch_size"):
            check_range(name, getattr(self, name), 1)
        check_range("image_size", self.image_size, 32)
        check_range("lr", self.lr, 0, 10, open_low=True)
        check_range("weight_decay", self.weight_decay, 0, 1)
        check_range("grad_clip", self.grad_clip, 0)
        for name in ("warmup_iters", "seed", "eval_every"):
            check_range(name, getattr(self, name), 0)
        for name in ("train_limit", "val_limit"):
            check_range(name, getattr(self, name), 1, none_means="all")
        check_range("threads", self.threads, 0)  # the cap at this machine's cores is checked when training starts
        if self.device not in ("cpu", "cuda") and not self.device.startswith("cuda:"):
            raise ConfigError(f"device must be cpu, cuda or cuda:N, got {self.device!r}")
        if self.arch == "maskrcnn_fpn":
            self.masks = True
