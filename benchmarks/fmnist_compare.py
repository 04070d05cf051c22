"""ReXNet against MobileNetV2 at equal cost on Fashion-MNIST (paper §5's claim on a real benchmark).

Usage:
    python benchmarks/fmnist_compare.py [--seeds 0 1 2] [--preset fashion-short] [--epochs 8] [--lr LR]
        [--train-limit 12000] [--out benchmarks/results/fmnist] [--runs runs/fmnist_compare] [--models NAME ...]

Trains every model with one recipe (``--preset``, default ``fashion-short``, with the given epochs and
training subset),
``--seeds`` times each, seeds interleaved so a partial run is balanced. Each finished run is read
back, never redone; an interrupted one resumes from its checkpoint. After every run the table is
rewritten: ``compare.json`` and ``compare.md`` in ``--out`` (params, MACs at 32 px, train img/s,
validation and test top-1 as mean ± std over seeds, and the rank statistics of the best
checkpoint's pooled final features on the first 512 validation images, for the rank-vs-accuracy
figure). Validation chooses the checkpoint; the test split is only reported.

The models: ``mobilenetv2_100``; ``rexnet_mbv2macs``, the widest ReXNet whose MACs at 32 px do not
exceed MobileNetV2's (the budget solver); ``rexnet_100``; ``rexnet_lite_100``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import sys
import time
from pathlib import Path

import torch

from rexnet._device import cpu_model
from rexnet.data import build_datasets
from rexnet.model import RexNet
from rexnet.plan import count_macs, count_params, rexnet_plan
from rexnet.plan.budget import solve_for_budget
from rexnet.train import TrainConfig, train
from rexnet.train.checkpoint import load_checkpoint
from rexnet.train.outputs import write_json
from rexnet.zoo import get_plan

sys.path.insert(0, str(Path(__file__).resolve().parent))
from fmnist_table2 import FEATURE_IMAGES, pooled_feature_stats  # noqa: E402

IMAGE_SIZE, NUM_CLASSES = 32, 10


def model_specs() -> dict[str, dict]:
    """name -> plan, the registered name to build (or None: built from the plan), and a note."""
    mbv2_macs = count_macs(get_plan("mobilenetv2_100"), IMAGE_SIZE, NUM_CLASSES)
    sol = solve_for_budget(lambda w: rexnet_plan(w), macs=mbv2_macs, image_size=IMAGE_SIZE, num_classes=NUM_CLASSES)
    specs = {
        "mobilenetv2_100": dict(plan=get_plan("mobilenetv2_100"), name="mobilenetv2_100", note="baseline"),
        "rexnet_mbv2macs": dict(plan=sol.plan, name=None, note=f"ReXNet width {sol.value:.3f}: MobileNetV2's MACs"),
        "rexnet_100": dict(plan=get_plan("rexnet_100"), name="rexnet_100", note="paper width 1.0"),
        "rexnet_lite_100": dict(plan=get_plan("rexnet_lite_100"), name="rexnet_lite_100", note="lite 1.0"),
    }
    for s in specs.values():
        s["macs"] = count_macs(s["plan"], IMAGE_SIZE, NUM_CLASSES)
        s["params"] = count_params(s["plan"], NUM_CLASSES)
    return specs


def run_one(label: str, spec: dict, seed: int, args: argparse.Namespace) -> dict:
    out = Path(args.runs) / f"{label}-seed{seed}"
    summary = out / "summary.json"
    if summary.is_file() and json.loads(summary.read_text()).get("status") == "completed":
        return json.loads(summary.read_text())
    cfg = TrainConfig.preset(
        args.preset,
        model=spec["name"] or "rexnet_100",
        seed=seed,
        epochs=args.epochs,
        train_limit=args.train_limit,
        out=str(out),
        progress=False,
        tensorboard=False,
        lr=args.lr,
    )
    resume = (out / "config.json").is_file()
    torch.manual_seed(seed)
    model = None if spec["name"] else RexNet(spec["plan"], num_classes=NUM_CLASSES, drop_rate=cfg.dropout)
    t = time.time()
    res = train(cfg, resume=resume, model=model)
    if res.status != "completed":  # Ctrl-C / SIGTERM: stop here; the next start resumes this run
        raise SystemExit(f"{label} seed {seed}: {res.status}; rerun the same command to resume")
    logging.info(
        "%s seed %d: val %.2f test %s in %.0fs",
        label,
        seed,
        res.best_top1,
        res.metrics.get("test_top1"),
        time.time() - t,
    )
    return json.loads(summary.read_text())


def best_feature_stats(label: str, spec: dict, seed: int, args: argparse.Namespace, images: torch.Tensor) -> dict:
    model = RexNet(spec["plan"], num_classes=NUM_CLASSES)
    model.load_state_dict(load_checkpoint(Path(args.runs) / f"{label}-seed{seed}" / "checkpoints" / "best.pt")["model"])
    return pooled_feature_stats(model, images)


def _mean_std(xs: list[float]) -> dict | None:
    if not xs:
        return None
    return dict(
        mean=round(statistics.fmean(xs), 2), std=round(statistics.stdev(xs), 2) if len(xs) > 1 else None, n=len(xs)
    )


def _fmt(ms: dict | None) -> str:
    if ms is None:
        return "–"
    return f"{ms['mean']:.2f} ± {ms['std']:.2f}" if ms["std"] is not None else f"{ms['mean']:.2f} (1 seed)"


def write_table(specs: dict, results: dict, args: argparse.Namespace) -> None:
    rows = {}
    for label, spec in specs.items():
        runs = results.get(label, [])
        rows[label] = dict(
            note=spec["note"],
            params_m=round(spec["params"] / 1e6, 3),
            macs_m=round(spec["macs"] / 1e6, 2),
            seeds=[r["seed"] for r in runs],
            train_img_s=_mean_std([r["images_per_sec"] for r in runs]),
            val_top1=_mean_std([r["best_top1"] for r in runs]),
            test_top1=_mean_std([r["test_top1"] for r in runs]),
            nuclear_norm=_mean_std([r["nuclear_norm"] for r in runs]),
            nuclear_norm_normalized=_mean_std([r["nuclear_norm_normalized"] for r in runs]),
            runs=runs,
        )
    meta = dict(
        recipe=dict(
            preset=args.preset, epochs=args.epochs, train_limit=args.train_limit, image_size=IMAGE_SIZE, lr=args.lr
        ),
        cpu=f"{cpu_model()}, {len(os.sched_getaffinity(0))} cores",
        torch=torch.__version__,
        updated=time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        command="python benchmarks/fmnist_compare.py " + " ".join(sys.argv[1:]),
    )
    write_json(dict(meta=meta, models=rows), Path(args.out) / "compare.json")
    lines = [
        f"Recipe: `{args.preset}` preset{f', peak LR {args.lr}' if args.lr else ''}, {args.epochs} epochs, "
        f"training subset {args.train_limit or 'all 55,000'}, "
        f"{IMAGE_SIZE} px; {meta['cpu']}; updated {meta['updated']}.",
        "",
        "| model | params (M) | MACs @32 px (M) | train img/s | val top-1 (%) | test top-1 (%) "
        "| nuclear norm / s_max | seeds |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for label, r in rows.items():
        ips = f"{r['train_img_s']['mean']:.0f}" if r["train_img_s"] else "–"
        lines.append(
            f"| {label} ({r['note']}) | {r['params_m']:.3f} | {r['macs_m']:.2f} | {ips} | "
            f"{_fmt(r['val_top1'])} | {_fmt(r['test_top1'])} | {_fmt(r['nuclear_norm_normalized'])} | "
            f"{','.join(map(str, r['seeds'])) or '–'} |"
        )
    tmp = Path(args.out) / ".compare.md.tmp"
    tmp.write_text("\n".join(lines) + "\n")
    os.replace(tmp, Path(args.out) / "compare.md")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="*", default=[0, 1, 2])
    ap.add_argument("--preset", default="fashion-short", help="TrainConfig preset (default: fashion-short)")
    ap.add_argument("--epochs", type=int, default=8)
    ap.add_argument("--lr", type=float, default=None, help="peak LR for every model (default: the preset's rule)")
    ap.add_argument("--train-limit", type=int, default=12000, help="training subset (0: all 55,000)")
    ap.add_argument("--models", nargs="*", default=None, help="subset of the models (default: all four)")
    ap.add_argument("--out", default="benchmarks/results/fmnist")
    ap.add_argument("--runs", default="runs/fmnist_compare")
    args = ap.parse_args()
    args.train_limit = args.train_limit or None
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    specs = model_specs()
    if args.models:
        specs = {k: v for k, v in specs.items() if k in args.models}
    val = build_datasets("fashion-mnist", IMAGE_SIZE, train=False, model="rexnet_100").val
    images = torch.stack([val[i][0] for i in range(FEATURE_IMAGES)])
    results: dict[str, list[dict]] = {}
    for seed in args.seeds:
        for label, spec in specs.items():
            s = run_one(label, spec, seed, args)
            results.setdefault(label, []).append(
                dict(
                    seed=seed,
                    best_top1=s["best_top1"],
                    test_top1=s.get("test_top1"),
                    images_per_sec=statistics.fmean(h["images_per_sec"] for h in _history(args, label, seed)),
                    total_seconds=round(s["total_seconds"], 1),
                    **best_feature_stats(label, spec, seed, args, images),
                )
            )
            write_table(specs, results, args)


def _history(args: argparse.Namespace, label: str, seed: int) -> list[dict]:
    path = Path(args.runs) / f"{label}-seed{seed}" / "metrics.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


if __name__ == "__main__":
    main()
