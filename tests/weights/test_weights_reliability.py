"""Weights files (issue 12): convert never overwrites silently, writes the format its suffix names, leaves no
temp file behind; empty, random and misnamed files get clear messages; written files follow the umask."""

from __future__ import annotations

import os
import stat

import numpy as np
import pytest
import torch

from rexnet import create_model
from rexnet._files import forget_written
from rexnet.cli import main
from rexnet.errors import CheckpointError, InputError, OutputExistsError
from rexnet.train.checkpoint import save_checkpoint
from rexnet.weights import convert_weights
from rexnet.weights.io import read_state_dict, safe_torch_load
from rexnet.zoo import convert_checkpoint, get_plan


@pytest.fixture(scope="module")
def src(tmp_path_factory):
    path = tmp_path_factory.mktemp("w") / "src.pth"
    torch.save(create_model("rexnet_060", num_classes=10).state_dict(), path)
    return path


def test_convert_refuses_to_overwrite_without_overwrite(src, tmp_path, capsys):
    dst = tmp_path / "o.safetensors"
    convert_checkpoint(src, dst, "rexnet_060")
    before = dst.read_bytes()
    forget_written(dst)  # as if an earlier run had written it
    with pytest.raises(OutputExistsError, match="pass --overwrite"):
        convert_checkpoint(src, dst, "rexnet_060")
    assert issubclass(OutputExistsError, InputError)
    assert main(["convert", str(src), str(src), "-m", "rexnet_060"]) == 2  # not even onto its own source
    err = capsys.readouterr().err
    assert "already exists" in err and "--overwrite" in err and "Traceback" not in err
    assert main(["convert", str(src), str(dst), "-m", "rexnet_060"]) == 2
    capsys.readouterr()
    assert dst.read_bytes() == before
    convert_checkpoint(src, dst, "rexnet_060", overwrite=True)
    sd, _ = read_state_dict(dst)
    assert set(sd) == set(torch.load(src, weights_only=True))
    for flag in ("--overwrite", "--force"):  # --force: the older spelling, kept
        forget_written(dst)
        assert main(["convert", str(src), str(dst), "-m", "rexnet_060", flag]) == 0
    forget_written(dst)
    convert_checkpoint(src, dst, "rexnet_060", force=True)


def test_convert_into_a_folder_or_under_a_file_is_one_line_error(src, tmp_path, capsys):
    (tmp_path / "d.pth").mkdir()
    (tmp_path / "f").write_text("x")
    assert main(["convert", str(src), str(tmp_path / "d.pth"), "-m", "rexnet_060"]) == 2
    assert "is a folder" in capsys.readouterr().err
    assert main(["convert", str(src), str(tmp_path / "f" / "o.pth"), "-m", "rexnet_060"]) == 2
    err = capsys.readouterr().err
    assert "is a file, not a folder" in err and "Traceback" not in err


@pytest.mark.parametrize("suffix", [".pth", ".pt", ".safetensors"])
def test_convert_writes_the_format_its_suffix_names(src, tmp_path, suffix):
    dst = convert_checkpoint(src, tmp_path / f"o{suffix}", "rexnet_060")
    head = dst.read_bytes()[:4]
    assert head.startswith(b"PK") == (suffix != ".safetensors")  # torch.save's zip vs safetensors' header
    sd, _ = read_state_dict(dst)
    ref = torch.load(src, weights_only=True)
    assert all(torch.equal(sd[k], ref[k]) for k in ref)


def test_convert_unknown_suffix_and_failure_leave_nothing(src, tmp_path, monkeypatch):
    with pytest.raises(CheckpointError, match=r"must end in \.safetensors, \.pth or \.pt"):
        convert_checkpoint(src, tmp_path / "o.bin", "rexnet_060")
    import safetensors.torch

    def boom(*a, **k):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(safetensors.torch, "save", boom)
    with pytest.raises(OSError, match="No space"):
        convert_checkpoint(src, tmp_path / "o.safetensors", "rexnet_060")
    assert sorted(os.listdir(tmp_path)) == []


_SLOW_WRITER = """
import sys, time
from pathlib import Path
from rexnet._files import atomic_write

def write(f):
    f.write(b"partial" * 1000)
    f.flush()
    print("writing", flush=True)
    time.sleep(120)

atomic_write(Path(sys.argv[1]), write)
"""


