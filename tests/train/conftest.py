"""Shared helpers for the training tests: tiny, fast, single-threaded configs."""

from __future__ import annotations

import pytest
import torch

from rexnet.train import TrainConfig


@pytest.fixture(autouse=True)
def _one_thread():
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


def tiny_cfg(**kw) -> TrainConfig:
    """rexnet_060 on 64 digits at 32 px: a second per epoch on one core."""
    base = dict(model="rexnet_060", data="digits", image_size=32, train_limit=64, val_limit=48, batch_size=16,
                epochs=2, threads=1, progress=False, tensorboard=False, lr=0.05, warmup_epochs=0.5)
    base.update(kw)
    return TrainConfig().replace(**base)
