"""The Table-2 verification recipe (rexnet.experiments.table2): the two-IB proxies and their rank columns."""

from __future__ import annotations

import csv

from rexnet.experiments.table2 import proxy_plan, run_verification
from rexnet.plan import count_macs


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
