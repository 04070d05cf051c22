"""The ``rexnet`` command: one entry point, one module per group of subcommands.

Each module in :data:`_COMMAND_MODULES` exposes ``add_parsers(subparsers)``, registering
subcommands whose ``func(args)`` parses nothing itself: it calls one importable, typed
function and prints or writes its result.
"""

from __future__ import annotations

import argparse
import errno
import importlib
import logging
import sys
from collections.abc import Sequence

from ..errors import RexnetError, RunOutcomeError

__all__ = ["main", "build_parser"]

# OS errors about the user's files and disk (full, read-only, permission, a folder where a file goes):
# reported in one line like a RexnetError.
_USER_OS_ERRORS = {errno.ENOSPC, errno.EDQUOT, errno.EACCES, errno.EPERM, errno.EROFS, errno.EISDIR, errno.ENOTDIR}

# Subcommand groups, in help order; a group whose module is absent is skipped.
_COMMAND_MODULES = ("models", "rank", "train", "search", "deploy", "detect")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rexnet",
        description="ReXNet (CVPR 2021): models, rank study, channel-configuration search, training, deployment.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in _COMMAND_MODULES:
        try:
            module = importlib.import_module(f"{__name__}.{name}")
        except ModuleNotFoundError as e:
            if e.name == f"{__name__}.{name}":
                continue
            raise
        module.add_parsers(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the process exit code (2 bad input, 1 a failed run, 130 interrupted; see ``errors``)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO, format="%(levelname)s %(name)s: %(message)s"
    )
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except RexnetError as e:  # the user's input (2) or the run's outcome (1, 130): a message, no traceback
        what = e.outcome if isinstance(e, RunOutcomeError) else "error"
        print(f"rexnet {args.command}: {what}: {e}", file=sys.stderr)
        return e.exit_code
    except OSError as e:
        if e.errno not in _USER_OS_ERRORS:  # anything else may be a bug: keep its traceback
            raise
        print(f"rexnet {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"rexnet {args.command}: interrupted", file=sys.stderr)
        return 130
