"""Every deploy artefact is written atomically, and nothing that exists is replaced without --overwrite."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from torch import nn

import rexnet
from rexnet.cli import main
from rexnet.deploy import export_model, openvino_available
from rexnet.deploy.onnx_core import OnnxModel, export_onnx
from rexnet.errors import ExportError, OutputExistsError

SRC = Path(rexnet.__file__).resolve().parents[1]


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if ".tmp" in p.name)


def test_export_refuses_a_training_checkpoint_without_overwrite(
    digits_checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    best = tmp_path / "run" / "checkpoints" / "best.pt"
    best.parent.mkdir(parents=True)
    shutil.copy(digits_checkpoint, best)
    before = best.read_bytes()
    argv = ["export", "rexnet_060", "--format", "torchscript", "--image-size", "32", "--out", str(best)]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "best.pt already exists" in err and "--overwrite" in err and "Traceback" not in err
    assert best.read_bytes() == before  # the checkpoint is untouched
    assert main([*argv, "--overwrite"]) == 0 and best.read_bytes() != before


def test_export_refuses_a_foreign_sidecar_before_writing_anything(tmp_path: Path) -> None:
    side = tmp_path / "model.json"
    side.write_text('{"mine": "a file of someone else"}')
    with pytest.raises(OutputExistsError, match="model.json already exists"):
        export_model("rexnet_060", tmp_path / "model.onnx", image_size=32)
    assert not (tmp_path / "model.onnx").exists() and side.read_text() == '{"mine": "a file of someone else"}'
    res = export_model("rexnet_060", tmp_path / "model.onnx", image_size=32, overwrite=True)
    assert Path(res.path).is_file() and '"image_size": 32' in side.read_text()
    assert _leftovers(tmp_path) == []


def test_export_out_of_the_wrong_kind_is_a_clear_input_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "a_folder.onnx"
    folder.mkdir()
    assert main(["export", "rexnet_060", "--out", str(folder)]) == 2
    assert "is a folder; the onnx format writes a *.onnx file" in capsys.readouterr().err
    file = tmp_path / "ir"
    file.write_text("x")
    assert main(["export", "rexnet_060", "--format", "openvino", "--out", str(file)]) == 2
    assert "is a file; the openvino format writes into a folder" in capsys.readouterr().err
    # a suffix the format does not write: its sidecar (NAME.json) would be the output itself
    assert main(["export", "rexnet_060", "--out", str(tmp_path / "m.json")]) == 2
    assert "writes a *.onnx file, not .json" in capsys.readouterr().err
    parent_is_file = tmp_path / "plain"
    parent_is_file.write_text("x")
    assert main(["export", "rexnet_060", "--out", str(parent_is_file / "m.onnx")]) == 2
    assert "is a file, not a folder" in capsys.readouterr().err


def test_a_failed_onnx_write_keeps_the_earlier_file(
    rexnet_small: nn.Module, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = export_onnx(rexnet_small, tmp_path / "m.onnx", image_size=32)
    good = path.read_bytes()

    def broken(net: nn.Module, args: tuple, f: str, **kw: object) -> None:
        Path(f).write_bytes(good[: len(good) // 3])  # a third of a model, then the disk fills
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(torch.onnx, "export", broken)
    with pytest.raises(OSError, match="No space"):
        export_onnx(rexnet_small, path, image_size=32)
    assert path.read_bytes() == good and _leftovers(tmp_path) == []
    # through export_model: an ExportError naming the target (not the temp file), and still nothing partial
    with pytest.raises(ExportError, match=r"cannot write .*m.onnx: No space left on device; nothing was written"):
        export_model("rexnet_060", path, image_size=32, overwrite=True)
    assert path.read_bytes() == good and _leftovers(tmp_path) == []


_KILLED_WRITER = r"""
import pathlib, sys, time
import torch
import rexnet
from rexnet.deploy.onnx_core import export_onnx

real = torch.onnx.export

