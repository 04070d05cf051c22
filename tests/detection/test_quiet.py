"""Quiet by default (issue 22): a detection run raises no warning from rexnet's own code."""

from __future__ import annotations

import warnings

import pytest

from rexnet.cli import main


@pytest.mark.slow
def test_detect_train_one_tiny_epoch_warns_nothing_from_rexnet(tmp_path, capsys):
    args = ["detect", "train", "-o", str(tmp_path / "run"), "-m", "rexnet_060", "--image-size", "64"]
    args += ["--epochs", "1", "--batch-size", "2", "--train-limit", "2", "--val-limit", "2", "--threads", "1"]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")  # nothing hidden by "once" filters or an earlier test's registry
        assert main(args) == 0
    assert "val_bbox_AP" in capsys.readouterr().out
    ours = [f"{w.filename}:{w.lineno}: {w.category.__name__}: {w.message}" for w in caught if "rexnet" in w.filename]
    assert ours == []
    # -W error::UserWarning semantics: no UserWarning at all, whoever raised it
    users = [f"{w.filename}: {w.message}" for w in caught if issubclass(w.category, UserWarning)]
    assert users == []
