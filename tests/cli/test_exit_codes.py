"""The CLI's exit status per error class: the user's input 2, the run's outcome 1 or 130, a bug keeps its traceback."""

from __future__ import annotations

import pytest

from rexnet import errors
from rexnet.cli import main


def _raising(monkeypatch, exc: BaseException) -> None:
    """Make ``rexnet models`` raise ``exc`` from inside its handler (parsing and dispatch stay real)."""
    import rexnet.cli.models as models

    def boom(args):
        raise exc

    monkeypatch.setattr(models, "_models", boom, raising=True)


@pytest.mark.parametrize(
    "exc, code, outcome",
    [
        (errors.InputError("bad input"), 2, "error"),
        (errors.ConfigError("bad key"), 2, "error"),
        (errors.CheckpointError("bad file"), 2, "error"),
        (errors.DataError("bad data"), 2, "error"),
        (errors.OutputExistsError("exists"), 2, "error"),
        (errors.ResourceError("too big"), 2, "error"),
        (errors.DivergedError("loss nan"), 1, "diverged"),
        (errors.RunLockedError("busy"), 1, "locked"),
        (errors.WaitTimeoutError("no peer"), 1, "timeout"),
        (errors.RunInterruptedError("stopped"), 130, "interrupted"),
    ],
)
def test_each_error_class_has_its_exit_code(monkeypatch, capsys, exc, code, outcome):
    _raising(monkeypatch, exc)
    assert main(["models"]) == code == errors.exit_code_of(exc)
    err = capsys.readouterr().err
    assert err.startswith(f"rexnet models: {outcome}: {exc}") and "Traceback" not in err


def test_non_finite_loss_is_a_diverged_run_not_bad_input():
    assert errors.NonFiniteLossError is errors.DivergedError
    assert not issubclass(errors.DivergedError, errors.InputError)
    assert not issubclass(errors.RunLockedError, errors.InputError)


@pytest.mark.parametrize("exc", [KeyError("internal"), RuntimeError("a bug"), ZeroDivisionError()])
def test_a_bug_keeps_its_traceback(monkeypatch, exc):
    _raising(monkeypatch, exc)
    with pytest.raises(type(exc)):
        main(["models"])


def test_keyboard_interrupt_exits_130(monkeypatch, capsys):
    _raising(monkeypatch, KeyboardInterrupt())
    assert main(["models"]) == 130
    assert "interrupted" in capsys.readouterr().err