def half_then_hang(net, args, f, **kw):
    real(net, args, f, **kw)
    data = pathlib.Path(f).read_bytes()
    pathlib.Path(f).write_bytes(data[: len(data) // 2])
    pathlib.Path(sys.argv[2]).write_text("half written")
    time.sleep(120)

torch.onnx.export = half_then_hang
export_onnx(rexnet.create_model("rexnet_060"), sys.argv[1], image_size=32, overwrite=True)
"""


def test_kill_9_mid_export_leaves_the_earlier_file_and_no_partial_one(rexnet_small: nn.Module, tmp_path: Path) -> None:
    path = export_onnx(rexnet_small, tmp_path / "m.onnx", image_size=32)
    good = path.read_bytes()
    marker = tmp_path / "marker"
    env = {**os.environ, "PYTHONPATH": str(SRC), "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-c", _KILLED_WRITER, str(path), str(marker)], env=env)
    try:
        deadline = time.time() + 120
        while not marker.exists() and proc.poll() is None and time.time() < deadline:
            time.sleep(0.1)
        assert marker.exists(), "the writer never reached the middle of its write"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    assert path.read_bytes() == good  # the final path still holds the earlier, complete model
    assert OnnxModel(path)(torch.zeros(1, 3, 32, 32)).shape == (1, 1000)
    assert _leftovers(tmp_path)  # the killed writer's temp file, under a hidden temp name
    export_onnx(rexnet_small, path, image_size=32)  # the next writer of the path clears it
    assert _leftovers(tmp_path) == []


@pytest.mark.skipif(not openvino_available(), reason="openvino not installed")
def test_openvino_pair_is_renamed_together_xml_last(
    rexnet_small: nn.Module, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import openvino as ov

    from rexnet.deploy.openvino_ir import save_openvino, to_openvino

    ov_model = to_openvino(rexnet_small, image_size=32)
    renamed: list[str] = []
    real_replace = os.replace

    def recording(src: str | os.PathLike, dst: str | os.PathLike) -> None:
        renamed.append(Path(dst).name)
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", recording)
    xml = save_openvino(ov_model, tmp_path / "ir", "m")
    finals = [n for n in renamed if n in ("m.xml", "m.bin")]
    assert finals == ["m.bin", "m.xml"]  # a reader opening the .xml always finds its complete .bin
    assert sorted(p.name for p in xml.parent.iterdir()) == ["m.bin", "m.xml"]
    good = xml.read_bytes(), xml.with_suffix(".bin").read_bytes()

    def broken(model: object, path: str, **kw: object) -> None:
        real_save(model, path, **kw)
        raise RuntimeError("disk full")

    real_save = ov.save_model
    monkeypatch.setattr(ov, "save_model", broken)
    with pytest.raises(RuntimeError, match="disk full"):
        save_openvino(ov_model, tmp_path / "ir", "m")
    assert (xml.read_bytes(), xml.with_suffix(".bin").read_bytes()) == good
    assert sorted(p.name for p in xml.parent.iterdir()) == ["m.bin", "m.xml"]
    other = tmp_path / "other"
    other.mkdir()
    (other / "m.bin").write_text("someone else's weights")
    with pytest.raises(OutputExistsError, match="m.bin already exists"):
        save_openvino(ov_model, other, "m")
    assert not (other / "m.xml").exists()


def test_bench_refuses_earlier_reports_before_timing_anything(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from rexnet.deploy import run_bench, tiny_config

    (tmp_path / "bench.md").write_text("an earlier report")
    t0 = time.time()
    with pytest.raises(OutputExistsError, match="bench.md already exists"):
        run_bench(tiny_config(model="rexnet_060", timm=False, peers=False), tmp_path)
    assert time.time() - t0 < 5 and (tmp_path / "bench.md").read_text() == "an earlier report"
    assert main(["bench", "--tiny", "-o", str(tmp_path), "--no-timm", "--no-peers"]) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert main(["bench", "--tiny", "-o", str(tmp_path / "bench.md")]) == 2
    assert "is a file; give a folder" in capsys.readouterr().err
