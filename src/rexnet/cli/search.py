"""``rexnet search run`` and ``rexnet search report``: the channel-configuration search (paper Sec. 4)."""

from __future__ import annotations

import argparse
import json
import re

from ..errors import RexnetError

_SUFFIX = {"": 1.0, "k": 1e3, "m": 1e6, "g": 1e9}


def parse_count(text: str) -> float:
    """``30M``, ``0.2m``, ``3e7``, ``1.5G`` -> a number."""
    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+(?:e[+-]?[0-9]+)?)\s*([kmgKMG]?)\s*", text)
    if not m:
        raise argparse.ArgumentTypeError(f"expected a count like 30M, 0.2M or 3e7, got {text!r}")
    return float(m.group(1)) * _SUFFIX[m.group(2).lower()]


def _run(args: argparse.Namespace) -> int:
    from ..search import run

    try:
        options = json.loads(args.train_options) if args.train_options else None
    except json.JSONDecodeError as e:
        raise RexnetError(f"--train-options must be a JSON object, got {args.train_options!r}: {e}") from None
    res = run(
        args.out,
        storage=args.storage,
        study=args.study,
        blocks=args.blocks,
        budget_macs=args.budget_macs,
        budget_params=args.budget_params,
        tolerance=args.tolerance,
        trials=args.trials,
        epochs=args.epochs,
        seeds=args.seeds,
        data=args.data,
        image_size=args.image_size,
        sampler=args.sampler,
        objectives=args.objectives,
        prune=args.prune,
        seed=args.seed,
        max_samples=args.max_samples,
        val_samples=args.val_samples,
        threads=args.threads,
        train_options=options,
        heartbeat_interval=args.heartbeat,
        grace_period=args.grace,
        wait=not args.no_wait,
        seed_rules=not args.no_seed_rules,
    )
    c = res.counts
    print(f"study {res.study!r}: {res.finished}/{res.target_trials} slots finished "
          f"(complete {c['COMPLETE']}, pruned {c['PRUNED']}, failed {c['FAIL']}, running {c['RUNNING']}, "
          f"waiting {c['WAITING']}); this worker: {res.ran_here}")
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
    p = sub.add_parser("search", help="channel-configuration search on Optuna (paper Sec. 4)")
    ss = p.add_subparsers(dest="search_command", metavar="{run,report}")
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])

    r = ss.add_parser("run", help="run one search worker (start several with one --storage/--study to share it)")
    r.add_argument("--out", required=True, help="run folder (SQLite database, trials.csv, table3.md, figure2.png)")
    r.add_argument("--storage", default=None,
                   help="SQLAlchemy URL, e.g. postgresql://user@host/db (default: sqlite:///OUT/search.db)")
    r.add_argument("--study", default="rexnet-search", help="study name shared by workers (default: rexnet-search)")
    r.add_argument("--blocks", type=int, default=5, help="inverted bottlenecks d (default: 5)")
    r.add_argument("--budget-macs", type=parse_count, default=None,
                   help="MAC budget at --image-size, e.g. 30M (default: the paper's, 30M/100M/300M for d=5/9/13)")
    r.add_argument("--budget-params", type=parse_count, default=None,
                   help="parameter budget, e.g. 0.2M (default: none)")
    r.add_argument("--tolerance", type=float, default=0.03, help="plans use >= 1-TOL of the budget (default: 0.03)")
    r.add_argument("--trials", type=int, default=20, help="study's total number of trials (default: 20)")
    r.add_argument("--epochs", type=int, default=30, help="epochs per seed (default: 30, the paper's)")
    r.add_argument("--seeds", type=int, default=3, help="seeds averaged per candidate (default: 3, the paper's)")
    r.add_argument("--data", default="digits",
                   help="'digits' (embedded), 'fashion-mnist' or a CIFAR-10/100 folder (default: digits)")
    r.add_argument("--image-size", type=int, default=32, help="proxy input size (default: 32)")
    r.add_argument("--sampler", choices=("random", "tpe", "nsga2"), default="random", help="(default: random)")
    r.add_argument("--objectives", choices=("accuracy", "accuracy-macs"), default=None,
                   help="default: accuracy-macs for nsga2, accuracy otherwise")
    r.add_argument("--prune", action="store_true", help="median-prune hopeless trials (single objective)")
    r.add_argument("--seed", type=int, default=None, help="sampler seed; give each worker its own (default: random)")
    r.add_argument("--max-samples", type=int, default=None, help="cut the training set (quick runs; default: all)")
    r.add_argument("--val-samples", type=int, default=None,
                   help="cut the validation split that ranks candidates (default: a quarter of --max-samples, "
                        "else all)")
    r.add_argument("--threads", type=int, default=1, help="torch threads per trial; one worker per core (default: 1)")
    r.add_argument("--train-options", default=None,
                   help='extra TrainConfig fields as JSON, e.g. \'{"batch_size": 64}\'')
    r.add_argument("--heartbeat", type=int, default=10, help="seconds between trial heartbeats (default: 10)")
    r.add_argument("--grace", type=int, default=None,
                   help="seconds before a silent trial is retried (default: 3 beats)")
    r.add_argument("--no-wait", action="store_true", help="exit when no slot is waiting, even if others still run")
    r.add_argument("--no-seed-rules", action="store_true",
                   help="do not put MobileNetV2's staircase and ReXNet's line into the first two slots")
    r.set_defaults(func=_run)

    q = ss.add_parser("report", help="write DIR/trials.csv, DIR/table3.md and DIR/figure2.png for a study")
    q.add_argument("--out", required=True, help="output folder (and default SQLite location)")
    q.add_argument("--storage", default=None, help="SQLAlchemy URL (default: sqlite:///OUT/search.db)")
    q.add_argument("--study", default=None, help="study name (default: the only one in the storage)")
    q.set_defaults(func=_report)
