"""fit(): in-memory use, determinism, callbacks, NaN handling, the run folder, options, exact resume."""

from __future__ import annotations

import importlib.util
import json
import os
import signal

import pytest
import torch
from torch import nn

import rexnet
from rexnet.data import build_datasets
from rexnet.train import NonFiniteLossError, fit, load_checkpoint

from .helpers import tiny_cfg


@pytest.fixture(scope="module")
def bundle():
    return build_datasets("digits", 32, model="rexnet_060", train_limit=64, val_limit=48)


def _model(seed=0, **kw):
    torch.manual_seed(seed)
    return rexnet.create_model("rexnet_060", num_classes=10, **kw)


def test_fit_in_memory_is_deterministic(bundle, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    seen = []
    cfg = tiny_cfg()
    a, b = _model(), _model()
    ra = fit(a, bundle.train, bundle.val, cfg, on_epoch_end=lambda e, m: seen.append((e, m["val_top1"])))
    rb = fit(b, bundle.train, bundle.val, cfg)
    assert list(tmp_path.iterdir()) == []  # no out_dir: nothing written
    assert [e for e, _ in seen] == [1, 2] and seen[-1][1] == ra["val_top1"]
    assert ra["status"] == "completed" and 0 <= ra["val_top1"] <= 100 and len(ra["history"]) == 2
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))
    assert [h["val_loss"] for h in ra["history"]] == [h["val_loss"] for h in rb["history"]]


def test_on_epoch_end_exception_propagates(bundle):
    class Pruned(Exception):
        pass

    def prune(epoch, metrics):
        raise Pruned(epoch)

    with pytest.raises(Pruned):
        fit(_model(), bundle.train, bundle.val, tiny_cfg(epochs=3), on_epoch_end=prune)


class _Flaky(nn.Module):
    """A tiny classifier whose output turns NaN when ``broken`` is set."""

    num_classes = 10

    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(3, 8, 3, 2), nn.BatchNorm2d(8), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 10)
        )
        self.broken = False

    def forward(self, x):
        y = self.net(x)
        return y * float("nan") if self.broken else y


def test_nan_loss_stops_and_keeps_last_good_checkpoint(bundle, tmp_path):
    model = _Flaky()

    def breaker(epoch, metrics):
        model.broken = True

    with pytest.raises(NonFiniteLossError, match=r"loss became nan at epoch 2, step 1.*last\.pt"):
        fit(model, bundle.train, bundle.val, tiny_cfg(epochs=3), out_dir=tmp_path, on_epoch_end=breaker)
    ck = load_checkpoint(tmp_path / "checkpoints" / "last.pt")
    assert ck["epoch"] == 1 and all(torch.isfinite(v).all() for v in ck["model"].values() if v.is_floating_point())
    assert len((tmp_path / "metrics.jsonl").read_text().splitlines()) == 1
    assert json.loads((tmp_path / "summary.json").read_text())["status"] == "diverged"


def test_run_folder_contents(bundle, tmp_path):
    cfg = tiny_cfg(
        tensorboard=True,
        ema=True,
        ema_decay=0.9,
        clip_grad=1.0,
        amp="bf16",
        channels_last=True,
        accum_steps=2,
        epochs=1,
    )
    res = fit(_model(), bundle.train, bundle.val, cfg, out_dir=tmp_path, class_names=bundle.class_names)
    names = {p.name for p in tmp_path.iterdir()}
    assert {"config.json", "metrics.jsonl", "summary.json", "curves.png", "checkpoints"} <= names
    if importlib.util.find_spec("tensorboard") is not None:  # event files only when tensorboard is installed
        assert any((tmp_path / "tensorboard").iterdir())
    else:
        assert "tensorboard" not in names
    line = json.loads((tmp_path / "metrics.jsonl").read_text())
    for key in (
        "epoch",
        "lr",
        "train_loss",
        "val_loss",
        "val_top1",
        "val_top5",
        "images_per_sec",
        "seconds",
        "val_top1_ema",
    ):
        assert key in line
    ck = load_checkpoint(tmp_path / "checkpoints" / "best.pt")
    for key in ("model", "optimizer", "scheduler", "scaler", "ema", "rng", "epoch", "config", "plan"):
        assert key in ck
    assert ck["class_names"] == bundle.class_names and ck["model_name"] == "rexnet_060"
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["best_top1"] == res["best_top1"]


def test_lr_schedule_warmup_then_cosine():
    from rexnet.train.optim import lr_at

    lrs = [lr_at(s, 100, 10, 0.5, 1e-4, 1e-6) for s in range(101)]
    assert lrs[0] == pytest.approx(1e-4) and lrs[10] == pytest.approx(0.5) and lrs[100] == pytest.approx(1e-6)
    assert all(a <= b for a, b in zip(lrs[:10], lrs[1:11])) and all(a >= b for a, b in zip(lrs[10:], lrs[11:]))


def test_no_weight_decay_on_bn_and_bias():
    from rexnet.train.optim import build_optimizer

    m = _model()
    opt = build_optimizer(m, tiny_cfg(weight_decay=1e-5))
    decay, no_decay = opt.param_groups
    assert decay["weight_decay"] == 1e-5 and no_decay["weight_decay"] == 0.0
    assert all(p.ndim > 1 for p in decay["params"]) and all(p.ndim == 1 for p in no_decay["params"])
    assert opt.defaults["nesterov"] is True


