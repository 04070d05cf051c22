"""The fast CPU training path: batched in-memory augmentation, thread defaults, progress for logs."""

from __future__ import annotations

import logging

import pytest
import torch

from rexnet.data import build_datasets
from rexnet.data.batched import TensorBatchLoader
from rexnet.errors import RexnetError
from rexnet.train import TrainConfig
from rexnet.train.config import ConfigError
from rexnet.train.loaders import train_loader
from rexnet.train.loop import default_threads, fit
from rexnet.train.run import augment_from_config
from rexnet.train.sampling import EpochSampler
from rexnet.zoo import create_model

from .helpers import tiny_cfg


def _bundle(cfg: TrainConfig):
    return build_datasets(
        cfg.data,
        cfg.image_size,
        model=cfg.model,
        augment=augment_from_config(cfg),
        train_limit=cfg.train_limit,
        val_limit=cfg.val_limit,
    )


def test_defaults_are_the_fast_path():
    cfg = TrainConfig()
    assert cfg.channels_last and cfg.aug_backend == "auto" and cfg.threads is None
    b = _bundle(tiny_cfg())
    sampler = EpochSampler(len(b.train), 16, 0)
    assert isinstance(train_loader(b.train, 16, tiny_cfg(), torch.device("cpu"), sampler), TensorBatchLoader)
    per_sample = train_loader(b.train, 16, tiny_cfg(aug_backend="per-sample"), torch.device("cpu"), sampler)
    assert isinstance(per_sample, torch.utils.data.DataLoader)


def test_batched_backend_refuses_what_it_cannot_do():
    cfg = tiny_cfg(aug_backend="batched", randaug_n=2)
    b = _bundle(cfg)
    with pytest.raises(RexnetError, match="randaug_n=0"):
        train_loader(b.train, 16, cfg, torch.device("cpu"), EpochSampler(len(b.train), 16, 0))
    with pytest.raises(ConfigError, match="aug_backend"):
        TrainConfig(aug_backend="gpu")
    with pytest.raises(ConfigError, match="threads"):
        TrainConfig(threads=0)


def test_default_threads_split_over_local_processes(monkeypatch):
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "1")
    one = default_threads()
    monkeypatch.setenv("LOCAL_WORLD_SIZE", str(one * 2))
    assert one >= 1 and default_threads() == 1
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "1")
    assert default_threads(32, 64) == 1  # too little work per op to share (measured, RESULTS.md)
    assert default_threads(224, 32) == one


def test_both_backends_learn_the_digits():
    """Same recipe, either augmentation backend: the training loss falls (accuracy parity over full runs is
    measured in benchmarks/bench_train_speed.py, not here)."""
    for backend in ("batched", "per-sample"):
        cfg = tiny_cfg(aug_backend=backend, train_limit=400, val_limit=100, epochs=3, batch_size=32, lr=0.1)
        b = _bundle(cfg)
        torch.manual_seed(0)
        hist = fit(create_model(cfg.model, num_classes=10), b.train, b.val, cfg)["history"]
        assert hist[-1]["train_loss"] < hist[0]["train_loss"] - 0.1, (backend, hist)


def test_progress_without_a_terminal_logs_lines(caplog):
    cfg = tiny_cfg(progress=True, log_every_steps=2, epochs=1, train_limit=64, batch_size=16)
    b = _bundle(cfg)
    with caplog.at_level(logging.INFO, logger="rexnet"):
        fit(create_model(cfg.model, num_classes=10), b.train, b.val, cfg)
    steps = [r.getMessage() for r in caplog.records if " step " in r.getMessage()]
    assert [m.split(" step ")[1].split()[0] for m in steps] == ["2/4", "4/4"]
    assert all("\r" not in m and "img_s" in m for m in steps)


def test_checkpoints_are_layout_free(tmp_path):
    """Trained channels-last, saved NCHW: the checkpoint loads into any model whatever its layout."""
    from rexnet.train.checkpoint import load_checkpoint

    cfg = tiny_cfg(epochs=1, train_limit=32, channels_last=True)
    b = _bundle(cfg)
    fit(create_model(cfg.model, num_classes=10), b.train, b.val, cfg, out_dir=tmp_path)
    weights = load_checkpoint(tmp_path / "checkpoints" / "last.pt")["model"]
    convs = [v for v in weights.values() if v.ndim == 4]
    assert convs and all(v.is_contiguous() for v in convs)
    assert not any(v.is_contiguous(memory_format=torch.channels_last) and not v.is_contiguous() for v in convs)


def test_amp_auto_on_cpu_follows_native_bf16(monkeypatch):
    import rexnet._device as ev

    for native, dtype in ((True, torch.bfloat16), (False, None)):
        monkeypatch.setattr(ev, "cpu_has_native_bf16", lambda native=native: native)
        with ev.autocast(torch.device("cpu"), "auto"):
            out = torch.nn.functional.linear(torch.randn(2, 4), torch.randn(3, 4))
        assert out.dtype == (dtype or torch.float32)
