"""Protocol grid mode and the Table-2 verification recipe (tiny sizes)."""

from __future__ import annotations

import csv

import pytest

from rexnet.cli import main
from rexnet.errors import RexnetError
from rexnet.plan import count_macs
from rexnet.rank.grid import run_protocol_grid
from rexnet.train.table2 import proxy_plan, run_verification


def test_grid_scores_and_sorts(tmp_path):
    rows = run_protocol_grid(
        tmp_path,
        grid={"norm": ["none", "bn_before"]},
        estimators=["matrix_rank", "rtol:1e-2"],
        blocks=["conv1x1", "ib_dw"],
        activations=["identity", "relu", "silu"],
        ratios=[0.1, 0.2],
        networks=3,
        progress=False,
    )
    assert len(rows) == 4 and [r.score for r in rows] == sorted(r.score for r in rows)
    assert set(rows[0].panels) == {"conv1x1", "ib_dw"}
    with open(tmp_path / "grid.csv") as fh:
        table = list(csv.reader(fh))
    assert table[0][:3] == ["norm", "estimator", "score"] and len(table) == 5
    again = run_protocol_grid(
        tmp_path,
        grid={"norm": ["none", "bn_before"]},
        estimators=["matrix_rank", "rtol:1e-2"],
        blocks=["conv1x1", "ib_dw"],
        activations=["identity", "relu", "silu"],
        ratios=[0.1, 0.2],
        networks=3,
        progress=False,
    )  # resumed from the log
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


def test_proxy_plan_ratios():
    base, wide = proxy_plan(1 / 20, 0.22, "relu6"), proxy_plan(1 / 6, 0.8, "silu")
    assert base.final_conv.out_channels == 1280 and wide.final_conv.out_channels == 384
    assert [b.in_channels for b in base.blocks] == [3, 14] and [b.out_channels for b in base.blocks] == [14, 64]
    assert [b.act_exp for b in wide.blocks] == ["silu", "silu"] and wide.blocks[0].act_dw == "relu6"
    assert count_macs(wide, 32, 10) != count_macs(base, 32, 10)


def test_verification_rank_columns(tmp_path):
    rep = run_verification(tmp_path, train_epochs=0, seeds=1, batch_size=48, progress=False)
    assert len(rep.rows) == 4 and all(r.val_top1 is None for r in rep.rows)
    assert all(0 < r.rank <= 48 and r.nuclear_norm > 0 for r in rep.rows)
    with open(tmp_path / "verification.csv") as fh:
        assert len(list(csv.reader(fh))) == 5
    assert "paper" in rep.table()
