"""Run folders are owned by one process, and ``resume`` refuses changed settings unless named (issue 12)."""

from __future__ import annotations

import errno
import json
import logging
import os
import stat
import subprocess
import sys

import pytest
import torch

from rexnet import create_model
from rexnet.cli import main
from rexnet.errors import RunLockedError
from rexnet.run.lock import LOCK_NAME, RunLock
from rexnet.train import fit, load_checkpoint, save_checkpoint, train
from rexnet.train.config import ConfigError
from rexnet.train.loop import NonFiniteLossError
from rexnet.train.run import ResumeMismatchError, resume_changes

from .helpers import tiny_cfg


def _cfg(out, **kw):
    return tiny_cfg(**{"epochs": 1, "train_limit": 32, "val_limit": 16, "out": str(out), **kw})


def test_second_live_run_into_same_folder_is_refused(tmp_path):
    with RunLock(tmp_path):  # another live owner (flock is per open file, so this process counts as another)
        with pytest.raises(RunLockedError, match=r"in use by another run \(PID \d+"):
            train(_cfg(tmp_path))
    assert not (tmp_path / "metrics.jsonl").exists()
    res = train(_cfg(tmp_path))  # released: the folder is free again, and the lock file is gone afterwards
    assert res.status == "completed"
    assert not (tmp_path / LOCK_NAME).exists()


def test_stale_lock_of_dead_process_is_taken_over(tmp_path, caplog):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    pid = int(dead.stdout)
    (tmp_path / LOCK_NAME).write_text(json.dumps({"pid": pid, "host": "h", "started": "t"}))
    with caplog.at_level(logging.WARNING, logger="rexnet.run.lock"):
        res = train(_cfg(tmp_path))
    assert res.status == "completed"
    assert f"PID {pid}" in caplog.text and "no longer running" in caplog.text


def test_resume_refuses_changed_settings_unless_allowed(tmp_path):
    train(_cfg(tmp_path))
    with pytest.raises(ResumeMismatchError, match=r"epochs 1 -> 2, lr 0\.05 -> 5\.0.*--allow-change epochs,lr"):
        train(_cfg(tmp_path, epochs=2, lr=5.0), resume=True)
    with pytest.raises(ResumeMismatchError, match="data 'digits' -> 'shapes'"):
        train(_cfg(tmp_path, data="shapes"), resume=True)
    res = train(_cfg(tmp_path, epochs=2, lr=0.02, threads=1), resume=True, allow_change=["epochs", "lr"])
    assert res.metrics["epochs_completed"] == 2
    saved = json.loads((tmp_path / "config.json").read_text())
    assert saved["lr"] == 0.02 and saved["epochs"] == 2
    assert saved["resume_changes"][-1]["changes"] == {"epochs": {"from": 1, "to": 2}, "lr": {"from": 0.05, "to": 0.02}}


def test_resume_with_another_model_is_a_clear_error(tmp_path):
    train(_cfg(tmp_path))
    with pytest.raises(ResumeMismatchError, match="another model.*rexnet_060' -> 'rexnet_130'"):
        train(_cfg(tmp_path, model="rexnet_130"), resume=True, allow_change=["model"])


def test_resume_changes_free_and_unknown_keys():
    a = tiny_cfg()
    assert resume_changes(a, a.replace(threads=2, progress=True, workers=1)) == {}
    with pytest.raises(ConfigError, match="'nope'"):
        resume_changes(a, a, ["nope"])


def test_cli_resume_changed_lr_corrupt_config(tmp_path, capsys):
    train(_cfg(tmp_path))
    base = ["train", "--resume", "-o", str(tmp_path)]
    assert main([*base, "--lr", "5.0"]) == 2
    err = capsys.readouterr().err
    assert "lr 0.05 -> 5.0" in err and "--allow-change lr" in err and "Traceback" not in err
    assert main([*base, "-m", "rexnet_130", "--allow-change", "model"]) == 2
    assert "another model" in capsys.readouterr().err
    assert main(["train", "-o", str(tmp_path / "new"), "--allow-change", "lr"]) == 2
    assert "needs --resume" in capsys.readouterr().err
    (tmp_path / "config.json").write_text('{"model": "rexnet_0')
    assert main(base) == 2
    assert "config.json is corrupt" in capsys.readouterr().err
    (tmp_path / "config.json").write_text("[1, 2]")
    assert main(base) == 2
    assert "must hold a JSON object" in capsys.readouterr().err


def test_run_files_honour_the_umask(tmp_path):
    old = os.umask(0o027)
    try:
        train(_cfg(tmp_path))
    finally:
        os.umask(old)
    for name in ("config.json", "summary.json", "metrics.jsonl"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o640, name


def test_full_disk_is_one_line_not_chained_tracebacks(tmp_path, monkeypatch, capsys):
    def full(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "checkpoints" / "last.pt"))

    monkeypatch.setattr(torch, "save", full)  # every checkpoint write ends in torch.save
    argv = [
        "train",
        "-m",
        "rexnet_060",
        "--train-limit",
        "32",
        "--val-limit",
        "16",
        "-b",
        "16",
        "-e",
        "1",
        "--threads",
        "1",
        "--no-progress",
        "--no-tensorboard",
        "-o",
        str(tmp_path),
    ]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "No space left on device" in err and "last.pt" in err and "Traceback" not in err


class _NaNImages(torch.utils.data.Dataset):
    def __len__(self) -> int:
        return 32

    def __getitem__(self, i: int):
        return torch.full((3, 32, 32), float("nan")), i % 2


def test_nan_loss_message_names_no_missing_checkpoint(tmp_path):
    model = create_model("rexnet_060", num_classes=2)
    with pytest.raises(NonFiniteLossError, match="Last good checkpoint: none saved yet") as e:
        fit(model, _NaNImages(), _NaNImages(), tiny_cfg(epochs=1), out_dir=tmp_path, class_names=["a", "b"])
    assert "last.pt" not in str(e.value)


def test_eval_warns_when_class_names_differ(tmp_path, caplog):
    from rexnet.train import evaluate_checkpoint

    train(_cfg(tmp_path))
    with caplog.at_level(logging.WARNING, logger="rexnet.train.inference"):
        evaluate_checkpoint(tmp_path / "checkpoints" / "best.pt", data="shapes")
    assert "checkpoint's classes (0, 1, 2, 3, 4) differ from shapes's" in caplog.text


def test_batch_size_change_mid_epoch_is_refused(tmp_path):
    train(_cfg(tmp_path))
    last = tmp_path / "checkpoints" / "last.pt"
    ck = load_checkpoint(last)
    save_checkpoint({**ck, "step_in_epoch": 1}, last)  # as if stopped after one step of epoch 2
    with pytest.raises(ResumeMismatchError, match="stopped mid-epoch .*step 1"):
        train(_cfg(tmp_path, epochs=2, batch_size=8), resume=True, allow_change=["epochs", "batch_size"])


def test_model_too_big_for_memory_is_refused_before_it_is_built(tmp_path, capsys):
    argv = ["train", "-m", "rexnet_300", "--image-size", "8192", "-b", "512", "-o", str(tmp_path / "r")]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "rexnet_300" in err and "GiB" in err and "batch 512, 8192x8192" in err
