"""``rexnet rank study|paper-view|profile|verify``: thin shells over :mod:`rexnet.rank` (and the Table-2 recipe).

The pre-1.0 spellings ``rexnet rank-study``, ``rank-paper-view``, ``rank-profile`` and ``rank-verify`` stay as
hidden aliases of the same commands.
"""

from __future__ import annotations

import argparse
from typing import Any

from .._config import add_flags, flag_overrides
from ..data import data_help
from ..errors import InputError
from ..rank import BLOCKS, PAPER_ACTIVATIONS, PRESETS

_DEFAULT_BLOCKS = ",".join(BLOCKS)
_DEFAULT_ACTS = ",".join(PAPER_ACTIVATIONS)
#: ``dest`` prefix of the generated protocol flags.
_PROTO = "proto_"


def _names(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


def _floats(text: str) -> list[float]:
    try:
        return [float(t) for t in _names(text)]
    except ValueError:
        raise InputError(f"expected comma-separated numbers, got {text!r}") from None


def _options(items: list[str] | None, multi: bool = False) -> dict[str, Any]:
    """``KEY=VALUE`` protocol options, each value coerced to its :class:`~rexnet.rank.Protocol` field's type."""
    from .._config import coerce
    from ..rank import Protocol

    out: dict[str, Any] = {}
    for item in items or []:
        key, sep, val = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise InputError(f"expected KEY=VALUE, got {item!r}")
        out[key] = [coerce(Protocol, key, v) for v in _names(val)] if multi else coerce(Protocol, key, val.strip())
    return out


def _protocol_options(args: argparse.Namespace) -> dict[str, Any]:
    """``--set KEY=VALUE`` and the generated protocol flags (``--norm``, ``--d-out-max``, ...); flags win."""
    return {**_options(args.set), **flag_overrides(args, _PROTO)}


def _study(args: argparse.Namespace) -> int:
    from ..rank import get_protocol, run_rank_study

    blocks, acts = _names(args.blocks), _names(args.activations)
    if args.protocol == "grid":
        from ..rank.grid import (
            DEFAULT_GRID,
            DEFAULT_GRID_ESTIMATORS,
            DEFAULT_GRID_RATIOS,
            format_grid,
            run_protocol_grid,
        )

        grid = _options(args.grid, multi=True) or DEFAULT_GRID
        rows = run_protocol_grid(
            args.out,
            grid=grid,
            estimators=_names(args.estimators) if args.estimators else DEFAULT_GRID_ESTIMATORS,
            base=get_protocol("default", **_protocol_options(args)),
            blocks=blocks,
            activations=acts,
            ratios=_floats(args.ratios) if args.ratios else DEFAULT_GRID_RATIOS,
            networks=30 if args.networks is None else args.networks,
            seed=args.seed,
            progress=not args.no_progress,
        )
        print(format_grid(rows))
        print(f"wrote {args.out}/grid.csv")
        return 0
    from ..rank.study import DEFAULT_RATIOS

    res = run_rank_study(
        args.out,
        blocks=blocks,
        activations=acts,
        ratios=_floats(args.ratios) if args.ratios else DEFAULT_RATIOS,
        networks=1000 if args.networks is None else args.networks,
        seed=args.seed,
        protocol=get_protocol(args.protocol, **_protocol_options(args)),
        workers=args.workers,
        progress=not args.no_progress,
        plot=not args.no_plot,
    )
    print(res.summary())
    print(
        f"computed in {res.seconds:.1f} s; wrote {args.out}/rank_study.csv, config.json"
        + ("" if args.no_plot else ", rank_study.png")
        + ", summary.txt"
    )
    return 0


def _paper_view(args: argparse.Namespace) -> int:
    from ..rank.paper_view import BEST_IB_PRESET, run_paper_view
    from ..rank.study import DEFAULT_RATIOS

    view = run_paper_view(
        args.out,
        ab_protocol=args.ab_protocol,
        cd_protocol=args.cd_protocol or BEST_IB_PRESET,
        networks=args.networks,
        ratios=_floats(args.ratios) if args.ratios else DEFAULT_RATIOS,
        seed=args.seed,
        workers=args.workers,
        ab_run=args.ab_run,
        cd_run=args.cd_run,
        progress=not args.no_progress,
    )
    print(view.table())
    print(f"wrote {args.out}/paper_view.png, paper_view.csv, paper_view.json")
    return 0


def _profile(args: argparse.Namespace) -> int:
    from ..rank.report import run_rank_profile

    rep = run_rank_profile(
        args.model,
        args.out,
        compare=args.compare,
        checkpoint=args.checkpoint,
        batch_size=args.batch_size,
        image_size=args.image_size,
        layers=_names(args.layers) if args.layers else None,
        estimator=args.estimator,
        flatten=args.flatten,
        seed=args.seed,
        bn=args.bn,
    )
    print(rep.table())
    print(f"wrote {args.out}/rank_profile.csv, rank_profile.json, rank_profile.png")
    return 0


def _verify(args: argparse.Namespace) -> int:
    from ..train.table2 import run_verification

    rep = run_verification(
        args.out,
        train_epochs=args.train_epochs,
        image_size=args.image_size,
        seeds=args.seeds,
        batch_size=args.batch_size,
        progress=not args.no_progress,
        data=args.data,
        train_limit=args.train_limit,
    )
    print(rep.table())
    print(f"wrote {args.out}/verification.csv")
    return 0


def _study_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", required=True, help="run folder (resumed if it holds the same config)")
    p.add_argument("--blocks", default=_DEFAULT_BLOCKS, help=f"comma list (default: {_DEFAULT_BLOCKS})")
    p.add_argument(
        "--activations",
        default=_DEFAULT_ACTS,
        help=f"comma list; rexnet names or torch.nn class names like Mish (default: {_DEFAULT_ACTS})",
    )
    p.add_argument(
        "--ratios",
        default=None,
        help="dimension ratios d_in/d_out in (0,1] (default: 0.1,0.2,...,1.0; grid: 0.1,0.2,0.3,0.5,1.0)",
    )
    p.add_argument("-n", "--networks", type=int, default=None, help="networks per point (default: 1000; grid: 30)")
    p.add_argument("--seed", type=int, default=0, help="seed (default: 0)")
    p.add_argument(
        "--protocol",
        default="default",
        help=f"preset: {', '.join(PRESETS)} (see docs/rank_study.md); or 'grid' to sweep protocols and "
        "score them against the paper's Fig. 1 (default: default)",
    )
    p.add_argument(
        "--set",
        action="append",
        metavar="KEY=VALUE",
        help="override a protocol option, e.g. --set estimator=rtol:1e-2 --set norm=bn_before",
    )
    p.add_argument(
        "--grid",
        action="append",
        metavar="KEY=V1,V2",
        help="grid mode: an option to sweep (default: input, init, norm over all their values)",
    )
    p.add_argument(
        "--estimators",
        default=None,
        help="grid mode: estimators to score (default: matrix_rank,rtol:1e-3,rtol:1e-2,rtol:3e-2,energy:0.99,erank)",
    )
    p.add_argument(
        "-j",
        "--workers",
        type=int,
        default=None,
        help="parallel processes (default: 2 on >= 2 cores for runs over 20,000 networks, else 1)",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--no-plot", action="store_true", help="skip rank_study.png")
    from ..rank import Protocol

    g = p.add_argument_group("protocol options (change the --protocol preset; default: the 'default' preset's)")
    add_flags(g, Protocol, prefix=_PROTO)


def _paper_view_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", required=True, help="output folder (its study sub-folders are resumed)")
    p.add_argument("--ab-protocol", default="default", help="preset for panels (a)/(b) (default: default)")
    p.add_argument(
        "--cd-protocol",
        default=None,
        help="preset for panels (c)/(d) (default: the best IB preset, ib_loose; see docs/rank_study.md)",
    )
    p.add_argument("-n", "--networks", type=int, default=1000, help="networks per point (default: 1000)")
    p.add_argument("--ratios", default=None, help="dimension ratios (default: 0.1,0.2,...,1.0)")
    p.add_argument("--seed", type=int, default=0, help="seed (default: 0)")
    p.add_argument("-j", "--workers", type=int, default=None, help="parallel processes (default: as rank-study)")
    p.add_argument("--ab-run", default=None, help="a finished rank-study folder to read (a)/(b) from, no computing")
    p.add_argument("--cd-run", default=None, help="a finished rank-study folder to read (c)/(d) from, no computing")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def _profile_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", help="rexnet registry name (rexnet_100) or tv:NAME for torchvision (tv:mobilenet_v2)")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--compare", default=None, help="a second model to profile side by side, same syntax")
    p.add_argument("--checkpoint", default=None, help="weights for MODEL (default: random init)")
    p.add_argument("-b", "--batch-size", type=int, default=32, help="input images (default: 32)")
    p.add_argument("--image-size", type=int, default=224, help="input side (default: 224)")
    p.add_argument(
        "--layers",
        default=None,
        help="comma list of module names or patterns (default: every block output and the final features)",
    )
    p.add_argument("--estimator", default="matrix_rank", help="rank estimator (default: matrix_rank)")
    p.add_argument(
        "--flatten",
        default="spatial",
        choices=("spatial", "pool"),
        help="spatial: C x (B*H*W); pool: C x B after global pooling (default: spatial)",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the init and the input batch (default: 0)")
    p.add_argument(
        "--bn",
        default="auto",
        choices=("auto", "train", "eval"),
        help="BN statistics: batch (train) or running (eval); auto = train for random init, "
        "eval with --checkpoint (default: auto)",
    )


def _verify_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument(
        "--train-epochs",
        type=int,
        default=0,
        help="epochs of training on --data for the accuracy column (default: 0 = rank columns only)",
    )
    p.add_argument("--data", default="digits", help=f"training data: {data_help()} (default: digits)")
    p.add_argument("--train-limit", type=int, default=None, help="train on a fixed subset of this many images")
    p.add_argument("--image-size", type=int, default=32, help="input side (default: 32)")
    p.add_argument("--seeds", type=int, default=3, help="models per variant, averaged (paper: 3; default: 3)")
    p.add_argument("-b", "--batch-size", type=int, default=256, help="batch for the rank measurement (default: 256)")
    p.add_argument("--no-progress", action="store_true", help="no progress output")


# name -> (help, arguments, handler), in help order
_COMMANDS = {
    "study": ("random-layer rank study (CVPR'21 Fig. 1), or the protocol grid", _study_args, _study),
    "paper-view": (
        "composite Figure 1: (a)/(b) with the default protocol, (c)/(d) with the best IB preset",
        _paper_view_args,
        _paper_view,
    ),
    "profile": ("per-layer rank of a model's features (any rexnet or torchvision model)", _profile_args, _profile),
    "verify": ("Table-2 verification: 2-IB proxies, MACs, rank and nuclear norm", _verify_args, _verify),
}


def add_parsers(sub: argparse._SubParsersAction) -> None:
    rank = sub.add_parser(
        "rank",
        help="the rank study (paper Sec. 3): study, paper-view, profile, verify",
        description="The rank study of CVPR'21 Sec. 3.",
    )
    actions = rank.add_subparsers(dest="rank_command", metavar="ACTION")
    rank.set_defaults(func=lambda args: rank.print_help() or 2)
    for name, (text, add_args, handler) in _COMMANDS.items():
        p = actions.add_parser(name, help=text, description=text)
        add_args(p)
        p.set_defaults(func=handler)
        # the old one-word spelling, kept working but not listed (no help= means no entry in the help)
        old = sub.add_parser(f"rank-{name}", description=text)
        add_args(old)
        old.set_defaults(func=handler)
