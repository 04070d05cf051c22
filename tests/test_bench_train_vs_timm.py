"""benchmarks/bench_train_vs_timm.py (issue 26): the image folder it writes, timm's command line for the
``fashion-short`` recipe, and a tiny end-to-end run of the rexnet side (timm's train.py is not in the wheel)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

import bench_train_vs_timm as bench  # noqa: E402

from rexnet.train.config import PRESETS  # noqa: E402

from .data.conftest import make_idx_folder  # noqa: E402


def _flag(cmd: list[str], name: str, n: int = 1) -> list[str]:
    i = cmd.index(name)
    return cmd[i + 1 : i + 1 + n]


def test_timm_command_spells_the_fashion_short_recipe(tmp_path):
    p = PRESETS["fashion-short"]
    cmd = bench.timm_command(
        tmp_path / "train.py", tmp_path / "data", tmp_path / "out", epochs=4, batch=128, image_size=32,
        model="rexnet_100", seed=0, channels_last=True, workers=2,
    )  # fmt: skip
    assert _flag(cmd, "--lr") == [str(0.2 * 128 / 256)]
    assert _flag(cmd, "--scale", 2) == [str(v) for v in p["aug"]["scale"]]
    assert _flag(cmd, "--ratio", 2) == [str(v) for v in p["aug"]["ratio"]]
    assert _flag(cmd, "--hflip") == [str(p["aug"]["hflip"])]
    assert _flag(cmd, "--warmup-epochs") == [str(int(p["warmup_epochs"]))]
    assert _flag(cmd, "--smoothing") == ["0.1"] and _flag(cmd, "--drop") == ["0.2"]
    assert _flag(cmd, "--input-size", 3) == ["3", "32", "32"] and _flag(cmd, "-b") == ["128"]
    assert _flag(cmd, "--epochs") == ["4"] and _flag(cmd, "--device") == ["cpu"] and _flag(cmd, "-j") == ["2"]
    assert cmd[-1] == "--channels-last" and "--sched-on-updates" in cmd
    plain = bench.timm_command(
        tmp_path / "train.py", tmp_path / "data", tmp_path / "out", epochs=4, batch=128, image_size=32,
        model="rexnet_100", seed=0, channels_last=False, workers=2,
    )  # fmt: skip
    assert "--channels-last" not in plain


def test_folder_is_written_once(tmp_path):
    src = make_idx_folder(tmp_path / "idx", n_train=40, n_test=20)
    d = bench.make_folder(tmp_path / "folder", 30, 10, str(src))
    assert len(list((d / "train").glob("*/*.png"))) == 30 and len(list((d / "val").glob("*/*.png"))) == 10
    mtime = next((d / "train").glob("*/*.png")).stat().st_mtime_ns
    assert bench.make_folder(d, 30, 10, str(src)) == d
    assert next((d / "train").glob("*/*.png")).stat().st_mtime_ns == mtime
    with pytest.raises(SystemExit, match="does not hold"):
        bench.make_folder(d, 31, 10, str(src))


@pytest.mark.slow
def test_tiny_run_of_the_rexnet_side(tmp_path, capsys):
    src = make_idx_folder(tmp_path / "idx", n_train=300, n_test=100)
    out = tmp_path / "results"
    report = bench.main(
        [
            "--data-dir", str(tmp_path / "folder"), "--fashion-dir", str(src), "--train-images", "256",
            "--val-images", "64", "--epochs", "1", "--batch", "64", "--model", "rexnet_060", "--runs", "rexnet",
            "--conditions", "quiet", "--out", str(out),
        ]
    )  # fmt: skip
    assert "skipping timm" in capsys.readouterr().err
    (row,) = report["rows"]
    assert row["run"] == "rexnet" and row["rounds"][0]["rc"] == 0, row
    assert row["wall_s"] > 0 and row["img_s"] == pytest.approx(256 / row["wall_s"])
    assert 0 <= row["val_top1"] <= 100 and row["peak_mib"] > 50
    assert row["rounds"][0]["plan"]["mode"] == "auto" and 0 < row["rounds"][0]["step_share"] <= 1
    saved = json.loads((out / "results.json").read_text())
    assert saved["meta"]["train_images"] == 256 and saved["meta"]["cpu"]
    assert "| quiet | rexnet |" in (out / "results.md").read_text()
