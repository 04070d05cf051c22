"""Progress off a terminal: plain log lines, one per interval, never a tqdm carriage return (issue 22)."""

from __future__ import annotations

import logging

from rexnet.run import Progress


def test_advance_logs_one_line_per_interval_off_a_terminal(caplog, capsys):
    with caplog.at_level(logging.INFO, logger="rexnet.run"):
        bar = Progress(True, 100, 0, "rank study: networks", 10)  # pytest's stderr is no terminal
        for _ in range(4):
            bar.advance(25)  # crosses 2 or 3 multiples of 10 each time: still one line per call
        bar.close()
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 4 and lines[-1].startswith("rank study: networks 100/100")
    assert "\r" not in capsys.readouterr().err


def test_advance_is_silent_when_disabled(caplog):
    with caplog.at_level(logging.INFO, logger="rexnet.run"):
        bar = Progress(False, 10, 0, "grid", 1)
        bar.advance(5)
        bar.close()
    assert caplog.records == []


def test_rank_study_writes_no_carriage_return_off_a_terminal(capsys):
    from rexnet.rank.study import run_rank_study

    run_rank_study(blocks=["conv1x1"], activations=["relu"], ratios=[0.5], networks=5, progress=True)
    err = capsys.readouterr().err
    assert "\r" not in err and "it/s" not in err
