"""``rexnet export NAME --format onnx|openvino|torchscript --out PATH`` and ``rexnet bench --out DIR``."""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

from ..data import data_help
from ..deploy import EXPORT_FORMATS, ONNX_OPSET, TINY, BenchConfig, export_model, run_bench
from ..deploy.bench import passive_omp_env
from ..deploy.bench_report import summary_table
from .shell import call_with_args


def _export(args: argparse.Namespace) -> int:
    res = call_with_args(export_model, args, verify=not args.no_verify)
    extra = f", opset {res.opset}" if res.opset else ""
    agree = (
        ""
        if res.top1_agreement is None
        else (f", cosine >= {res.cosine_min:.5f}, top-1 agreement {100 * res.top1_agreement:.1f}%")
    )
    print(
        f"wrote {res.path} ({res.format} {res.precision}{extra}); max |diff| vs PyTorch eager: "
        f"{res.max_abs_diff:.3g}{agree} on inputs {res.check_shapes}"
    )
    return 0


def _bench(args: argparse.Namespace) -> int:
    env = passive_omp_env()
    if env is not None and not args.allow_spinning:
        # OMP_WAIT_POLICY is read when torch loads: run again with it set (see passive_omp_env)
        sys.stdout.flush()
        os.execve(sys.executable, [sys.executable, "-m", "rexnet", *sys.argv[1:]], env)
    from .._config import flag_overrides

    overrides = flag_overrides(args)
    if args.checkpoint:  # the run's model, size and data, unless a flag says otherwise
        from ..deploy.facts import bench_defaults

        taken = {k: v for k, v in bench_defaults(args.checkpoint).items() if k not in overrides}
        if taken:
            print(f"from {args.checkpoint}: " + ", ".join(f"{k} {v}" for k, v in taken.items()) + " (flags override)")
        overrides = {**taken, **overrides}
    cfg = (TINY if args.tiny else BenchConfig()).replace(**overrides)
    files = [(f, "onnxruntime") for f in args.onnx_file] + [(f, "openvino") for f in args.openvino_file]
    res = run_bench(cfg, args.out, checkpoint=args.checkpoint, overwrite=args.overwrite, files=files)
    print(summary_table(res))
    m = res["machine"]
    print(
        f"CPU: {m['cpu']} ({m['threads']} threads); peak GMAC/s "
        + ", ".join(f"{k} {v:.0f}" for k, v in m["peak_gmacs"].items())
        + f" = {m['peak_how']}"
    )
    for label, batch in (("throughput", cfg.batch_throughput), ("latency", cfg.batch_latency)):
        b = res["ratios"].get("best_ours_vs_best_peer", {}).get(label)
        if b:
            print(f"best ours / best peer at batch {batch}: {b['ratio']:.2f}x ({b['ours']} vs {b['peer']})")
    print(f"wrote {args.out}/bench.json, bench.md, latency_vs_macs.png ({res['seconds']} s)")
    return 0


def _out_kind(fmt: Any) -> str:
    return f"folder or its *{fmt.files[-1]}" if fmt.suffix == "/" else f"*{fmt.suffix}"


def add_parsers(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "export",
        help="export a model to " + ", ".join(EXPORT_FORMATS) + " and check it against PyTorch",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="formats:\n" + "\n".join(f"  {n:<18} {f.description}" for n, f in EXPORT_FORMATS.items()),
    )
    p.add_argument("name", help="model name (see 'rexnet models'), or a training run folder / checkpoint")
    p.add_argument(
        "--checkpoint",
        default=None,
        help="run folder, training checkpoint or weights file for NAME (default: random weights)",
    )
    p.add_argument("--format", choices=list(EXPORT_FORMATS), default="onnx", help="output format (default: onnx)")
    p.add_argument(
        "-o",
        "--out",
        required=True,
        help="output " + ", ".join(f"{n}: {_out_kind(f)}" for n, f in EXPORT_FORMATS.items()),
    )
    precisions = list(dict.fromkeys(x for f in EXPORT_FORMATS.values() for x in f.precisions))
    p.add_argument(
        "--precision",
        choices=precisions,
        default=None,
        help="; ".join(f"{n}: {', '.join(f.precisions)}" for n, f in EXPORT_FORMATS.items())
        + " (the first is the default; int8 needs --calib-data)",
    )
    p.add_argument(
        "--calib-data",
        default=None,
        help=f"int8 calibration images: {data_help()} (default: the data the run was trained on)",
    )
    p.add_argument("--calib-images", type=int, default=256, help="calibration images (default: 256)")
    p.add_argument("--image-size", type=int, default=None, help="trace/check input size (default: the model's)")
    p.add_argument("--opset", type=int, default=ONNX_OPSET, help=f"ONNX opset (default: {ONNX_OPSET})")
    p.add_argument("--no-verify", action="store_true", help="skip the onnxruntime/OpenVINO/TorchScript check")
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="replace existing files at --out (and its .json sidecar) that this run did not write",
    )
    p.set_defaults(func=_export)

    p = sub.add_parser(
        "bench", help="side-by-side CPU benchmark vs timm (every runtime) and torchvision (JSON + Markdown + plot)"
    )
    p.add_argument("-o", "--out", required=True, help="output folder for bench.json, bench.md, latency_vs_macs.png")
    p.add_argument("--tiny", action="store_true", help="smoke-test configuration (64px, no compile, 2 rounds)")
    p.add_argument(
        "--checkpoint",
        default=None,
        help="weights for our model: a run folder or checkpoint from 'rexnet train' (its model, image size and "
        "data become the defaults of -m, --image-size and --calib-data), or a weights file",
    )
    p.add_argument("--overwrite", action="store_true", help="replace bench.json/.md/.png in --out from an earlier run")
    p.add_argument(
        "--onnx-file",
        action="append",
        default=[],
        metavar="FILE",
        help="also time this .onnx file you exported (repeatable; its recorded size and model are used)",
    )
    p.add_argument(
        "--openvino-file",
        action="append",
        default=[],
        metavar="XML",
        help="also time this OpenVINO .xml you exported (repeatable; its recorded size and model are used)",
    )
    from .._config import add_flags

    group = p.add_argument_group("benchmark settings")
    add_flags(group, BenchConfig, alt_defaults=("--tiny", TINY), aliases={"model": ["-m"]}, skip=("onnx", "openvino"))
    for field, files, what in (
        ("onnx", "onnx_file", "onnxruntime paths"),
        ("openvino", "openvino_file", "OpenVINO paths"),
    ):
        suffix = ".onnx" if field == "onnx" else ".xml"
        group.add_argument(
            f"--{field}",
            f"--no-{field}",
            dest=f"cfg_{field}",
            default=None,
            files_dest=files,
            metavar="FILE",
            action=_SwitchOrFile,
            help=f"--{field}/--no-{field}: include/leave out the {what} (default: include); --{field} FILE: "
            f"also time this {suffix} file you exported, as --{field}-file",
        )
    p.add_argument(
        "--allow-spinning",
        action="store_true",
        help="keep OpenMP busy-waiting (default: re-run with OMP_WAIT_POLICY=PASSIVE)",
    )
    p.set_defaults(func=_bench)


