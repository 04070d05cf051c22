"""Exact resume after kill -9 and after SIGINT; truncated checkpoints; crash-safe saves."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from torch.utils.data import Dataset

import rexnet
from rexnet.cli import main
from rexnet.data import build_datasets
from rexnet.errors import CheckpointError
from rexnet.train import fit, load_checkpoint, save_checkpoint

from .helpers import tiny_cfg

_ARGS = [
    "-m",
    "rexnet_060",
    "--train-limit",
    "96",
    "--val-limit",
    "32",
    "-b",
    "16",
    "-e",
    "3",
    "--threads",
    "1",
    "--lr",
    "0.05",
    "--no-progress",
    "--no-tensorboard",
]


def _cli(out: Path, *extra: str) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(Path(rexnet.__file__).parents[1])}
    return subprocess.Popen(
        [sys.executable, "-m", "rexnet", "train", *_ARGS, "-o", str(out), *extra],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _lines(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text().splitlines()] if path.exists() else []


def _weights(run: Path) -> dict[str, torch.Tensor]:
    return load_checkpoint(run / "checkpoints" / "last.pt")["model"]


@pytest.mark.slow
def test_kill9_during_epoch2_then_resume_is_exact(tmp_path):
    ref, run = tmp_path / "ref", tmp_path / "run"
    p_ref, p_run = _cli(ref), _cli(run)
    deadline = time.time() + 120
    while not _lines(run / "metrics.jsonl") and time.time() < deadline and p_run.poll() is None:
        time.sleep(0.05)
    first = _lines(run / "metrics.jsonl")
    assert len(first) == 1, p_run.communicate()[0]
    time.sleep(0.4 * first[0]["seconds"])  # well inside epoch 2
    p_run.send_signal(signal.SIGKILL)
    p_run.wait()
    assert p_run.returncode == -signal.SIGKILL
    assert len(_lines(run / "metrics.jsonl")) == 1, "epoch 2 finished before the kill; test timing is off"
    resumed = _cli(run, "--resume")
    out, _ = resumed.communicate(timeout=180)
    assert resumed.returncode == 0, out
    assert p_ref.wait(timeout=180) == 0, p_ref.communicate()[0]
    assert [m["epoch"] for m in _lines(run / "metrics.jsonl")] == [1, 2, 3]
    a, b = _weights(ref), _weights(run)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)  # bitwise
    val = [[m["val_loss"] for m in _lines(r / "metrics.jsonl")] for r in (ref, run)]
    assert val[0] == val[1]


class _Interrupting(Dataset):
    """Sends SIGINT to this process when the ``at``-th sample is read (a Ctrl-C mid-epoch)."""

    def __init__(self, ds, at: int | None):
        self.ds, self.at, self.reads = ds, at, 0

    def __len__(self):
        return len(self.ds)

    def __getitem__(self, i):
        self.reads += 1
        if self.reads == self.at:
            os.kill(os.getpid(), signal.SIGINT)
        return self.ds[i]


def test_sigint_saves_mid_epoch_and_resume_is_exact(tmp_path):
    b = build_datasets("digits", 32, model="rexnet_060", train_limit=64, val_limit=32)
    cfg = tiny_cfg(epochs=2, save_every_steps=0)
    torch.manual_seed(0)
    ref = rexnet.create_model("rexnet_060", num_classes=10)
    fit(ref, _Interrupting(b.train, None), b.val, cfg)
    torch.manual_seed(0)
    m = rexnet.create_model("rexnet_060", num_classes=10)
    res = fit(m, _Interrupting(b.train, 64 + 21), b.val, cfg, out_dir=tmp_path)  # 2nd batch of epoch 2
    assert res["status"] == "interrupted"
    ck = load_checkpoint(tmp_path / "checkpoints" / "last.pt")
    assert (ck["epoch"], ck["step_in_epoch"]) == (1, 2)
    torch.manual_seed(123)  # resume must not depend on the fresh model's init
    m2 = rexnet.create_model("rexnet_060", num_classes=10)
    res2 = fit(m2, b.train, b.val, cfg, out_dir=tmp_path, resume=True)
    assert res2["status"] == "completed"
    assert all(torch.equal(x, y) for x, y in zip(ref.state_dict().values(), m2.state_dict().values()))
    assert [m["epoch"] for m in _lines(tmp_path / "metrics.jsonl")] == [1, 2]


def test_truncated_checkpoint_is_refused(tmp_path, capsys):
    b = build_datasets("digits", 32, model="rexnet_060", train_limit=32, val_limit=16)
    fit(rexnet.create_model("rexnet_060", num_classes=10), b.train, b.val, tiny_cfg(epochs=1), out_dir=tmp_path)
    last = tmp_path / "checkpoints" / "last.pt"
    data = last.read_bytes()
    last.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        load_checkpoint(last)
    assert main(["train", "--resume", "-o", str(tmp_path)]) == 2
    assert "truncated or corrupt checkpoint" in capsys.readouterr().err
    (tmp_path / "x.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError):
        load_checkpoint(tmp_path / "x.pt")


def test_crash_during_save_keeps_previous_last(tmp_path, monkeypatch):
    last = tmp_path / "last.pt"
    good = {
        "model": {"w": torch.ones(3)},
        "optimizer": {},
        "scheduler": {},
        "epoch": 1,
        "step_in_epoch": 0,
        "history": [],
        "config": {},
    }
    save_checkpoint(good, last)
    before = last.read_bytes()
    real_save = torch.save

    def crashing_save(obj, f, *a, **k):
        real_save(obj, f, *a, **k)
        f.flush()  # a half-written file (the writer gets an open binary file), then the process "dies"
        f.truncate(100)
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", crashing_save)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint({**good, "epoch": 2}, last)
    assert last.read_bytes() == before and load_checkpoint(last)["epoch"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]  # no temp file left behind


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_stop_flag_catches_sigint_and_sigterm(sig):
    from rexnet.run import StopFlag

    before = signal.getsignal(sig)
    with StopFlag() as stop:
        os.kill(os.getpid(), sig)
        time.sleep(0.01)
        assert stop.signal == sig  # recorded, not raised: the loop saves and returns
    assert signal.getsignal(sig) is before
