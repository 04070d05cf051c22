"""Inverted-bottleneck presets and the composite paper view (tiny sizes)."""

from __future__ import annotations

import csv
import json

import pytest

from rexnet.cli import main
from rexnet.errors import RexnetError
from rexnet.rank import PRESETS, get_protocol, run_rank_study
from rexnet.rank.paper_view import run_paper_view
from rexnet.rank.protocols import preset_name


def test_ib_presets():
    assert get_protocol("ib_t2").expansion == 2.0 and get_protocol("ib_t2").replace(expansion=6.0) == PRESETS["default"]
    loose = get_protocol("ib_loose")
    assert (loose.input, loose.expansion, loose.estimator) == ("gaussian", 3.0, "rtol:1e-2")
    assert preset_name(get_protocol("P4")) == "default" and preset_name(get_protocol("ib_trand")) == "ib_trand"
    assert preset_name(get_protocol("default", d_out_max=99)) == "custom"
    with pytest.raises(RexnetError, match="expansion_max"):
        get_protocol("default", expansion=3.0, expansion_max=2.0)
    with pytest.raises(RexnetError, match="shortcut"):
        get_protocol("default", shortcut="maybe")


def test_t2_changes_only_the_ib_panels():
    kw = dict(activations=["identity", "relu", "silu"], ratios=[0.1], networks=6, progress=False)
    a, b = run_rank_study(**kw), run_rank_study(protocol="ib_t2", **kw)
    for act in kw["activations"]:
        for blk in ("conv1x1", "conv3x3"):
            assert a.value(blk, act, 0.1) == b.value(blk, act, 0.1)
        # t = 2 caps the hidden width at 2 * d_in, so ReLU's IB-conv rank falls (t = 6: about 0.6)
    assert b.value("ib_conv", "relu", 0.1) < a.value("ib_conv", "relu", 0.1)


def test_paper_view_labels_each_pair(tmp_path):
    view = run_paper_view(tmp_path, networks=3, ratios=[0.1, 1.0], progress=False)
    assert view.protocols == {"conv1x1": "default", "conv3x3": "default", "ib_conv": "ib_loose", "ib_dw": "ib_loose"}
    assert set(view.rms) == {"conv1x1", "conv3x3", "ib_conv", "ib_dw"} and all(v >= 0 for v in view.rms.values())
    assert (tmp_path / "paper_view.png").stat().st_size > 5000
    with open(tmp_path / "paper_view.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert {(r["block"], r["protocol"]) for r in rows} == {
        ("conv1x1", "default"),
        ("conv3x3", "default"),
        ("ib_conv", "ib_loose"),
        ("ib_dw", "ib_loose"),
    }
    info = json.loads((tmp_path / "paper_view.json").read_text())
    assert info["protocols"]["cd"]["estimator"] == "rtol:1e-2"
    # reading the two finished half-studies back gives the same view without computing
    again = run_paper_view(tmp_path / "re", ab_run=tmp_path / "ab_default", cd_run=tmp_path / "cd_ib_loose")
    assert again.rms == pytest.approx(view.rms, abs=1e-5) and again.protocols == view.protocols  # CSV: 6 decimals
    with pytest.raises(RexnetError, match="no rows for block"):
        run_paper_view(tmp_path / "bad", ab_run=tmp_path / "cd_ib_loose", cd_run=tmp_path / "cd_ib_loose")


def test_cli_paper_view_and_preset(tmp_path, capsys):
    rc = main(
        [
            "rank-paper-view",
            "--out",
            str(tmp_path / "pv"),
            "-n",
            "2",
            "--ratios",
            "0.5",
            "--cd-protocol",
            "ib_trand",
            "--no-progress",
        ]
    )
    assert rc == 0 and "ib_trand" in capsys.readouterr().out
    rc = main(
        [
            "rank-study",
            "--out",
            str(tmp_path / "s"),
            "--protocol",
            "ib_trand",
            "--blocks",
            "ib_dw",
            "--activations",
            "identity,relu",
            "--ratios",
            "0.2",
            "-n",
            "2",
            "--no-progress",
        ]
    )
    assert rc == 0
    proto = json.loads((tmp_path / "s" / "config.json").read_text())["protocol"]
    assert proto["expansion_max"] == 6.0 and proto["shortcut"] is False
    assert main(["rank-paper-view", "--out", str(tmp_path / "x"), "--cd-protocol", "P9"]) == 2
