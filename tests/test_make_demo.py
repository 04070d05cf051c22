"""Step 10 of the new user's path (issue 22): ``make demo`` run twice succeeds; the second run shows the finished
run's result instead of failing on ``runs/demo already holds a run``.

The Makefile's own ``demo`` recipe runs, in a temporary folder, with its set-up stamp already in place and a
``rexnet`` on its ``BIN`` that shortens the training (1 epoch on 64 images), so only the recipe's logic is timed.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

MAKEFILE = Path(__file__).resolve().parents[1] / "Makefile"


@pytest.fixture
def demo_dir(tmp_path):
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    (tmp_path / "pyproject.toml").write_text("")
    stamp = tmp_path / "stamp"
    stamp.write_text("")
    os.utime(tmp_path / "pyproject.toml", (0, 0))  # older than the stamp: make sees the set-up as done
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "python").symlink_to(sys.executable)
    rexnet = bin_dir / "rexnet"
    short = "--epochs 1 --train-limit 64 --val-limit 32 --threads 1 --plan fixed --no-tensorboard"
    rexnet.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m rexnet "$@" {short}\n')
    rexnet.chmod(0o755)
    return tmp_path, ["make", "-s", "-f", str(MAKEFILE), "demo", f"BIN={bin_dir}", f"DEMO_STAMP={stamp}"]


def _make(cwd: Path, cmd: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=600)


def test_make_demo_twice_trains_once_then_shows_the_result(demo_dir):
    cwd, cmd = demo_dir
    first = _make(cwd, cmd)
    assert first.returncode == 0, first.stderr[-2000:]
    summary = json.loads((cwd / "runs" / "demo" / "summary.json").read_text())
    assert summary["status"] == "completed"
    second = _make(cwd, cmd)
    assert second.returncode == 0, second.stderr[-2000:]
    assert "holds a finished run" in second.stdout and "best_top1" in second.stdout
    assert "Traceback" not in first.stderr + second.stderr
