"""``rexnet rank study|paper-view|profile|verify``: thin shells over :mod:`rexnet.rank` (and the Table-2 recipe).

Each command's flags are generated from its options config below (and ``rank study``'s protocol flags from
:class:`~rexnet.rank.Protocol`), so every number is checked for type and range before any work, with the
flag named in the message. The pre-1.0 spellings ``rexnet rank-study``, ``rank-paper-view``, ``rank-profile``
and ``rank-verify`` stay as hidden aliases of the same commands.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field, fields
from typing import Any, Literal

from .._config import Config, add_flags, flag_overrides
from .._env import available_cores
from ..data import data_help
from ..errors import InputError
from ..rank import BLOCKS, PAPER_ACTIVATIONS, PRESETS

_DEFAULT_BLOCKS = ",".join(BLOCKS)
_DEFAULT_ACTS = ",".join(PAPER_ACTIVATIONS)
#: ``dest`` prefixes of the generated flags: the command's options and the protocol's.
_OPT, _PROTO = "opt_", "proto_"
_MAX_SEED = 2**32 - 1
_SHORT = {"networks": ["-n"], "workers": ["-j"], "batch_size": ["-b"]}


def _out(help_: str) -> Any:
    return field(default=None, metadata={"help": help_, "required": True})


def _seed(help_: str = "seed") -> Any:
    return field(default=0, metadata={"help": help_, "min": 0, "max": _MAX_SEED})


def _workers(help_: str) -> Any:
    return field(
        default=None,
        metadata={"help": help_, "min": 1, "max": available_cores, "why": "the cores this process may use"},
    )


@dataclass(frozen=True)
class StudyOptions(Config):
    """``rank study``."""

    kind = "rank study option"
    out: str | None = _out("run folder (resumed if it holds the same config)")
    blocks: str = field(default=_DEFAULT_BLOCKS, metadata={"help": "comma list"})
    activations: str = field(
        default=_DEFAULT_ACTS, metadata={"help": "comma list; rexnet names or torch.nn class names like Mish"}
    )
    ratios: str | None = field(
        default=None,
        metadata={"help": "dimension ratios d_in/d_out in (0,1] (None: 0.1,0.2,...,1.0; grid: 0.1,0.2,0.3,0.5,1.0)"},
    )
    networks: int | None = field(
        default=None, metadata={"help": "networks per point (None: 1000; grid: 30)", "min": 1, "max": 10_000_000}
    )
    seed: int = _seed()
    protocol: str = field(
        default="default",
        metadata={
            "help": f"preset: {', '.join(PRESETS)} (see docs/rank_study.md); or 'grid' to sweep protocols and "
            "score them against the paper's Fig. 1"
        },
    )
    estimators: str | None = field(
        default=None,
        metadata={
            "help": "grid mode: estimators to score (None: matrix_rank,rtol:1e-3,rtol:1e-2,rtol:3e-2,energy:0.99,erank)"
        },
    )
    workers: int | None = _workers("parallel processes (None: 2 on >= 2 cores for runs over 20,000 networks, else 1)")
    progress: bool = field(default=True, metadata={"help": "progress bar"})
    plot: bool = field(default=True, metadata={"help": "draw rank_study.png"})


@dataclass(frozen=True)
class PaperViewOptions(Config):
    """``rank paper-view``."""

    kind = "rank paper-view option"
    out: str | None = _out("output folder (its study sub-folders are resumed)")
    ab_protocol: str = field(default="default", metadata={"help": "preset for panels (a)/(b)"})
    cd_protocol: str | None = field(
        default=None,
        metadata={"help": "preset for panels (c)/(d) (None: the best IB preset, ib_loose; see docs/rank_study.md)"},
    )
    networks: int = field(default=1000, metadata={"help": "networks per point", "min": 1, "max": 10_000_000})
    ratios: str | None = field(default=None, metadata={"help": "dimension ratios (None: 0.1,0.2,...,1.0)"})
    seed: int = _seed()
    workers: int | None = _workers("parallel processes (None: as rank study)")
    ab_run: str | None = field(
        default=None, metadata={"help": "a finished rank-study folder to read (a)/(b) from, no computing"}
    )
    cd_run: str | None = field(
        default=None, metadata={"help": "a finished rank-study folder to read (c)/(d) from, no computing"}
    )
    progress: bool = field(default=True, metadata={"help": "progress bar"})


@dataclass(frozen=True)
class ProfileOptions(Config):
    """``rank profile``."""

    kind = "rank profile option"
    model: str = field(
        default="",
        metadata={
            "help": "rexnet registry name (rexnet_100) or tv:NAME for torchvision (tv:mobilenet_v2)",
            "positional": True,
        },
    )
    out: str | None = _out("output folder")
    compare: str | None = field(default=None, metadata={"help": "a second model to profile side by side"})
    checkpoint: str | None = field(default=None, metadata={"help": "weights for MODEL (None: random init)"})
    batch_size: int = field(default=32, metadata={"help": "input images", "min": 1, "max": 1 << 16})
    image_size: int = field(default=224, metadata={"help": "input side", "min": 1, "max": 1 << 14})
    layers: str | None = field(
        default=None,
        metadata={"help": "comma list of module names or patterns (None: every block output and the final features)"},
    )
    estimator: str = field(default="matrix_rank", metadata={"help": "rank estimator"})
    flatten: Literal["spatial", "pool"] = field(
        default="spatial", metadata={"help": "spatial: C x (B*H*W); pool: C x B after global pooling"}
    )
    seed: int = _seed("seed of the init and the input batch")
    bn: Literal["auto", "train", "eval"] = field(
        default="auto",
        metadata={
            "help": "BN statistics: batch (train) or running (eval); auto = train for random init, "
            "eval with --checkpoint"
        },
    )


@dataclass(frozen=True)
class VerifyOptions(Config):
    """``rank verify``."""

    kind = "rank verify option"
    out: str | None = _out("output folder")
    train_epochs: int = field(
        default=0,
        metadata={
            "help": "epochs of training on --data for the accuracy column (0 = rank columns only)",
            "min": 0,
            "max": 10_000,
        },
    )
    data: str = field(default="digits", metadata={"help": f"training data: {data_help()}"})
    train_limit: int | None = field(
        default=None, metadata={"help": "train on a fixed subset of this many images", "min": 1}
    )
    image_size: int = field(default=32, metadata={"help": "input side", "min": 8, "max": 1 << 14})
    seeds: int = field(default=3, metadata={"help": "models per variant, averaged (paper: 3)", "min": 1, "max": 1000})
    batch_size: int = field(default=256, metadata={"help": "batch for the rank measurement", "min": 1, "max": 1 << 16})
    progress: bool = field(default=True, metadata={"help": "progress output"})


def _options_of(cls: type[Config], args: argparse.Namespace) -> Any:
    return cls.from_dict(flag_overrides(args, _OPT))


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

    o = _options_of(StudyOptions, args)
    blocks, acts = _names(o.blocks), _names(o.activations)
    if o.protocol == "grid":
        from ..rank.grid import (
            DEFAULT_GRID,
            DEFAULT_GRID_ESTIMATORS,
            DEFAULT_GRID_RATIOS,
            format_grid,
            run_protocol_grid,
        )

        grid = _options(args.grid, multi=True) or DEFAULT_GRID
        rows = run_protocol_grid(
            o.out,
            grid=grid,
            estimators=_names(o.estimators) if o.estimators else DEFAULT_GRID_ESTIMATORS,
            base=get_protocol("default", **_protocol_options(args)),
            blocks=blocks,
            activations=acts,
            ratios=_floats(o.ratios) if o.ratios else DEFAULT_GRID_RATIOS,
            networks=30 if o.networks is None else o.networks,
            seed=o.seed,
            progress=o.progress,
        )
        print(format_grid(rows))
        print(f"wrote {o.out}/grid.csv")
        return 0
    from ..rank.study import DEFAULT_RATIOS

    res = run_rank_study(
        o.out,
        blocks=blocks,
        activations=acts,
        ratios=_floats(o.ratios) if o.ratios else DEFAULT_RATIOS,
        networks=1000 if o.networks is None else o.networks,
        seed=o.seed,
        protocol=get_protocol(o.protocol, **_protocol_options(args)),
        workers=o.workers,
        progress=o.progress,
        plot=o.plot,
    )
    print(res.summary())
    print(
        f"computed in {res.seconds:.1f} s; wrote {o.out}/rank_study.csv, config.json"
        + ("" if not o.plot else ", rank_study.png")
        + ", summary.txt"
    )
    return 0


def _run_options(o: Config, run: Any, **converted: Any) -> Any:
    """``run(**o)``: every option is a keyword of the function it shells (``out`` is its ``out_dir``);
    ``converted`` replaces the options given as text (comma lists) by their parsed values."""
    kwargs = {**{f.name: getattr(o, f.name) for f in fields(o)}, **converted}
    return run(out_dir=kwargs.pop("out"), **kwargs)


def _paper_view(args: argparse.Namespace) -> int:
    from ..rank.paper_view import BEST_IB_PRESET, run_paper_view
    from ..rank.study import DEFAULT_RATIOS

    o = _options_of(PaperViewOptions, args)
    ratios = _floats(o.ratios) if o.ratios else DEFAULT_RATIOS
    view = _run_options(o, run_paper_view, cd_protocol=o.cd_protocol or BEST_IB_PRESET, ratios=ratios)
    print(view.table())
    print(f"wrote {o.out}/paper_view.png, paper_view.csv, paper_view.json")
    return 0


def _profile(args: argparse.Namespace) -> int:
    from ..rank.report import run_rank_profile

    o = _options_of(ProfileOptions, args)
    rep = _run_options(o, run_rank_profile, layers=_names(o.layers) if o.layers else None)
    print(rep.table())
    print(f"wrote {o.out}/rank_profile.csv, rank_profile.json, rank_profile.png")
    return 0


def _verify(args: argparse.Namespace) -> int:
    from ..experiments.table2 import run_verification

    rep = _run_options(o := _options_of(VerifyOptions, args), run_verification)
    print(rep.table())
    print(f"wrote {o.out}/verification.csv")
    return 0


def _study_args(p: argparse.ArgumentParser) -> None:
    add_flags(p, StudyOptions, aliases=_SHORT, prefix=_OPT)
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
    from ..rank import Protocol

    g = p.add_argument_group("protocol options (change the --protocol preset; default: the 'default' preset's)")
    add_flags(g, Protocol, prefix=_PROTO)


def _options_args(cls: type[Config]) -> Any:
    """The parser filler of a command whose flags are all its options' fields."""
    return lambda p: add_flags(p, cls, aliases=_SHORT, prefix=_OPT)


# name -> (help, arguments, handler), in help order
_COMMANDS = {
    "study": ("random-layer rank study (CVPR'21 Fig. 1), or the protocol grid", _study_args, _study),
    "paper-view": (
        "composite Figure 1: (a)/(b) with the default protocol, (c)/(d) with the best IB preset",
        _options_args(PaperViewOptions),
        _paper_view,
    ),
    "profile": (
        "per-layer rank of a model's features (any rexnet or torchvision model)",
        _options_args(ProfileOptions),
        _profile,
    ),
    "verify": (
        "Table-2 verification: 2-IB proxies, MACs, rank and nuclear norm",
        _options_args(VerifyOptions),
        _verify,
    ),
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
