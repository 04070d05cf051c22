"""A real 4-trial search on the embedded data (1 epoch each) through the CLI, then its report."""

from __future__ import annotations

import csv

import optuna
import pytest

from rexnet.cli import main
from rexnet.search import default_storage

# tiny but real: 30 M MACs would take minutes on 2 shared cores; the plan arithmetic is the same
ARGS = [
    "--trials",
    "4",
    "--epochs",
    "1",
    "--seeds",
    "1",
    "--budget-macs",
    "6M",
    "--max-samples",
    "96",
    "--threads",
    "1",
    "--train-options",
    '{"batch_size": 32}',
]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("search-e2e")
    assert main(["search", "run", "--out", str(out), *ARGS]) == 0
    return out


def test_four_trials_finish_and_report_is_written(run_dir, capsys) -> None:
    st = optuna.load_study(study_name="rexnet-search", storage=default_storage(run_dir))
    done = [t for t in st.get_trials() if t.state == optuna.trial.TrialState.COMPLETE]
    assert len(done) == 4
    for t in done:
        assert 0 <= t.value <= 100 and len(t.intermediate_values) == 1
        assert 0.97 * 6e6 <= t.user_attrs["macs"] <= 6e6
        # the default trainer also records the final features' rank statistics per seed (digits: no test split)
        stats = t.user_attrs["seed_stats"]
        assert "test_accuracy" not in stats
        assert len(stats["nuclear_norm"]) == 1 and stats["nuclear_norm"][0] > 0
        assert 1 <= stats["rank"][0] <= t.user_attrs["channels"][-1] * 10  # at most the final conv's width
    for name in ("trials.csv", "table3.md", "figure2.png"):  # run writes the report when done
        assert (run_dir / name).stat().st_size > 0


def test_report_command_rewrites_outputs(run_dir, capsys) -> None:
    for name in ("trials.csv", "table3.md", "figure2.png"):
        (run_dir / name).unlink()
    assert main(["search", "report", "--out", str(run_dir)]) == 0
    assert "table3.md" in capsys.readouterr().out
    rows = list(csv.DictReader(open(run_dir / "trials.csv")))
    assert len(rows) == 4 and {r["rule"] for r in rows} >= {"mobilenetv2_staircase", "rexnet_linear"}
    assert all(float(r["nuclear_norm"]) > 0 and r["test_accuracy"] == "" for r in rows)
    table = (run_dir / "table3.md").read_text()
    assert "| Top-10% |" in table and "| Bot-10% |" in table and "R²" in table
    assert (run_dir / "figure2.png").read_bytes()[:4] == b"\x89PNG"


def test_report_without_database_is_an_error(tmp_path, capsys) -> None:
    assert main(["search", "report", "--out", str(tmp_path)]) == 2
    assert "no search database" in capsys.readouterr().err


def test_the_search_folder_is_marked_and_kept_from_training(run_dir, capsys) -> None:
    from rexnet.run import folder_kind

    assert folder_kind(run_dir) == "search"
    before = sorted(p.name for p in run_dir.iterdir())
    assert main(["train", "-m", "rexnet_060", "-e", "1", "--no-progress", "-o", str(run_dir)]) == 2
    assert "holds a channel-configuration search" in capsys.readouterr().err
    assert sorted(p.name for p in run_dir.iterdir()) == before
