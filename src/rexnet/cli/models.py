"""``rexnet models``, ``rexnet info NAME``, ``rexnet convert SRC DST``."""

from __future__ import annotations

import argparse
import json

from .._table import format_table
from ..plan import PLAN_COLUMNS, plan_cost, plan_rows
from ..zoo import MODEL_TABLE_COLUMNS, convert_checkpoint, get_model_info, model_table


def _models(args: argparse.Namespace) -> int:
    rows = model_table(args.pattern, args.image_size)
    if args.json:
        print(json.dumps([dict(zip(MODEL_TABLE_COLUMNS, r)) for r in rows], indent=2))
    else:
        print(format_table(MODEL_TABLE_COLUMNS, rows, markdown=args.markdown))
    return 0


def _info(args: argparse.Namespace) -> int:
    info = get_model_info(args.name)
    plan = info.plan()
    cost = plan_cost(plan, args.image_size)
    print(f"{info.name}: {plan.family} {dict(plan.params)}")
    print(
        f"params {cost.params:,} ({cost.params / 1e6:.3f} M), MACs {cost.macs:,} ({cost.macs / 1e9:.3f} G) "
        f"at {args.image_size}x{args.image_size}"
    )
    print(format_table(PLAN_COLUMNS, plan_rows(plan, args.image_size), markdown=args.markdown))
    return 0


def _convert(args: argparse.Namespace) -> int:
    out = convert_checkpoint(args.src, args.dst, model_name=args.model, overwrite=args.overwrite, to=args.to)
    print(f"wrote {out}")
    return 0


def add_parsers(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("models", help="list registered models with computed vs paper params/MACs")
    p.add_argument("pattern", nargs="?", default="*", help="shell-style filter, e.g. 'rexnet_lite_*' (default: all)")
    p.add_argument("--image-size", type=int, default=224, help="input size for MACs (default: 224)")
    p.add_argument("--markdown", action="store_true", help="print a Markdown table")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=_models)

    p = sub.add_parser("info", help="per-block table of a model's channel plan")
    p.add_argument("name", help="model name, see 'rexnet models' (timm's arch.tag spelling works too)")
    p.add_argument("--image-size", type=int, default=224, help="input size (default: 224)")
    p.add_argument("--markdown", action="store_true", help="print a Markdown table")
    p.set_defaults(func=_info)

    p = sub.add_parser("convert", help="convert a checkpoint (official, timm or rexnet layout) to rexnet's or timm's")
    p.add_argument("src", help="input .pth/.safetensors (official, timm or rexnet layout)")
    p.add_argument("dst", help="output .safetensors (or .pth/.pt for torch format)")
    p.add_argument(
        "--overwrite",
        "--force",
        dest="overwrite",
        action="store_true",
        help="replace an existing DST this run did not write (--force is the older spelling)",
    )
    p.add_argument("-m", "--model", default=None, help="variant name (default: guessed from tensor shapes)")
    p.add_argument(
        "--to",
        choices=("ours", "timm"),
        default="ours",
        help="layout written: ours (default; records the plan) or timm (timm.create_model loads it)",
    )
    p.set_defaults(func=_convert)
