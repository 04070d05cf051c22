"""Detection runs on the shared run machinery: lock, kind, resume rules, memory guard, finite checks (issues 23, 24)."""

from __future__ import annotations

import json
import shutil

import pytest
import torch

from rexnet.cli import main
from rexnet.detection.engine import DetectSteps, load_detector
from rexnet.detection.evaluate import evaluate_detector
from rexnet.run import RunLock

_TINY = ["-m", "rexnet_060", "--image-size", "80", "--batch-size", "4", "--train-limit", "8", "--val-limit", "4"]
_TINY += ["--threads", "1", "--no-progress", "--warmup-iters", "2"]


def _train(out, *extra) -> int:
    return main(["detect", "train", "-o", str(out), *_TINY, *extra])


@pytest.fixture(scope="module")
def one_epoch(tmp_path_factory):
    """A finished one-epoch detection run (copy it before changing it)."""
    out = tmp_path_factory.mktemp("det") / "run"
    assert _train(out, "--epochs", "1") == 0
    return out


def _copy(run, tmp_path):
    dst = tmp_path / "run"
    shutil.copytree(run, dst)
    return dst


def test_a_run_is_marked_and_its_folder_loads_in_eval_and_predict(one_epoch, tmp_path, capsys):
    assert json.loads((one_epoch / "run.json").read_text())["kind"] == "detect"
    summary = json.loads((one_epoch / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["epochs_run"] == 1
    model, meta = load_detector(one_epoch)  # the folder, not a checkpoint path
    assert meta["epoch"] == 1 and not model.training
    capsys.readouterr()
    assert main(["detect", "eval", str(one_epoch), "--limit", "2"]) == 0
    captured = capsys.readouterr()
    assert "bbox_AP" in json.loads(captured.out)
    assert f"{one_epoch} on demo val at 80 px" in captured.err  # the run's own data and size, said once
    res = evaluate_detector(one_epoch, limit=2)
    assert (res["data"], res["split"], res["image_size"]) == ("demo", "val", 80) and "bbox_AP50" in res
    from torchvision.io import write_png

    from rexnet.detection.data import make_demo_detection

    img = tmp_path / "digits.png"
    write_png(make_demo_detection("val", image_size=80, num_images=1).load_image(1), str(img))
    assert main(["detect", "predict", str(one_epoch), str(img), "-o", str(tmp_path), "--score-thresh", "0"]) == 0
    assert (tmp_path / "digits_detections.png").is_file()
    capsys.readouterr()
    assert main(["detect", "export", str(one_epoch), "-o", str(tmp_path / "ssd.onnx")]) == 0  # a folder too
    assert "onnxruntime vs eager" in capsys.readouterr().out and (tmp_path / "ssd.onnx").is_file()


def test_a_second_detect_train_on_one_out_is_locked(one_epoch, tmp_path, capsys):
    run = _copy(one_epoch, tmp_path)
    with RunLock(run):  # another live process holds the folder
        assert _train(run, "--epochs", "2", "--resume", "--allow-change", "epochs") == 1
    err = capsys.readouterr().err
    assert "in use by another run" in err and "Traceback" not in err
    assert _train(tmp_path / "new", "--epochs", "1") == 0  # and a fresh folder is fine meanwhile
    capsys.readouterr()
    assert _train(tmp_path / "new", "--epochs", "1") == 2  # a finished run without --resume: refused
    assert "already holds a detection training run" in capsys.readouterr().err


def test_resume_refuses_changes_unless_allowed_then_honours_them(one_epoch, tmp_path, capsys):
    run = _copy(one_epoch, tmp_path)
    before = (run / "checkpoints" / "last.pt").read_bytes()
    for flag, value in (("--epochs", "2"), ("--lr", "0.001"), ("--batch-size", "2")):
        assert main(["detect", "train", "-o", str(run), "--resume", "--no-progress", flag, value]) == 2
        err = capsys.readouterr().err
        assert f"--allow-change {flag[2:]}" in err and "Traceback" not in err
    assert (run / "checkpoints" / "last.pt").read_bytes() == before
    args = ["detect", "train", "-o", str(run), "--resume", "--no-progress", "--epochs", "2", "--lr", "0.001"]
    assert main([*args, "--batch-size", "2", "--allow-change", "epochs,lr,batch-size"]) == 0
    saved = json.loads((run / "config.json").read_text())
    assert (saved["epochs"], saved["lr"], saved["batch_size"]) == (2, 0.001, 2)
    assert set(saved["resume_changes"][-1]["changes"]) == {"epochs", "lr", "batch_size"}
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2]
    assert main(["detect", "train", "-o", str(run), "--resume", "-m", "rexnet_100", "--allow-change", "backbone"]) == 2
    assert "another backbone" in capsys.readouterr().err


def test_memory_guard_and_bad_numbers_are_refused_before_building(tmp_path, capsys):
    out = tmp_path / "huge"
    assert main(["detect", "train", "-o", str(out), "--image-size", "100000", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "GiB" in err and "100000x100000" in err and "Traceback" not in err
    assert not out.exists()
    for flag, value in (("--lr", "nan"), ("--train-limit", "0"), ("--epochs", "0"), ("--threads", "100000")):
        assert main(["detect", "train", "-o", str(tmp_path / "x"), *_TINY, flag, value]) == 2
        err = capsys.readouterr().err
        assert flag[2:].replace("-", "_") in err and "Traceback" not in err
    assert main(["detect", "eval", str(tmp_path / "x"), "--limit", "-1"]) == 2
    assert "--limit must be >= 1" in capsys.readouterr().err


def test_detect_train_refuses_a_classification_run_or_a_file(tmp_path, capsys):
    cls = tmp_path / "cls"
    cls.mkdir()
    cfg = json.dumps({"model": "rexnet_100", "data": "digits"})
    (cls / "config.json").write_text(cfg)
    assert _train(cls, "--epochs", "1") == 2
    assert "holds a classification training run" in capsys.readouterr().err
    assert (cls / "config.json").read_text() == cfg
    f = tmp_path / "file"
    f.write_text("x")
    assert _train(f, "--epochs", "1") == 2
    assert "is a file, not a folder" in capsys.readouterr().err


def test_nonfinite_weights_end_the_run_diverged_and_keep_the_last_finite_checkpoint(
    one_epoch, tmp_path, capsys, monkeypatch
):
    run = _copy(one_epoch, tmp_path)
    real = DetectSteps.train_epoch

    def poison(self, state, stop):
        row = real(self, state, stop)
        with torch.no_grad():
            next(state.model.parameters()).fill_(float("nan"))
        return row

    monkeypatch.setattr(DetectSteps, "train_epoch", poison)
    assert _train(run, "--epochs", "2", "--resume", "--allow-change", "epochs") == 1
    err = capsys.readouterr().err
    assert "diverged" in err and "non-finite weights" in err and "Traceback" not in err
    ck = torch.load(run / "checkpoints" / "last.pt", weights_only=True)
    assert ck["epoch"] == 1 and all(torch.isfinite(v).all() for v in ck["model"].values() if v.is_floating_point())
    assert json.loads((run / "summary.json").read_text())["status"] == "diverged"
    bad = dict(ck)
    bad["model"] = {k: v.float() * float("nan") if v.is_floating_point() else v for k, v in ck["model"].items()}
    torch.save(bad, tmp_path / "nan.pt")
    assert main(["detect", "eval", str(tmp_path / "nan.pt"), "--limit", "2"]) == 2
    assert "non-finite weights" in capsys.readouterr().err
