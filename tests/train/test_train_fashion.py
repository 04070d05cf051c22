"""Training and evaluation on Fashion-MNIST-format data (a generated IDX folder; the real one when installed)."""

from __future__ import annotations

import json

from rexnet.cli import main
from tests.data.conftest import make_idx_folder

_TINY = ["-m", "rexnet_060", "-b", "16", "-e", "1", "--threads", "1", "--no-progress", "--no-tensorboard"]


def test_train_reports_test_split_and_eval_reads_it(tmp_path, capsys):
    data = make_idx_folder(tmp_path / "fm", n_train=240, n_test=40)
    out = tmp_path / "run"
    assert main(["train", *_TINY, "--data", f"fashion-mnist:{data}", "-o", str(out)]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["test_size"] == 40 and 0 <= summary["test_top1"] <= 100
    assert set(summary["test_per_class"]) >= {"T-shirt/top", "Ankle boot"}
    capsys.readouterr()
    ck = str(out / "checkpoints" / "best.pt")
    assert main(["eval", "--checkpoint", ck, "--data", f"fashion-mnist:{data}", "--split", "test"]) == 0
    printed = capsys.readouterr().out
    assert "test (40 images)" in printed and f"top-1 {summary['test_top1']:.2f}%" in printed


def test_missing_fashion_mnist_is_a_clear_cli_error(tmp_path, capsys):
    assert main(["train", *_TINY, "--data", f"fashion-mnist:{tmp_path / 'none'}", "-o", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert "apt-get install dataset-fashion-mnist" in err and "Traceback" not in err


def test_eval_test_split_needs_data_that_has_one(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", *_TINY, "--train-limit", "32", "--val-limit", "16", "-o", str(out)]) == 0
    ck = str(out / "checkpoints" / "best.pt")
    assert main(["eval", "--checkpoint", ck, "--data", "digits", "--split", "test"]) == 2
    assert "no test split" in capsys.readouterr().err
