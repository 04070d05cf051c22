"""``rexnet search run``, ``report`` and ``register``: the channel-configuration search (paper Sec. 4).

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


def _size_batch(text: str) -> tuple[int, int]:
    """``224x1`` -> ``(224, 1)`` (an argparse ``type``)."""
    size, sep, batch = text.lower().partition("x")
    if not sep or not size.strip().isdigit() or not batch.strip().isdigit() or int(size) < 8 or int(batch) < 1:
        raise argparse.ArgumentTypeError(f"expected SIZExBATCH like 224x1 (size >= 8, batch >= 1), got {text!r}")
    return int(size), int(batch)


def _register(args: argparse.Namespace) -> int:
    from ..search import register

    rec = register(
        args.out,
        args.name,
        storage=args.storage,
        study=args.study,
        trial=args.trial,
        measure=args.measure or (),
        registry=args.registry,
        overwrite=args.overwrite,
    )
    s = rec["search"]
    print(f"registered {rec['name']} (trial {s['trial']}, accuracy {s['accuracy']:.2f}) in {rec['registry']}")
    print(f"channels {'-'.join(map(str, rec['channels']))}")
    for lat in rec["latencies"]:
        print(
            f"latency {lat['runtime']} {lat['precision']} {lat['image_size']} px batch {lat['batch']}: "
            f"{lat['median_ms']:.3f} ms (IQR {lat['iqr_ms'] or 0:.3f}) on {lat['cpu']} ({lat['when']})"
        )
    return 0


def add_parsers(sub: argparse._SubParsersAction) -> None:
    from ..search.config import SearchConfig

    p = sub.add_parser("search", help="channel-configuration search on Optuna (paper Sec. 4)")
    ss = p.add_subparsers(dest="search_command", metavar="{run,report,register}")
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

    g = ss.add_parser(
        "register", help="register a search's pick as a named model (plan, measured latencies, recipe) for the zoo"
    )
    g.add_argument("--out", required=True, help="the search folder")
    g.add_argument("--name", default=None, help="model name (default: rexnet_lat_<cpu>_<runtime>)")
    g.add_argument("--storage", default=None, help="SQLAlchemy URL (default: sqlite:///OUT/search.db)")
    g.add_argument("--study", default=None, help="study name (default: the only one in the storage)")
    g.add_argument("--trial", type=int, default=None, help="trial number (default: the most accurate finished one)")
    g.add_argument(
        "--measure",
        type=_size_batch,
        action="append",
        metavar="SIZExBATCH",
        help="also measure the latency at this size and batch now, e.g. 224x1 (repeatable)",
    )
    g.add_argument(
        "--registry", default=None, help="registry file (default: $REXNET_MODELS or ~/.config/rexnet/models.json)"
    )
    g.add_argument("--overwrite", action="store_true", help="replace a user model of the same name")
    g.set_defaults(func=_register)
