"""The one move of every thin CLI shell: call the importable function with the parsed flags of the same names."""

from __future__ import annotations

import argparse
import inspect
from collections.abc import Callable
from typing import Any

__all__ = ["call_with_args"]


def call_with_args(fn: Callable[..., Any], args: argparse.Namespace, **given: Any) -> Any:
    """``fn(...)`` with each of its parameters taken from the flag of the same name in ``args``.

    ``given`` sets parameters whose value is not a flag of that name (``verify=not args.no_verify``); a parameter
    neither given nor parsed keeps the function's default, so a flag and the keyword it feeds cannot drift apart
    without a test that calls the command noticing.
    """
    kwargs: dict[str, Any] = {}
    for name, p in inspect.signature(fn).parameters.items():
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        if name in given:
            kwargs[name] = given[name]
        elif hasattr(args, name):
            kwargs[name] = getattr(args, name)
    unknown = set(given) - set(kwargs)
    if unknown:  # a programming error in the shell, not the user's
        raise TypeError(f"{fn.__name__} has no parameter(s) {', '.join(sorted(unknown))}")
    return fn(**kwargs)
