"""``rexnet search run`` and ``rexnet search report``: the channel-configuration search (paper Sec. 4).

Every :class:`~rexnet.search.SearchConfig` field is a flag of ``search run`` (``--budget-macs``,
``--val-samples``, ``--no-wait``, ...).
"""

from __future__ import annotations

import argparse

from .._config import add_flags, flag_overrides
from .._config import parse_count as _parse_count

__all__ = ["add_parsers", "parse_count"]

# flag names older than the config's field names (still accepted)
_ALIASES = {"heartbeat_interval": ["--heartbeat"], "grace_period": ["--grace"]}


def parse_count(text: str) -> float:
    """``30M``, ``0.2m``, ``3e7``, ``1.5G`` -> a number (an argparse ``type``)."""
    try:
        return _parse_count(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _run(args: argparse.Namespace) -> int:
    from ..search import SearchConfig, run

    res = run(args.out, SearchConfig(**flag_overrides(args)))
    c = res.counts
    print(
        f"study {res.study!r}: {res.finished}/{res.target_trials} slots finished "
        f"(complete {c['COMPLETE']}, pruned {c['PRUNED']}, failed {c['FAIL']}, running {c['RUNNING']}, "
        f"waiting {c['WAITING']}); this worker: {res.ran_here}"
    )
    if res.report:
        for path in res.report.values():
            print(f"wrote {path}")
    return 0


def _report(args: argparse.Namespace) -> int:
    from ..search import report

    for path in report(args.out, storage=args.storage, study=args.study).values():
        print(f"wrote {path}")
    return 0


def add_parsers(sub: argparse._SubParsersAction) -> None:
    from ..search.config import SearchConfig

    p = sub.add_parser("search", help="channel-configuration search on Optuna (paper Sec. 4)")
    ss = p.add_subparsers(dest="search_command", metavar="{run,report}")
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])

    r = ss.add_parser("run", help="run one search worker (start several with one --storage/--study to share it)")
    r.add_argument("--out", required=True, help="run folder (SQLite database, trials.csv, table3.md, figure2.png)")
    add_flags(r.add_argument_group("search settings"), SearchConfig, aliases=_ALIASES)
    r.set_defaults(func=_run)

    q = ss.add_parser("report", help="write DIR/trials.csv, DIR/table3.md and DIR/figure2.png for a study")
    q.add_argument("--out", required=True, help="output folder (and default SQLite location)")
    q.add_argument("--storage", default=None, help="SQLAlchemy URL (default: sqlite:///OUT/search.db)")
    q.add_argument("--study", default=None, help="study name (default: the only one in the storage)")
    q.set_defaults(func=_report)
