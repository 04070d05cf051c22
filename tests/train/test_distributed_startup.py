"""No hangs (issue 23): distributed start-up with a missing peer fails in time, naming the variables it found."""

from __future__ import annotations

import socket
import time

import pytest

from rexnet.cli import main

_ARGS = ["train", "-m", "rexnet_060", "--image-size", "32", "--train-limit", "32", "-e", "1", "--no-progress"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def env(monkeypatch):
    for k in ("WORLD_SIZE", "RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT", "REXNET_DIST_TIMEOUT"):
        monkeypatch.delenv(k, raising=False)
    return monkeypatch


def test_a_missing_peer_times_out_with_the_variables_named(env, tmp_path, capsys):
    env.setenv("WORLD_SIZE", "2")
    env.setenv("RANK", "0")
    env.setenv("MASTER_ADDR", "127.0.0.1")
    env.setenv("MASTER_PORT", str(_free_port()))
    env.setenv("REXNET_DIST_TIMEOUT", "1.5")
    t0 = time.monotonic()
    assert main([*_ARGS, "-o", str(tmp_path / "r")]) == 1
    assert time.monotonic() - t0 < 30
    err = capsys.readouterr().err
    assert "timed out after 1.5 s" in err and "WORLD_SIZE=2, RANK=0" in err and "REXNET_DIST_TIMEOUT" in err
    assert "Traceback" not in err and not (tmp_path / "r").exists()


@pytest.mark.parametrize(
    ("variables", "message"),
    [
        ({"WORLD_SIZE": "abc", "RANK": "0"}, "WORLD_SIZE must be an integer, got 'abc'"),
        ({"WORLD_SIZE": "2", "RANK": "x"}, "RANK must be an integer, got 'x'"),
        ({"WORLD_SIZE": "2", "RANK": "3", "MASTER_ADDR": "h", "MASTER_PORT": "1"}, "need RANK < WORLD_SIZE"),
        ({"WORLD_SIZE": "2", "RANK": "0"}, "MASTER_ADDR and MASTER_PORT not set"),
        (
            {"WORLD_SIZE": "2", "RANK": "0", "MASTER_ADDR": "h", "MASTER_PORT": "1", "REXNET_DIST_TIMEOUT": "nan"},
            "TIMEOUT",
        ),
    ],
)
def test_bad_distributed_variables_are_clear_input_errors(env, tmp_path, capsys, variables, message):
    for k, v in variables.items():
        env.setenv(k, v)
    assert main([*_ARGS, "-o", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert main(["detect", "train", "-o", str(tmp_path / "d"), "--no-progress"]) == 2
    assert message in capsys.readouterr().err
