"""The one exception family of rexnet, split by who must act.

* :class:`InputError` and its subclasses: the user's input is wrong (a name, a file, a flag, a
  budget). The CLI prints the message and exits with 2.
* :class:`RunOutcomeError` and its subclasses: the input was fine but the run ended badly
  (diverged, locked by another process, interrupted). The CLI names the outcome and exits with the
  class's ``exit_code`` (1, or 130 for an interrupted run).
* Anything else is a bug in rexnet: the CLI keeps its traceback.

Every class defined here derives from :class:`RexnetError`, so ``except RexnetError`` catches all
that rexnet raises on purpose. No exception class is defined anywhere else in the package.

Example:
    >>> issubclass(CheckpointError, InputError), CheckpointError.exit_code
    (True, 2)
    >>> DivergedError.exit_code, RunInterruptedError.exit_code
    (1, 130)
"""

from __future__ import annotations

from typing import ClassVar

__all__ = [
    "RexnetError",
    # the user's input (exit 2)
    "InputError",
    "ConfigError",
    "ResumeMismatchError",
    "UnknownModelError",
    "CheckpointError",
    "BudgetError",
    "OutOfToleranceError",
    "ResourceError",
    "DataError",
    "CorruptImageError",
    "ExportError",
    "OutputExistsError",
    "StudyMismatchError",
    # the run's outcome (exit 1 / 130)
    "RunOutcomeError",
    "DivergedError",
    "NonFiniteLossError",
    "RunLockedError",
    "RunInterruptedError",
    "WaitTimeoutError",
    "exit_code_of",
]


class RexnetError(Exception):
    """Root of every error rexnet raises on purpose.

    Attributes:
        exit_code: The CLI's exit status for this error.
        outcome: A one-word name the CLI prints before the message (``error``, ``diverged``, ...).
    """

    exit_code: ClassVar[int] = 2
    outcome: ClassVar[str] = "error"


# ---- the user's input (exit 2) ----------------------------------------------------------------------
class InputError(RexnetError, ValueError):
    """Bad user input: a name, file, option or value that rexnet refuses, with what to do instead."""


class ConfigError(InputError):
    """An unknown config key, or a value of the wrong type or out of range."""


class ResumeMismatchError(ConfigError):
    """``resume`` with settings that differ from the run's, not named in ``allow_change``."""


class UnknownModelError(InputError, KeyError):
    """A model name that is not registered."""

    def __str__(self) -> str:  # KeyError would quote the message; keep it readable
        return str(self.args[0]) if self.args else ""


class CheckpointError(InputError):
    """A checkpoint that cannot be read safely or does not fit the model."""


class BudgetError(InputError):
    """A MAC/parameter/latency budget that no network of the family can meet."""


class OutOfToleranceError(BudgetError):
    """A sampled shape whose rescaled plan cannot land within the budget tolerance."""


class ResourceError(InputError):
    """A request that would not fit in the machine (memory, pixels, threads): refused before any work."""


class DataError(InputError):
    """A data file or folder that is malformed, crafted or out of range (the message names the field)."""


class CorruptImageError(DataError):
    """An image that cannot be decoded, raised only in strict mode."""


class ExportError(InputError):
    """An export that failed or does not reproduce the PyTorch outputs, or an exported file that is unusable."""


class OutputExistsError(InputError):
    """An output path that holds something this run did not write (pass ``overwrite`` / ``--overwrite``)."""


class StudyMismatchError(InputError):
    """A worker's settings differ from those the shared study was created with."""


# ---- the run's outcome (exit 1, 130) ----------------------------------------------------------------
class RunOutcomeError(RexnetError, RuntimeError):
    """The input was accepted but the run ended without a result."""

    exit_code: ClassVar[int] = 1
    outcome: ClassVar[str] = "failed"


class DivergedError(RunOutcomeError):
    """The loss or the weights became NaN or infinite; the last finite checkpoint is kept."""

    outcome: ClassVar[str] = "diverged"


#: The name the training loop has always raised; the same class.
NonFiniteLossError = DivergedError


class RunLockedError(RunOutcomeError):
    """Another live process is writing the same run folder."""

    outcome: ClassVar[str] = "locked"


class RunInterruptedError(RunOutcomeError):
    """Stopped by SIGINT/SIGTERM; what was done is saved and can be resumed."""

    exit_code: ClassVar[int] = 130
    outcome: ClassVar[str] = "interrupted"


class WaitTimeoutError(RunOutcomeError):
    """A wait that did not end in time (a distributed peer, a lock, a store); the message names what."""

    outcome: ClassVar[str] = "timeout"


def exit_code_of(error: BaseException) -> int | None:
    """The CLI's exit status for ``error``, or ``None`` for a bug (whose traceback is kept).

    Example:
        >>> exit_code_of(ConfigError("x")), exit_code_of(RunLockedError("y")), exit_code_of(KeyError("z"))
        (2, 1, None)
    """
    if isinstance(error, RexnetError):
        return type(error).exit_code
    if isinstance(error, KeyboardInterrupt):
        return 130
    return None
