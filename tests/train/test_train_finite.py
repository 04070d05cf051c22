"""Finite or failed (issue 23): a run with NaN/inf weights or losses ends ``diverged``, exit 1, no NaN checkpoint."""

from __future__ import annotations

import json

import pytest
import torch

from rexnet import create_model
from rexnet.cli import main
from rexnet.errors import CheckpointError, DivergedError
from rexnet.train import fit, load_checkpoint, predict_files, save_checkpoint, train
from rexnet.train.inference import evaluate_checkpoint

from .helpers import tiny_cfg

_ARGS = ["-m", "rexnet_060", "--image-size", "32", "--train-limit", "32", "--val-limit", "16", "-b", "16"]
_ARGS += ["--threads", "1", "--no-progress", "--no-tensorboard"]


@pytest.mark.parametrize(("flag", "value"), [("--lr", "1e309"), ("--weight-decay", "nan"), ("--lr", "inf")])
def test_nonfinite_hyperparameters_are_refused_before_training(tmp_path, capsys, flag, value):
    assert main(["train", *_ARGS, "-e", "1", "-o", str(tmp_path / "r"), flag, value]) == 2
    err = capsys.readouterr().err
    assert flag.lstrip("-").replace("-", "_") in err and value in err and "Traceback" not in err
    assert not (tmp_path / "r").exists()


def test_nan_running_stats_end_the_run_diverged_without_saving_them(tmp_path):
    """Fine-tuning from weights with NaN BN statistics: the train loss is finite, the val loss is not."""
    from rexnet.data import build_datasets

    b = build_datasets("digits", 32, train_limit=32, val_limit=16)
    model = create_model("rexnet_060", num_classes=10)
    next(m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)).running_var.fill_(float("nan"))
    with pytest.raises(DivergedError, match=r"in epoch 1: val_loss nan.*non-finite weights in .*running"):
        fit(model, b.train, b.val, tiny_cfg(epochs=2), out_dir=tmp_path, class_names=b.class_names)
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["status"] == "diverged" and summary["epochs_completed"] == 0
    assert not (tmp_path / "checkpoints" / "last.pt").exists() and not (tmp_path / "checkpoints" / "best.pt").exists()
    assert "NaN" not in (tmp_path / "summary.json").read_text()


def test_a_diverged_cli_run_exits_1_and_keeps_the_last_finite_epoch(tmp_path, capsys, monkeypatch):
    from rexnet.train.steps import ClassifySteps

    real = ClassifySteps.validate

    def nan_in_epoch_2(self, state, train):
        m = real(self, state, train)
        return {**m, "val_loss": float("nan")} if state.epoch == 1 else m

    monkeypatch.setattr(ClassifySteps, "validate", nan_in_epoch_2)
    out = tmp_path / "r"
    assert main(["train", *_ARGS, "-e", "3", "-o", str(out)]) == 1
    err = capsys.readouterr().err
    assert "diverged" in err and "in epoch 2" in err and "Traceback" not in err
    assert load_checkpoint(out / "checkpoints" / "last.pt")["epoch"] == 1
    assert load_checkpoint(out / "checkpoints" / "best.pt")["epoch"] == 1
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "diverged" and summary["epochs_completed"] == 1
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1]


def test_eval_and_predict_refuse_a_checkpoint_with_nonfinite_weights(tmp_path, capsys):
    res = train(tiny_cfg(epochs=1, train_limit=32, val_limit=16, out=str(tmp_path / "r")))
    ck = load_checkpoint(res.out_dir / "checkpoints" / "last.pt")
    key = next(k for k, v in ck["model"].items() if v.is_floating_point())
    ck["model"][key] = torch.full_like(ck["model"][key], float("inf"))
    bad = tmp_path / "bad.pt"
    save_checkpoint({k: v for k, v in ck.items() if k != "format"}, bad)
    with pytest.raises(CheckpointError, match=f"non-finite weights .*{key}"):
        evaluate_checkpoint(bad, data="digits")
    with pytest.raises(CheckpointError, match="diverged"):
        predict_files(bad, [])
    assert main(["eval", "-c", str(bad), "--image-size", "32"]) == 2
    assert "non-finite weights" in capsys.readouterr().err


def test_train_out_onto_a_file_or_a_rank_study_is_refused(tmp_path, capsys):
    f = tmp_path / "file"
    f.write_text("x")
    assert main(["train", *_ARGS, "-e", "1", "-o", str(f)]) == 2
    assert "is a file, not a folder" in capsys.readouterr().err
    study = tmp_path / "study"
    study.mkdir()
    cfg = json.dumps({"blocks": ["conv1x1"], "protocol": {}, "seed": 0})
    (study / "config.json").write_text(cfg)
    assert main(["train", *_ARGS, "-e", "1", "-o", str(study)]) == 2
    assert "holds a rank study" in capsys.readouterr().err
    assert (study / "config.json").read_text() == cfg