def test_writer_killed_with_sigkill_leaves_no_file(tmp_path):
    import signal
    import subprocess
    import sys

    proc = subprocess.Popen(
        [sys.executable, "-c", _SLOW_WRITER, str(tmp_path / "o.safetensors")], stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout.readline().strip() == "writing"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        proc.kill()
    assert sorted(os.listdir(tmp_path)) == []  # the unnamed file died with its writer


def test_named_temp_fallback_writes_and_cleans_up(src, tmp_path, monkeypatch):
    from rexnet import _files

    monkeypatch.setattr(_files, "_write_unnamed", lambda *a: False)  # a system without O_TMPFILE
    convert_checkpoint(src, tmp_path / "o.safetensors", "rexnet_060")
    assert sorted(os.listdir(tmp_path)) == ["o.safetensors"]
    with pytest.raises(ZeroDivisionError):
        _files.atomic_write(tmp_path / "p.pth", lambda f: 1 / 0)
    assert sorted(os.listdir(tmp_path)) == ["o.safetensors"]


def test_orphan_temp_of_a_killed_writer_is_removed(src, tmp_path):
    dead = 2**22 + 12345  # above the default pid_max: no such process
    orphan = tmp_path / f".o.safetensors.{dead}.abc.tmp"
    orphan.write_bytes(b"partial")
    convert_checkpoint(src, tmp_path / "o.safetensors", "rexnet_060")
    assert not orphan.exists()


def test_empty_random_and_misnamed_files_have_clear_messages(src, tmp_path):
    (tmp_path / "zero.pth").write_bytes(b"")
    with pytest.raises(CheckpointError, match="not a PyTorch checkpoint .an empty file"):
        safe_torch_load(tmp_path / "zero.pth")
    (tmp_path / "random.pth").write_bytes(b"\x13" + np.random.default_rng(0).bytes(4095))
    with pytest.raises(CheckpointError, match="neither torch.save's zip format nor a pickle") as e:
        safe_torch_load(tmp_path / "random.pth")
    assert "weights_only" not in str(e.value)
    st = convert_checkpoint(src, tmp_path / "o.safetensors", "rexnet_060")
    (tmp_path / "misnamed.pth").write_bytes(st.read_bytes())
    with pytest.raises(CheckpointError, match="looks like safetensors"):
        safe_torch_load(tmp_path / "misnamed.pth")


def test_weights_and_checkpoints_honour_the_umask(src, tmp_path):
    old = os.umask(0o022)
    try:
        a = convert_checkpoint(src, tmp_path / "o.safetensors", "rexnet_060")
        b = save_checkpoint({"model": {}}, tmp_path / "last.pt")
    finally:
        os.umask(old)
    assert stat.S_IMODE(a.stat().st_mode) == 0o644
    assert stat.S_IMODE(b.stat().st_mode) == 0o644


def test_head_mismatch_suggests_a_command_that_exists(tmp_path):
    from rexnet.weights import load_weights

    path = tmp_path / "w.pth"
    torch.save(create_model("rexnet_060", num_classes=10).state_dict(), path)
    with pytest.raises(CheckpointError) as e:
        load_weights(create_model("rexnet_060", num_classes=7), path, drop_head=False)
    assert "--drop-head" not in str(e.value) and "rexnet finetune --pretrained" in str(e.value)


def test_convert_refuses_integer_weights(src, tmp_path):
    """int8/bool tensors are not written into our layout either (they would be refused at load time)."""
    sd, _ = read_state_dict(src)
    key = next(k for k, v in sd.items() if v.is_floating_point() and v.ndim == 4)
    sd[key] = sd[key].to(torch.int8)
    with pytest.raises(CheckpointError, match=r"\(torch.int8\).*does not cast them"):
        convert_weights(sd, tmp_path / "o.safetensors", get_plan("rexnet_060"))
    assert not (tmp_path / "o.safetensors").exists()


def test_a_fifo_checkpoint_is_refused_without_blocking(tmp_path):
    os.mkfifo(tmp_path / "w.pth")
    os.mkfifo(tmp_path / "w.safetensors")
    for name in ("w.pth", "w.safetensors"):
        with pytest.raises(CheckpointError, match="is a FIFO, not a regular file"):
            read_state_dict(tmp_path / name)
    with pytest.raises(CheckpointError, match="checkpoint not found"):
        safe_torch_load(tmp_path / "missing.pt")
