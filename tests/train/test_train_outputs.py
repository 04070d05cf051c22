"""``eval -o`` / ``predict -o`` and the figures go through the one output policy (issue 23): atomic, no file of
another run replaced without ``--overwrite``, and a path in the way is a one-line error before any work."""

from __future__ import annotations

import json

import pytest
import torch

import rexnet
from rexnet._files import forget_written
from rexnet.cli import main
from rexnet.errors import InputError, OutputExistsError
from rexnet.train import outputs


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    path = tmp_path_factory.mktemp("w") / "w.safetensors"
    torch.manual_seed(0)
    rexnet.save_weights(rexnet.create_model("rexnet_060", num_classes=10), path, name="rexnet_060")
    return path


@pytest.fixture
def no_work(monkeypatch):
    """Fail the test if the evaluation or prediction starts: path problems must be caught first."""
    import rexnet.train.inference as inference

    def boom(*a, **k):
        raise AssertionError("the work started before the output paths were checked")

    monkeypatch.setattr(inference, "_load", boom)


def _eval(weights, *extra):
    return main(["eval", "-c", str(weights), "--data", "digits", "--image-size", "32", *extra])


def test_eval_o_refuses_another_runs_files_and_overwrite_replaces_them(weights, tmp_path, capsys):
    out = tmp_path / "eval.json"
    out.write_text("another run's results")
    assert _eval(weights, "-o", str(out)) == 2
    err = capsys.readouterr().err
    assert "already exists" in err and "--overwrite" in err and "Traceback" not in err
    assert out.read_text() == "another run's results" and not (tmp_path / "eval.png").exists()
    (tmp_path / "eval.png").write_bytes(b"another run's figure")
    assert _eval(weights, "-o", str(out), "--overwrite") == 0
    assert json.loads(out.read_text())["count"] > 0
    assert (tmp_path / "eval.png").read_bytes()[:4] == b"\x89PNG"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["eval.json", "eval.png"]  # no temp file left


@pytest.mark.parametrize(
    "make, words",
    [
        (lambda d: (d / "FILE").write_text("x") and [str(d / "FILE" / "x.json")], "is a file, not a folder"),
        (lambda d: (d / "dir").mkdir() or [str(d / "dir")], "is a folder; give a file path"),
        (lambda d: [str(d / "r.png")], "are one file"),
        (lambda d: [str(d / "r.json"), "--confusion", str(d / "c.txt")], "cannot draw a .txt file"),
    ],
)
def test_eval_o_paths_in_the_way_are_one_line_errors_before_any_work(weights, tmp_path, capsys, no_work, make, words):
    assert _eval(weights, "-o", *make(tmp_path)) == 2
    err = capsys.readouterr().err
    assert words in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_predict_o_writes_strict_json_under_the_policy(weights, tmp_path, capsys):
    from PIL import Image

    img = tmp_path / "a.png"
    Image.new("RGB", (32, 32), (200, 30, 30)).save(img)
    out = tmp_path / "pred.json"
    args = ["predict", "-c", str(weights), "-k", "2", str(img), "-o", str(out)]
    assert main(args) == 0
    res = json.loads(out.read_text())
    assert res[0]["image"] == str(img) and len(res[0]["top"]) == 2
    forget_written(out)  # as if an earlier run had written it
    capsys.readouterr()
    assert main(args) == 2
    assert "--overwrite" in capsys.readouterr().err and json.loads(out.read_text()) == res
    assert main([*args, "--overwrite"]) == 0


def test_predict_o_in_the_way_fails_before_loading(weights, tmp_path, capsys, no_work):
    (tmp_path / "FILE").write_text("x")
    assert main(["predict", "-c", str(weights), "x.png", "-o", str(tmp_path / "FILE" / "p.json")]) == 2
    assert "is a file, not a folder" in capsys.readouterr().err


def test_figures_are_written_atomically_and_refuse_a_foreign_file(tmp_path):
    png = tmp_path / "c.png"
    png.write_bytes(b"not ours")
    with pytest.raises(OutputExistsError, match="--overwrite"):
        outputs.plot_confusion([[1, 0], [0, 1]], ["a", "b"], png)
    assert png.read_bytes() == b"not ours"
    outputs.plot_confusion([[1, 0], [0, 1]], ["a", "b"], png, overwrite=True)
    assert png.read_bytes()[:4] == b"\x89PNG"
    outputs.plot_confusion([[1, 0], [0, 1]], ["a", "b"], tmp_path / "c.pdf")  # the suffix names the format
    assert (tmp_path / "c.pdf").read_bytes()[:4] == b"%PDF"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.pdf", "c.png"]
    with pytest.raises(InputError, match="is a folder"):
        outputs.write_predictions([], tmp_path)


def test_an_exported_model_checks_its_eval_and_predict_outputs_first(tmp_path, capsys, monkeypatch):
    import rexnet.deploy.runtime as runtime

    def boom(*a, **k):
        raise AssertionError("the exported model ran before the output paths were checked")

    monkeypatch.setattr(runtime, "evaluate_exported", boom)
    monkeypatch.setattr(runtime, "predict_exported", boom)
    (tmp_path / "FILE").write_text("x")
    assert main(["eval", "-c", str(tmp_path / "m.onnx"), "-o", str(tmp_path / "FILE" / "r.json")]) == 2
    assert "is a file, not a folder" in capsys.readouterr().err
    (tmp_path / "p.json").write_text("another run's predictions")
    assert main(["predict", "-c", str(tmp_path / "m.onnx"), "a.png", "-o", str(tmp_path / "p.json")]) == 2
    assert "--overwrite" in capsys.readouterr().err
