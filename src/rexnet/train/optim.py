"""Optimiser, LR schedule and weight EMA of the recipe."""

from __future__ import annotations

import copy
import math
from typing import Any

import torch
from torch import nn

from .config import TrainConfig

__all__ = ["param_groups", "build_optimizer", "build_scheduler", "WarmupCosineLR", "ModelEma", "lr_at"]


def param_groups(model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """Two optimiser groups: conv/linear weights with ``weight_decay``, BN and biases without (frozen ones left out)."""
    decay, no_decay = [], []
    for p in model.parameters():
        if p.requires_grad:
            (no_decay if p.ndim <= 1 else decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def build_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.SGD:
    """SGD (Nesterov by default) with weight decay on conv/linear weights only, not on BN or biases."""
    groups = param_groups(model, cfg.weight_decay)
    return torch.optim.SGD(groups, lr=cfg.peak_lr(), momentum=cfg.momentum, nesterov=cfg.nesterov and cfg.momentum > 0)


def lr_at(step: int, total_steps: int, warmup_steps: int, peak: float, warmup_lr: float, min_lr: float) -> float:
    """Linear warm-up from ``warmup_lr`` to ``peak`` over ``warmup_steps``, then cosine to ``min_lr``."""
    if step < warmup_steps:
        return warmup_lr + (peak - warmup_lr) * step / warmup_steps
    t = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    return min_lr + 0.5 * (peak - min_lr) * (1 + math.cos(math.pi * min(1.0, t)))


class WarmupCosineLR(torch.optim.lr_scheduler.LRScheduler):
    """Per-step schedule of :func:`lr_at`, as a factor on each parameter group's base LR (``peak``).

    Its state is the step count alone: :meth:`load_state_dict` puts *this* schedule (built from
    the current config, e.g. with more epochs) at the saved step and sets the optimiser's LR to
    it. It also reads the ``LambdaLR`` states that older checkpoints hold.

    Args:
        optimizer: The optimiser whose groups' LRs are scheduled (their LR at construction is the base).
        total_steps / warmup_steps: Schedule length and warm-up length in optimiser steps.
        peak / warmup_lr / min_lr: As in :func:`lr_at`.
    """

    def __init__(
        self,
        optimizer: torch.optim.Optimizer,
        total_steps: int,
        warmup_steps: int,
        peak: float,
        warmup_lr: float,
        min_lr: float,
    ) -> None:
        self.total_steps, self.warmup_steps = total_steps, warmup_steps
        self.peak, self.warmup_lr, self.min_lr = peak, warmup_lr, min_lr
        super().__init__(optimizer)

    def factor(self, step: int) -> float:
        """The LR after ``step`` optimiser steps, relative to ``peak``."""
        return lr_at(step, self.total_steps, self.warmup_steps, self.peak, self.warmup_lr, self.min_lr) / self.peak

    def get_lr(self) -> list[float]:  # type: ignore[override]
        f = self.factor(self.last_epoch)
        return [base * f for base in self.base_lrs]  # type: ignore[misc]

    def state_dict(self) -> dict[str, Any]:
        return {"last_epoch": self.last_epoch}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.last_epoch = int(state_dict["last_epoch"])
        self._last_lr = self.get_lr()  # type: ignore[assignment]
        for group, lr in zip(self.optimizer.param_groups, self._last_lr):
            group["lr"] = lr


def build_scheduler(opt: torch.optim.Optimizer, cfg: TrainConfig, steps_per_epoch: int) -> WarmupCosineLR:
    """Per-step warm-up + cosine over ``cfg.epochs`` (stepped once per optimiser step)."""
    total = cfg.epochs * steps_per_epoch
    warmup = min(total, round(cfg.warmup_epochs * steps_per_epoch))
    peak = cfg.peak_lr()
    return WarmupCosineLR(opt, total, warmup, peak, min(cfg.warmup_lr, peak), min(cfg.min_lr, peak))


class ModelEma(nn.Module):
    """Exponential moving average of a model's parameters and buffers (timm's ModelEmaV2).

    Args:
        model: The model to track (its current weights start the average).
        decay: Weight of the old average per update.
    """

    def __init__(self, model: nn.Module, decay: float = 0.9998) -> None:
        super().__init__()
        self.module = copy.deepcopy(model).eval()
        for p in self.module.parameters():
            p.requires_grad_(False)
        self.decay = decay

    @torch.no_grad()
    def update(self, model: nn.Module, step: int | None = None) -> None:
        """Fold ``model`` into the average; ``step`` (optimiser steps done, from 0) warms the decay up.

        With ``step``, the decay is ``min(decay, (1 + step) / (10 + step))`` (timm's EMA warm-up): a fixed
        0.9995 would keep half of the random initial weights for 1,400 steps, and the average would score
        at chance for the first epochs of a short run.
        """
        decay = self.decay if step is None else min(self.decay, (1 + step) / (10 + step))
        for e, m in zip(self.module.state_dict().values(), model.state_dict().values()):
            if e.is_floating_point():
                e.mul_(decay).add_(m.detach(), alpha=1 - decay)
            else:
                e.copy_(m)
