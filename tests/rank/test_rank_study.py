"""Random-layer study: acceptance criteria of issue 3, determinism, resume, bad input."""

from __future__ import annotations

import csv
import json

import pytest

from rexnet.cli import main
from rexnet.errors import RexnetError
from rexnet.rank import BLOCKS, CSV_COLUMNS, PAPER_ACTIVATIONS, run_rank_study
from rexnet.rank.blocks import point_rank_ratios
from rexnet.rank.protocols import get_protocol

NONLINEAR = [a for a in PAPER_ACTIVATIONS if a != "identity"]


@pytest.fixture(scope="module")
def default_at_01():
    """The default protocol at ratio 0.1, all blocks and activations, 100 networks per point."""
    return run_rank_study(activations=PAPER_ACTIVATIONS, ratios=[0.1], networks=100, progress=False)


@pytest.mark.parametrize("block", BLOCKS)
def test_identity_is_the_diagonal(block):
    res = run_rank_study(
        blocks=[block], activations=["identity"], ratios=[0.1, 0.3, 0.7, 1.0], networks=12, progress=False
    )
    for r in (0.1, 0.3, 0.7, 1.0):
        assert res.value(block, "identity", r) == pytest.approx(r, abs=0.02)


def test_nonlinearities_above_diagonal_conv1x1(default_at_01):
    for a in NONLINEAR:
        assert default_at_01.value("conv1x1", a, 0.1) > 0.1 + 0.05, a
    assert default_at_01.value("conv1x1", "silu", 0.1) >= default_at_01.value("conv1x1", "relu", 0.1)


def test_ib_below_plain_conv_at_01(default_at_01):
    for a in NONLINEAR:
        for ib in ("ib_conv", "ib_dw"):
            for conv in ("conv1x1", "conv3x3"):
                assert default_at_01.value(ib, a, 0.1) < default_at_01.value(conv, a, 0.1), (ib, conv, a)


def test_findings_reported_honestly(default_at_01):
    text = default_at_01.summary()
    keys = [f.key for f in default_at_01.findings]
    assert keys == ["O1", "O2a", "O2b", "O3", "G1", "G2", "G3"]
    statuses = {f.status for f in default_at_01.findings}
    assert statuses <= {"holds", "partly holds", "does not hold", "not tested"}
    # one ratio only: the checks that need two ratios say so instead of guessing
    assert {f.key: f.status for f in default_at_01.findings}["O1"] == "not tested"
    for f in default_at_01.findings:
        assert f"[{f.status.upper()}] {f.key}" in text


def test_cli_writes_run_folder(tmp_path):
    out = tmp_path / "run"
    rc = main(
        [
            "rank-study",
            "--out",
            str(out),
            "--blocks",
            "conv1x1,ib_dw",
            "--activations",
            "identity,relu,silu",
            "--ratios",
            "0.1,0.5,1.0",
            "--networks",
            "8",
            "--seed",
            "3",
            "--no-progress",
        ]
    )
    assert rc == 0
    with open(out / "rank_study.csv") as fh:
        rows = list(csv.reader(fh))
    assert tuple(rows[0]) == CSV_COLUMNS
    assert len(rows) == 1 + 2 * 3 * 3
    assert {r[0] for r in rows[1:]} == {"conv1x1", "ib_dw"} and {r[5] for r in rows[1:]} == {"8"}
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["seed"] == 3 and cfg["networks"] == 8 and "estimator" in cfg["protocol"]
    assert (out / "rank_study.png").stat().st_size > 1000
    assert "findings" in (out / "summary.txt").read_text()


def test_deterministic_and_resumable(tmp_path):
    kw = dict(
        blocks=["conv3x3", "ib_conv"],
        activations=["identity", "relu6", "elu"],
        ratios=[0.2, 0.6],
        networks=6,
        seed=11,
        progress=False,
        plot=False,
    )
    a = run_rank_study(tmp_path / "a", **kw)
    # interrupted run: only some points logged, the last line cut mid-write
    b_dir = tmp_path / "b"
    lines = (tmp_path / "a" / "points.jsonl").read_text().splitlines()
    b_dir.mkdir()
    (b_dir / "config.json").write_text((tmp_path / "a" / "config.json").read_text())
    (b_dir / "points.jsonl").write_text("\n".join(lines[:2]) + "\n" + lines[2][:20])
    b = run_rank_study(b_dir, **kw)
    assert [r.rank_ratio_mean for r in a.rows] == [r.rank_ratio_mean for r in b.rows]
    assert (tmp_path / "a" / "rank_study.csv").read_text() == (b_dir / "rank_study.csv").read_text()
    with pytest.raises(RexnetError, match="different config"):
        run_rank_study(b_dir, **{**kw, "seed": 12})


