"""``TrainState``: what changes while training, and what a checkpoint holds to continue exactly."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from .checkpoint import rng_state
from .optim import ModelEma, WarmupCosineLR

__all__ = ["TrainState", "layout_free", "freeze_frozen_bn"]


def layout_free(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Weights in the default (NCHW) memory format, whatever layout training used."""
    return {k: v.contiguous() for k, v in state.items()}


def freeze_frozen_bn(model: nn.Module) -> None:
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
            model=layout_free(self.model.state_dict()),
            optimizer=self.optimizer.state_dict(),
            scheduler=self.scheduler.state_dict(),
            scaler=self.scaler.state_dict(),
            ema=layout_free(self.ema.module.state_dict()) if self.ema else None,
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

    def weights(self) -> dict[str, torch.Tensor]:
        """Every tensor that must stay finite: the model's and the EMA's weights and buffers."""
        out = dict(self.model.state_dict())
        if self.ema is not None:
            out.update({f"ema.{k}": v for k, v in self.ema.module.state_dict().items()})
        return out
