"""The one exception family of rexnet: every error raised on bad user input derives from it."""

from __future__ import annotations

__all__ = ["RexnetError", "UnknownModelError", "CheckpointError", "BudgetError", "ResourceError"]


class RexnetError(ValueError):
    """Base class for errors about user input (names, files, budgets, options)."""


class UnknownModelError(RexnetError, KeyError):
    """A model name that is not registered."""

    def __str__(self) -> str:  # KeyError would quote the message; keep it readable
        return str(self.args[0]) if self.args else ""


class CheckpointError(RexnetError):
    """A checkpoint that cannot be read safely or does not fit the model."""


class BudgetError(RexnetError):
    """A MAC/parameter budget that no network of the family can meet."""


class ResourceError(RexnetError):
    """A request that would not fit in the machine's memory (refused before anything is built)."""