class _SwitchOrFile(argparse.Action):
    """``--onnx`` / ``--no-onnx`` switch a config field; ``--onnx FILE`` appends FILE to ``files_dest``."""

    def __init__(self, option_strings: list[str], dest: str, files_dest: str, **kwargs: Any) -> None:
        self.files_dest = files_dest
        super().__init__(option_strings, dest, nargs="?", **kwargs)

    def __call__(self, parser: Any, namespace: argparse.Namespace, value: Any, option: str | None = None) -> None:
        if option is not None and option.startswith("--no-"):
            if value is not None:
                parser.error(f"{option} takes no value, got {value!r}")
            setattr(namespace, self.dest, False)
        elif value is None:
            setattr(namespace, self.dest, True)
        else:
            setattr(namespace, self.files_dest, [*(getattr(namespace, self.files_dest, None) or []), value])


def eval_exported(args: argparse.Namespace) -> int:
    """``rexnet eval -c FILE [--runtime R]``: evaluate an exported model (called from cli/train.py)."""
    from ..data.evaluation import topk_label
    from ..deploy.runtime import evaluate_exported
    from ..train.outputs import eval_output_paths, write_eval_outputs

    overwrite = getattr(args, "overwrite", False)
    eval_output_paths(args.out, args.confusion, overwrite=overwrite)  # a path in the way fails before the work
    res = call_with_args(evaluate_exported, args, path=args.checkpoint)
    print(
        f"{res['model'] or args.checkpoint} ({res['runtime']}, {res['precision']}) on {res['data']} {res['split']} "
        f"({res['count']} images): top-1 {res['top1']:.2f}%{topk_label(res)}  loss {res['loss']:.4f}"
    )
    print_per_class(res, args.per_class)
    json_path, png = write_eval_outputs(res, args.out, args.confusion, overwrite=overwrite)
    if json_path or png:
        print("wrote " + " and ".join(str(p) for p in (json_path, png) if p))
    return 0


#: ``eval`` prints the per-class table unasked up to this many classes (``--per-class`` for more).
PER_CLASS_ROWS = 20


def print_per_class(res: dict[str, Any], show: bool) -> None:
    """Each class's images, precision and recall: unasked up to :data:`PER_CLASS_ROWS` classes, else with
    ``--per-class`` (``show``)."""
    from ..train.outputs import per_class_table

    if show or len(res["class_names"]) <= PER_CLASS_ROWS:
        print(per_class_table(res))


def predict_exported(args: argparse.Namespace) -> int:
    """``rexnet predict IMAGES -c FILE [--runtime R]``: an exported model (called from cli/train.py)."""
    from .._files import check_output
    from ..deploy.runtime import predict_exported as run
    from ..train.outputs import write_predictions

    out, overwrite = getattr(args, "out", None), getattr(args, "overwrite", False)
    if out:
        check_output(out, overwrite=overwrite, what="predictions file (-o)")
    res = call_with_args(run, args, path=args.checkpoint)
    if out:
        write_predictions(res, out, overwrite=overwrite)
    return print_predictions(res, as_json=args.json, out=out)


def print_predictions(res: list[dict[str, Any]], *, as_json: bool, out: str | None) -> int:
    """Print ``predict``'s results (JSON, or one line per image); the exit code: 1 if an image failed."""
    if as_json:
        print(json.dumps(res, indent=2))
    else:
        for r in res:
            if "error" in r:
                print(f"{r['image']}: error: {r['error']}")
            else:
                print(f"{r['image']}: " + ", ".join(f"{t['class']} {100 * t['prob']:.1f}%" for t in r["top"]))
    if out:
        print(f"wrote {out}")
    return 1 if any("error" in r for r in res) else 0
