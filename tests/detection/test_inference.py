"""``detect predict -o`` and ``detect export -o`` write through the one output policy (issue 23)."""

from __future__ import annotations

import pytest

from rexnet._files import forget_written
from rexnet.cli import main


@pytest.fixture
def image(tmp_path):
    from torchvision.io import write_png

    from rexnet.detection.data import make_demo_detection

    path = tmp_path / "digits.png"
    write_png(make_demo_detection("val", image_size=64, num_images=1).load_image(1), str(path))
    return path


def _predict(ck, image, out, *extra):
    return main(["detect", "predict", str(ck), str(image), "-o", str(out), "--score-thresh", "0", *extra])


def test_predict_refuses_a_foreign_png_unless_overwrite(tiny_checkpoint, image, tmp_path, capsys):
    out = tmp_path / "pred"
    out.mkdir()
    png = out / "digits_detections.png"
    png.write_bytes(b"another run's picture")
    assert _predict(tiny_checkpoint[1], image, out) == 2
    err = capsys.readouterr().err
    assert "already exists" in err and "--overwrite" in err and "Traceback" not in err
    assert png.read_bytes() == b"another run's picture"
    assert _predict(tiny_checkpoint[1], image, out, "--overwrite") == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [p.name for p in out.iterdir()] == [png.name]  # no temp file left


def test_predict_into_a_file_or_two_images_onto_one_png_is_one_line_error(tiny_checkpoint, image, tmp_path, capsys):
    f = tmp_path / "file"
    f.write_text("x")
    assert _predict(tiny_checkpoint[1], image, f) == 2
    err = capsys.readouterr().err
    assert "is a file, not a folder" in err and "Traceback" not in err
    (tmp_path / "sub").mkdir()
    twin = tmp_path / "sub" / "digits.png"
    twin.write_bytes(image.read_bytes())
    args = ["detect", "predict", str(tiny_checkpoint[1]), str(image), str(twin), "-o", str(tmp_path / "out")]
    assert main(args) == 2
    assert "would write one file" in capsys.readouterr().err and not (tmp_path / "out").exists()


def test_export_refuses_a_foreign_file_and_a_failed_check_leaves_nothing(
    tiny_checkpoint, tmp_path, capsys, monkeypatch
):
    import rexnet.detection.inference as inference

    onnx = tmp_path / "ssd.onnx"
    onnx.write_bytes(b"an earlier good export")
    args = ["detect", "export", str(tiny_checkpoint[1]), "-o", str(onnx)]
    assert main(args) == 2
    assert "--overwrite" in capsys.readouterr().err and onnx.read_bytes() == b"an earlier good export"
    assert main([*args, "--overwrite"]) == 0
    assert onnx.stat().st_size > 10_000 and "onnxruntime vs eager" in capsys.readouterr().out
    forget_written(onnx)  # as if another run wrote it

    def differs(*a, **k):
        raise inference.ExportError("onnxruntime differs from PyTorch")

    monkeypatch.setattr(inference, "_compare", differs)
    before = onnx.read_bytes()
    assert main([*args, "--overwrite"]) == 2  # the check runs on the temp file: the good file stays
    assert onnx.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == ["ssd.onnx"]
