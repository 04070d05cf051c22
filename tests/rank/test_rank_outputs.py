"""Rank outputs go through rexnet._files (issue 23): atomic, strict JSON, one writer per folder (the run lock)."""

from __future__ import annotations

import csv
import json

import pytest

from rexnet.errors import RunLockedError
from rexnet.rank.grid import run_protocol_grid
from rexnet.rank.report import run_rank_profile
from rexnet.run import RunLock

_GRID = dict(
    grid={"norm": ["none"]},
    estimators=["matrix_rank"],
    blocks=["conv1x1"],
    activations=["identity", "relu"],
    ratios=[0.5],
    networks=2,
    progress=False,
)


def _strict(text: str):
    def refuse(name):
        raise AssertionError(f"bare {name} in JSON")

    return json.loads(text, parse_constant=refuse)


def test_profile_writes_strict_json_atomically_and_refuses_a_held_folder(tmp_path):
    out = tmp_path / "prof"
    run_rank_profile("rexnet_060", out, batch_size=2, image_size=32)
    names = sorted(p.name for p in out.iterdir())
    assert names == ["rank_profile.csv", "rank_profile.json", "rank_profile.png"]  # no temp file, no lock left
    assert _strict((out / "rank_profile.json").read_text())["config"]["image_size"] == 32
    with open(out / "rank_profile.csv") as fh:
        assert next(csv.reader(fh))[0] == "layer"
    before = (out / "rank_profile.csv").read_bytes()
    with RunLock(out), pytest.raises(RunLockedError, match="in use by another run"):
        run_rank_profile("rexnet_060", out, batch_size=2, image_size=16)  # another live writer holds it
    assert (out / "rank_profile.csv").read_bytes() == before
    run_rank_profile("rexnet_060", out, batch_size=2, image_size=32)  # a re-run replaces its own kind of files


def test_grid_resumes_in_its_folder_and_is_one_writer_at_a_time(tmp_path):
    from rexnet._files import forget_written

    rows = run_protocol_grid(tmp_path, **_GRID)
    for p in tmp_path.iterdir():
        forget_written(p)  # as if an earlier process had written the grid
    again = run_protocol_grid(tmp_path, **_GRID)  # resumed under the lock: its own files may be replaced
    assert [r.score for r in again] == [r.score for r in rows]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["grid.csv", "grid_config.json", "grid_points.jsonl"]
    with RunLock(tmp_path), pytest.raises(RunLockedError):
        run_protocol_grid(tmp_path, **_GRID)
