"""Protocol grid mode of the rank study (tiny sizes)."""

from __future__ import annotations

import csv

import pytest

from rexnet.cli import main
from rexnet.errors import RexnetError
from rexnet.rank.grid import run_protocol_grid

#: A two-protocol grid on two tiny panels: seconds.
GRID = dict(
    grid={"norm": ["none", "bn_before"]},
    estimators=["matrix_rank", "rtol:1e-2"],
    blocks=["conv1x1", "ib_dw"],
    activations=["identity", "relu", "silu"],
    ratios=[0.1, 0.2],
    networks=3,
    progress=False,
)


def test_grid_scores_and_sorts(tmp_path):
    rows = run_protocol_grid(tmp_path, **GRID)
    assert len(rows) == 4 and [r.score for r in rows] == sorted(r.score for r in rows)
    assert set(rows[0].panels) == {"conv1x1", "ib_dw"}
    with open(tmp_path / "grid.csv") as fh:
        table = list(csv.reader(fh))
    assert table[0][:3] == ["norm", "estimator", "score"] and len(table) == 5
    again = run_protocol_grid(tmp_path, **GRID)  # resumed from the log
    assert [r.score for r in again] == [r.score for r in rows]
    with pytest.raises(RexnetError, match="expected one of"):
        run_protocol_grid(grid={"norm": ["group"]}, networks=1, progress=False)


def test_cli_grid(tmp_path, capsys):
    rc = main(
        [
            "rank-study",
            "--protocol",
            "grid",
            "--out",
            str(tmp_path),
            "--grid",
            "input=uniform01,gaussian",
            "--estimators",
            "matrix_rank",
            "--blocks",
            "conv1x1",
            "--activations",
            "identity,relu",
            "--ratios",
            "0.1",
            "--networks",
            "2",
            "--no-progress",
        ]
    )
    assert rc == 0 and "best:" in capsys.readouterr().out
