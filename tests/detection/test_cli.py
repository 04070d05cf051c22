"""``rexnet detect train|eval|predict|export`` on the embedded demo set, end to end."""

import json

import pytest

from rexnet.cli import main


@pytest.mark.slow
def test_cli_train_eval_predict_export(tmp_path, capsys):
    out = tmp_path / "run"
    args = [
        "detect",
        "train",
        "-o",
        str(out),
        "-m",
        "rexnet_060",
        "--image-size",
        "80",
        "--epochs",
        "1",
        "--batch-size",
        "4",
        "--train-limit",
        "8",
        "--val-limit",
        "4",
        "--threads",
        "1",
        "--no-progress",
    ]
    assert main(args) == 0
    assert "val_bbox_AP" in capsys.readouterr().out
    summary = json.loads((out / "summary.json").read_text())
    assert summary["epochs_run"] == 1 and summary["config"]["backbone"] == "rexnet_060"
    ckpt = str(out / "checkpoints" / "last.pt")

    assert main(["detect", "eval", ckpt, "--limit", "4"]) == 0
    metrics = json.loads(capsys.readouterr().out)
    assert 0 <= metrics["bbox_AP"] <= 100 and metrics["num_detections"] > 0

    from torchvision.io import write_png

    from rexnet.detection.data import make_demo_detection

    img = tmp_path / "digits.png"
    write_png(make_demo_detection("val", image_size=80, num_images=1).load_image(1), str(img))
    assert main(["detect", "predict", ckpt, str(img), "-o", str(tmp_path / "pred"), "--score-thresh", "0"]) == 0
    assert (tmp_path / "pred" / "digits_detections.png").is_file()
    capsys.readouterr()

    assert main(["detect", "export", ckpt, "-o", str(tmp_path / "ssd.onnx")]) == 0
    assert "onnxruntime vs eager" in capsys.readouterr().out


def test_cli_bad_input_exits_2(tmp_path, capsys):
    assert main(["detect", "eval", str(tmp_path / "missing.pt")]) == 2
    assert "not found" in capsys.readouterr().err
    assert main(["detect", "train", "-o", str(tmp_path / "r"), "--data", str(tmp_path), "--no-progress"]) == 2
    assert "no COCO annotations" in capsys.readouterr().err
    assert main(["detect", "train", "-o", str(tmp_path / "r2"), "--resume", "--no-progress"]) == 2
    assert "nothing to resume" in capsys.readouterr().err


@pytest.mark.slow
def test_cli_train_under_torchrun_two_processes(tmp_path):
    import os
    import subprocess
    import sys

    out = tmp_path / "ddp"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OMP_WAIT_POLICY": "PASSIVE"}
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc-per-node",
        "2",
        "-m",
        "rexnet",
        "detect",
        "train",
        "-o",
        str(out),
        "-m",
        "rexnet_060",
        "--image-size",
        "80",
        "--epochs",
        "2",
        "--batch-size",
        "8",
        "--train-limit",
        "16",
        "--val-limit",
        "4",
        "--threads",
        "1",
        "--no-progress",
    ]
    res = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    assert res.stdout.count("wrote ") == 1  # only rank 0 reports
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2] and "val_bbox_AP" in rows[-1]
    assert (out / "checkpoints" / "last.pt").is_file()
