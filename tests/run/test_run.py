"""The run machinery: folder kinds, the lock, resume rules for any Config, strict records, finite checks, the loop."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from typing import Any

import pytest
import torch

from rexnet._config import Config
from rexnet.errors import ConfigError, DivergedError, InputError, ResumeMismatchError, RunLockedError
from rexnet.run import (
    MARKER,
    Progress,
    Run,
    RunLock,
    StopFlag,
    check_finite,
    folder_kind,
    nonfinite_tensors,
    resume_changes,
    run_epochs,
    saved_config,
)


def test_a_run_marks_its_kind_and_refuses_another_kind(tmp_path):
    with Run(tmp_path / "t", "train").open():
        pass
    assert json.loads((tmp_path / "t" / MARKER).read_text())["kind"] == "train"
    assert folder_kind(tmp_path / "t") == "train"
    with pytest.raises(InputError, match="holds a classification training run, not a detection training run"):
        Run(tmp_path / "t", "detect").open()
    with pytest.raises(InputError, match="holds a classification training run, not a rank study"):
        Run(tmp_path / "t", "rank-study").open(resume=True)


@pytest.mark.parametrize(
    ("files", "kind"),
    [
        ({"config.json": {"blocks": ["conv1x1"], "protocol": {}}, "points.jsonl": None}, "rank-study"),
        ({"config.json": {"blocks": ["conv1x1"], "protocol": {}}}, "rank-study"),
        ({"config.json": {"arch": "ssdlite", "backbone": "rexnet_100"}}, "detect"),
        ({"config.json": {"model": "rexnet_100", "data": "digits"}}, "train"),
        ({"search.db": None}, "search"),
        ({"config.json": {"something": "else"}}, "unknown"),
        ({"notes.txt": None}, None),
    ],
)
def test_legacy_folders_are_recognised_by_their_files(tmp_path, files, kind):
    for name, content in files.items():
        (tmp_path / name).write_text(json.dumps(content) if content is not None else "")
    assert folder_kind(tmp_path) == kind
    if kind not in (None, "train"):  # e.g. train --out RANKDIR: refused before the study's config.json is touched
        before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
        with pytest.raises(InputError, match="refusing to write over it"):
            Run(tmp_path, "train").open(resume=True)
        assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before


def test_a_file_or_a_corrupt_marker_is_a_clear_error(tmp_path):
    f = tmp_path / "file"
    f.write_text("x")
    with pytest.raises(InputError, match="is a file, not a folder"):
        Run(f, "train").open()
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / MARKER).write_text("{not json")
    with pytest.raises(InputError, match="run.json is corrupt"):
        Run(tmp_path / "d", "train").open()


def test_a_finished_run_is_refused_without_resume(tmp_path):
    with Run(tmp_path, "detect").open() as run:
        run.save_checkpoint({"model": {"w": torch.ones(2)}})
    with pytest.raises(InputError, match=r"already holds a detection training run .*--resume"):
        Run(tmp_path, "detect").open()
    with Run(tmp_path, "detect").open(resume=True) as run:
        assert run.last_checkpoint() == tmp_path / "checkpoints" / "last.pt"


def test_the_lock_excludes_a_second_run_and_shared_workers_coexist(tmp_path):
    with Run(tmp_path, "train").open():
        with pytest.raises(RunLockedError, match=r"in use by another run \(PID \d+"):
            Run(tmp_path, "train").open(resume=True)
    with Run(tmp_path / "s", "search", shared=True).open(resume=True):
        with Run(tmp_path / "s", "search", shared=True).open(resume=True):  # a second worker of the same search
            with pytest.raises(RunLockedError, match="the workers of a search"):
                RunLock(tmp_path / "s").acquire()
    with RunLock(tmp_path / "s"):  # all released
        pass


@dataclass
class _Cfg(Config):
    epochs: int = field(default=2, metadata={"help": "epochs"})
    lr: float = field(default=0.1, metadata={"help": "lr"})
    arch: str = field(default="a", metadata={"help": "arch"})
    threads: int = field(default=1, metadata={"help": "threads"})


def test_resume_rules_hold_for_any_config(tmp_path):
    old = _Cfg()
    rules = dict(free=["threads"], fixed=["arch"])
    assert resume_changes(old, old.replace(threads=4), **rules) == {}
    with pytest.raises(ResumeMismatchError, match=r"settings: lr 0\.1 -> 0\.2; .*--allow-change lr$"):
        resume_changes(old, old.replace(epochs=3, lr=0.2), ["epochs"], **rules)
    assert resume_changes(old, old.replace(epochs=3), ["epochs"], **rules) == {"epochs": {"from": 2, "to": 3}}
    with pytest.raises(ResumeMismatchError, match="another arch"):
        resume_changes(old, old.replace(arch="b"), ["arch"], **rules)
    with pytest.raises(ConfigError, match="'bogus'"):
        resume_changes(old, old, ["bogus"])
    (tmp_path / "config.json").write_text(json.dumps({**old.to_dict(), "extra": 1}))
    assert saved_config(_Cfg, tmp_path) == old
    (tmp_path / "config.json").write_text('{"lr": "nan"}')
    with pytest.raises(ConfigError, match="cannot resume: .*config.json: .*bad value for lr"):
        saved_config(_Cfg, tmp_path)


def test_records_are_strict_json(tmp_path):
    with Run(tmp_path, "train").open() as run:
        run.reset_metrics([{"epoch": 1, "val_loss": 1.0}])
        run.log_epoch({"epoch": 2, "val_loss": float("nan"), "lr": float("inf")})
        run.write_json("summary.json", {"best": float("-inf")})
    lines = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert lines == [{"epoch": 1, "val_loss": 1.0}, {"epoch": 2, "val_loss": None, "lr": None}]
    assert "NaN" not in (tmp_path / "metrics.jsonl").read_text()
    assert json.loads((tmp_path / "summary.json").read_text()) == {"best": None}


def test_a_checkpoint_with_nonfinite_weights_is_never_written(tmp_path):
    with Run(tmp_path, "train").open() as run:
        run.save_checkpoint({"model": {"w": torch.ones(2)}, "epoch": 1})
        with pytest.raises(DivergedError, match=r"non-finite weights in w.*last finite checkpoint is kept"):
            run.save_checkpoint({"model": {"w": torch.tensor([1.0, float("inf")])}, "epoch": 2})
        with pytest.raises(DivergedError, match="e.b"):
            run.save_checkpoint({"model": {"w": torch.ones(1)}, "ema": {"e.b": torch.tensor([float("nan")])}})
    ck = torch.load(tmp_path / "checkpoints" / "last.pt", weights_only=True)
    assert ck["epoch"] == 1
    assert nonfinite_tensors(torch.nn.BatchNorm1d(2)) == []
    with pytest.raises(DivergedError, match="val_loss nan"):
        check_finite("after epoch 1", None, val_loss=float("nan"), train_loss=1.0)


@dataclass
class _State:
    w: torch.Tensor
    epoch: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)


class _Steps:
    """A toy job: its weight becomes NaN in epoch ``nan_at``; validation loss = the weight."""

    def __init__(self, nan_at: int | None = None, stop_at: int | None = None) -> None:
        self.nan_at, self.stop_at = nan_at, stop_at

    def train_epoch(self, state, stop):
        state.w = state.w + 1 if state.epoch + 1 != self.nan_at else state.w * float("nan")
        return {"loss": 1.0}

    def validate(self, state, train):
        return {"epoch": state.epoch + 1, "train_loss": train["loss"], "val_loss": float(state.w.sum())}

    def end_epoch(self, state, metrics):
        state.epoch += 1
        state.history.append(metrics)
        return True

    def weights(self, state):
        return {"w": state.w}

    def checkpoint(self, state):
        return {"model": {"w": state.w}, "epoch": state.epoch}

    def stop_requested(self, stop):
        return state_epoch_reached(self, stop)


def state_epoch_reached(steps: _Steps, stop: StopFlag) -> bool:
    steps.calls = getattr(steps, "calls", 0) + 1
    return steps.stop_at is not None and steps.calls >= steps.stop_at


def test_the_shared_loop_keeps_the_last_finite_checkpoint(tmp_path):
    with Run(tmp_path, "train").open() as run:
        with pytest.raises(DivergedError, match="in epoch 3: val_loss nan"):
            run_epochs(run, _Steps(nan_at=3), _State(torch.zeros(2)), epochs=5)
    ck = torch.load(tmp_path / "checkpoints" / "last.pt", weights_only=True)
    best = torch.load(tmp_path / "checkpoints" / "best.pt", weights_only=True)
    assert ck["epoch"] == best["epoch"] == 2 and torch.isfinite(ck["model"]["w"]).all()
    assert len((tmp_path / "metrics.jsonl").read_text().splitlines()) == 2
    with Run(tmp_path / "b", "train").open() as run:
        assert run_epochs(run, _Steps(stop_at=1), _State(torch.zeros(2)), epochs=3) == "interrupted"
        assert run_epochs(run, _Steps(), _State(torch.zeros(2)), epochs=2) == "completed"


def test_progress_logs_one_line_per_interval_off_a_terminal(caplog):
    with caplog.at_level(logging.INFO, logger="rexnet.run"):
        bar = Progress(True, total=10, initial=0, desc="epoch 1/1", every=5)
        for step in range(1, 11):
            bar.update(step, loss="1.0")
        bar.close()
    lines = [r.getMessage() for r in caplog.records]
    assert lines == ["epoch 1/1 step 5/10  loss 1.0", "epoch 1/1 step 10/10  loss 1.0"]