def test_workers_and_compile_option_do_not_change_results(bundle, monkeypatch):
    """Per-sample seeding makes augmentation independent of the worker count; ``compile`` wraps the model."""
    compiled = []

    def fake_compile(module, *a, **k):
        compiled.append(module)
        return module

    monkeypatch.setattr(torch, "compile", fake_compile)
    a, b = _model(), _model()
    fit(a, bundle.train, bundle.val, tiny_cfg(epochs=1, aug_backend="per-sample"))  # the DataLoader path
    fit(b, bundle.train, bundle.val, tiny_cfg(epochs=1, aug_backend="per-sample", workers=2, compile=True))
    assert compiled == [b]
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))
    assert torch.get_num_threads() == 1  # fit restores the global settings it changed


_SGD_STEP = torch.optim.SGD.step


def _record_lrs(monkeypatch, interrupt_at: int | None = None) -> list[float]:
    """Record the LR of every SGD step; send SIGINT to this process during step ``interrupt_at`` (from 1)."""
    lrs: list[float] = []

    def step(opt, *a, **k):
        lrs.append(opt.param_groups[0]["lr"])
        if len(lrs) == interrupt_at:
            os.kill(os.getpid(), signal.SIGINT)
        return _SGD_STEP(opt, *a, **k)

    monkeypatch.setattr(torch.optim.SGD, "step", step)
    return lrs


def test_resume_mid_epoch_gives_the_same_weights_and_lr_schedule(bundle, tmp_path, monkeypatch):
    cfg = tiny_cfg(epochs=3, ema=True, ema_decay=0.9, save_every_steps=0)  # 4 steps per epoch, warm-up 2
    ref_lrs = _record_lrs(monkeypatch)
    ref_res = fit(_model(), bundle.train, bundle.val, cfg, out_dir=tmp_path / "ref")
    assert len(ref_lrs) == 12 and len(set(ref_lrs)) == 12  # one LR per step, and every one different
    lrs = _record_lrs(monkeypatch, interrupt_at=6)  # the stop lands after the next step: epoch 2, step 3
    res = fit(_model(), bundle.train, bundle.val, cfg, out_dir=tmp_path / "run")
    ck = load_checkpoint(tmp_path / "run" / "checkpoints" / "last.pt")
    assert res["status"] == "interrupted" and (ck["epoch"], ck["step_in_epoch"]) == (1, 3)
    rest = _record_lrs(monkeypatch)
    res = fit(_model(seed=123), bundle.train, bundle.val, cfg, out_dir=tmp_path / "run", resume=True)
    assert res["status"] == "completed"
    assert lrs + rest == ref_lrs  # bitwise: the schedule continues at the saved step
    a, b = (load_checkpoint(tmp_path / r / "checkpoints" / "last.pt") for r in ("ref", "run"))
    for part in ("model", "ema"):
        assert all(torch.equal(v, b[part][k]) for k, v in a[part].items()), part
    assert a["optimizer"]["param_groups"][0]["lr"] == b["optimizer"]["param_groups"][0]["lr"]
    assert [h["val_loss"] for h in res["history"]] == [h["val_loss"] for h in ref_res["history"]]


def test_resume_with_more_epochs_follows_the_new_schedule(bundle, tmp_path, monkeypatch):
    from rexnet.train.optim import lr_at

    cfg = tiny_cfg(epochs=2)  # 4 steps per epoch
    fit(_model(), bundle.train, bundle.val, cfg, out_dir=tmp_path)
    lrs = _record_lrs(monkeypatch)
    longer = cfg.replace(epochs=4)
    fit(_model(), bundle.train, bundle.val, longer, out_dir=tmp_path, resume=True)
    peak = longer.peak_lr()
    expected = [lr_at(s, 16, 2, peak, min(longer.warmup_lr, peak), min(longer.min_lr, peak)) for s in range(8, 16)]
    assert lrs == pytest.approx(expected, rel=1e-12)


def test_scheduler_state_is_its_step_and_older_lambdalr_states_load():
    from rexnet.train.optim import build_optimizer, build_scheduler

    cfg = tiny_cfg(epochs=3)
    opt = build_optimizer(_model(), cfg)
    sched = build_scheduler(opt, cfg, steps_per_epoch=4)
    for _ in range(5):
        opt.step()
        sched.step()
    assert sched.state_dict() == {"last_epoch": 5}
    old_opt = torch.optim.SGD(nn.Linear(2, 2).parameters(), lr=1.0)  # older checkpoints hold a LambdaLR state
    old = torch.optim.lr_scheduler.LambdaLR(old_opt, lambda s: 1.0)
    for _ in range(5):
        old_opt.step()
        old.step()
    fresh_opt = build_optimizer(_model(), cfg)
    fresh = build_scheduler(fresh_opt, cfg, steps_per_epoch=4)
    fresh.load_state_dict(old.state_dict())
    assert [g["lr"] for g in fresh_opt.param_groups] == [g["lr"] for g in opt.param_groups] != [cfg.peak_lr()] * 2