def test_gram_and_svd_agree():
    p = get_protocol()
    kw = dict(activations=["identity", "relu", "hardswish", "softplus"], networks=6, seed=1)
    for block in ("conv1x1", "ib_dw"):
        a, _ = point_rank_ratios(block, 0.1, protocol=p.replace(svd_method="svd"), **kw)
        b, _ = point_rank_ratios(block, 0.1, protocol=p.replace(svd_method="gram"), **kw)
        for act in kw["activations"]:
            assert (a["matrix_rank"][act] - b["matrix_rank"][act]).abs().max() <= 1 / 32


def test_protocol_options_run():
    res = run_rank_study(
        blocks=["conv1x1", "conv3x3", "ib_dw"],
        activations=["identity", "Mish"],
        ratios=[0.25],
        networks=4,
        progress=False,
        protocol=get_protocol("P1", spatial=3, d_out_min=16, d_out_max=24, estimator="rtol:1e-2"),
    )
    assert res.value("conv1x1", "identity", 0.25) == pytest.approx(0.25, abs=0.05)
    assert res.value("conv3x3", "identity", 0.25) > 0.5  # a real 3x3 conv mixes 9 taps: no diagonal
    assert 0 < res.value("ib_dw", "Mish", 0.25) <= 1


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(blocks=["conv5x5"]), "expected one of: conv1x1, conv3x3, ib_conv, ib_dw"),
        (dict(activations=["swish2"]), "expected one of: identity, relu"),
        (dict(ratios=[0.0]), r"\(0, 1\]"),
        (dict(ratios=[1.5]), r"\(0, 1\]"),
        (dict(protocol="P9"), "expected one of: default, P1"),
        (dict(protocol={"norm": "layer"}), "expected one of: none, bn_before, bn_after"),
        (dict(protocol={"estimator": "nuclear"}), "matrix_rank, rtol"),
    ],
)
def test_bad_input(kwargs, match):
    with pytest.raises(RexnetError, match=match):
        run_rank_study(**{"networks": 2, "progress": False, **kwargs})


def test_cli_bad_input_exit_code(tmp_path, capsys):
    assert main(["rank-study", "--out", str(tmp_path), "--ratios", "0,0.5"]) == 2
    assert "(0, 1]" in capsys.readouterr().err
    assert main(["rank-study", "--out", str(tmp_path), "--blocks", "fc"]) == 2
    assert "conv1x1, conv3x3, ib_conv, ib_dw" in capsys.readouterr().err


def test_cli_protocol_overrides(tmp_path):
    rc = main(
        [
            "rank-study",
            "--out",
            str(tmp_path),
            "--blocks",
            "conv1x1",
            "--activations",
            "identity,Tanh",
            "--ratios",
            "0.5",
            "-n",
            "2",
            "--protocol",
            "P1",
            "--set",
            "estimator=rtol:1e-2",
            "--set",
            "d_out_max=40",
            "--no-progress",
            "--no-plot",
        ]
    )
    assert rc == 0
    proto = json.loads((tmp_path / "config.json").read_text())["protocol"]
    assert proto["estimator"] == "rtol:1e-2" and proto["d_out_max"] == 40 and proto["norm"] == "bn_before"
    assert main(["rank-study", "--out", str(tmp_path / "x"), "--set", "colour=red"]) == 2


def test_study_folder_is_marked_locked_and_kept_apart_from_training_runs(tmp_path):
    from rexnet.errors import InputError, RunLockedError
    from rexnet.run import RunLock, folder_kind

    kw = dict(blocks=["conv1x1"], activations=["relu"], ratios=[0.5], networks=4, progress=False, plot=False)
    run_rank_study(tmp_path / "s", **kw)
    assert folder_kind(tmp_path / "s") == "rank-study" and not (tmp_path / "s" / "run.lock").exists()
    with RunLock(tmp_path / "s"), pytest.raises(RunLockedError, match="in use by another run"):
        run_rank_study(tmp_path / "s", **kw)
    (tmp_path / "t").mkdir()
    (tmp_path / "t" / "config.json").write_text(json.dumps({"model": "rexnet_100", "data": "digits"}))
    with pytest.raises(InputError, match="holds a classification training run, not a rank study"):
        run_rank_study(tmp_path / "t", **kw)
