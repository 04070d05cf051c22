"""The paper's Table 2 on Fashion-MNIST: four cumulative design changes of a two-IB proxy network.

Usage:
    python benchmarks/fmnist_table2.py [--seeds 0 1 2] [--preset fashion-short] [--epochs 5] [--train-limit 8000]
        [--out benchmarks/results/fmnist] [--runs runs/fmnist_table2]

The proxy and the four rows are :mod:`rexnet.experiments.table2`'s (baseline: 1x1 DR 1/20, IB DR
0.22, ReLU6 -> 1x1 DR 1/6 -> IB DR 0.8 -> SiLU after each IB's expansion). Each row is trained with
``--preset`` (default ``fashion-short``; given epochs / training subset) for every seed; finished runs are read back,
interrupted ones resume. Columns: MACs at 32 px, params, validation and test top-1 (best-validation
checkpoint; mean ± std over seeds), and the rank, effective rank and nuclear norm of the pooled
final features of the first 512 validation images (C x B, eval mode), raw and divided by the
largest singular value. ``table2.json`` / ``table2.md`` in ``--out`` are rewritten after each run,
with the paper's direction of each step beside ours.
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import sys
import time
from pathlib import Path

import torch

from rexnet.data import build_datasets
from rexnet.experiments.table2 import PAPER_TABLE2, VARIANTS, proxy_plan
from rexnet.model import RexNet
from rexnet.plan import count_macs, count_params
from rexnet.rank.estimators import feature_stats
from rexnet.train import TrainConfig, train
from rexnet.train.checkpoint import load_checkpoint
from rexnet.train.outputs import write_json

IMAGE_SIZE, NUM_CLASSES, FEATURE_IMAGES = 32, 10, 512


@torch.no_grad()
def pooled_feature_stats(model: torch.nn.Module, images: torch.Tensor) -> dict:
    """Rank statistics of the pooled final features (C x B, eval mode)."""
    model.eval()
    return feature_stats(model.forward_head(model.forward_features(images), pre_logits=True).T)


def run_variant(k: int, seed: int, args: argparse.Namespace, images: torch.Tensor) -> dict:
    name, dr1, drib, act = VARIANTS[k]
    plan = proxy_plan(dr1, drib, act)
    out = Path(args.runs) / f"row{k}-seed{seed}"
    summary = out / "summary.json"
    if not (summary.is_file() and json.loads(summary.read_text()).get("status") == "completed"):
        cfg = TrainConfig.preset(
            args.preset,
            seed=seed,
            epochs=args.epochs,
            train_limit=args.train_limit,
            out=str(out),
            progress=False,
            tensorboard=False,
            model="rexnet_100",
        )
        torch.manual_seed(seed)
        t = time.time()
        res = train(cfg, resume=(out / "config.json").is_file(), model=RexNet(plan, num_classes=NUM_CLASSES))
        if res.status != "completed":  # Ctrl-C / SIGTERM: stop here; the next start resumes this run
            raise SystemExit(f"row {k} seed {seed}: {res.status}; rerun the same command to resume")
        logging.info("row %d seed %d done in %.0fs", k, seed, time.time() - t)
    s = json.loads(summary.read_text())
    model = RexNet(plan, num_classes=NUM_CLASSES)
    model.load_state_dict(load_checkpoint(out / "checkpoints" / "best.pt")["model"])
    return dict(seed=seed, val_top1=s["best_top1"], test_top1=s["test_top1"], **pooled_feature_stats(model, images))


def _ms(xs: list[float]) -> dict:
    return dict(mean=statistics.fmean(xs), std=statistics.stdev(xs) if len(xs) > 1 else None, n=len(xs))


def write_tables(results: dict[int, list[dict]], args: argparse.Namespace) -> None:
    rows = []
    for k, runs in sorted(results.items()):
        name, dr1, drib, act = VARIANTS[k]
        plan = proxy_plan(dr1, drib, act)
        rows.append(
            dict(
                variant=name,
                macs=count_macs(plan, IMAGE_SIZE, NUM_CLASSES),
                params=count_params(plan, NUM_CLASSES),
                paper=dict(zip(("flops_m", "top1", "nuclear_norm"), PAPER_TABLE2[k])),
                runs=runs,
                **{
                    m: _ms([r[m] for r in runs])
                    for m in (
                        "val_top1",
                        "test_top1",
                        "rank",
                        "effective_rank",
                        "nuclear_norm",
                        "nuclear_norm_normalized",
                    )
                },
            )
        )
    meta = dict(
        recipe=dict(
            preset=args.preset,
            epochs=args.epochs,
            train_limit=args.train_limit,
            image_size=IMAGE_SIZE,
            feature_images=FEATURE_IMAGES,
        ),
        updated=time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        torch=torch.__version__,
        command="python benchmarks/fmnist_table2.py " + " ".join(sys.argv[1:]),
    )
    write_json(dict(meta=meta, rows=rows), Path(args.out) / "table2.json")

    def f(ms: dict, d: int = 2) -> str:
        return f"{ms['mean']:.{d}f} ± {ms['std']:.{d}f}" if ms["std"] is not None else f"{ms['mean']:.{d}f}"

    lines = [
        f"Recipe: `{args.preset}` preset, {args.epochs} epochs, training subset {args.train_limit or 'all'}, "
        f"32 px; features of {FEATURE_IMAGES} validation images; updated {meta['updated']}.",
        "",
        "| row | MACs (M) | params (K) | val top-1 | test top-1 | rank | eff. rank | nuclear norm | nuc/s_max "
        "| seeds | paper top-1 / nuc. norm | direction (test top-1 / nuc.) vs paper |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for i, r in enumerate(rows):
        direction = "–"
        if i > 0 and rows[i - 1]["test_top1"]["n"] and r["test_top1"]["n"]:
            d_acc = r["test_top1"]["mean"] - rows[i - 1]["test_top1"]["mean"]
            d_nuc = r["nuclear_norm"]["mean"] - rows[i - 1]["nuclear_norm"]["mean"]
            p_acc = r["paper"]["top1"] - rows[i - 1]["paper"]["top1"]
            p_nuc = r["paper"]["nuclear_norm"] - rows[i - 1]["paper"]["nuclear_norm"]
            direction = (
                f"{d_acc:+.2f} pt ({'same' if d_acc * p_acc > 0 else 'opposite'}) / "
                f"{d_nuc:+.3g} ({'same' if d_nuc * p_nuc > 0 else 'opposite'})"
            )
        lines.append(
            f"| {r['variant']} | {r['macs'] / 1e6:.2f} | {r['params'] / 1e3:.1f} | {f(r['val_top1'])} | "
            f"{f(r['test_top1'])} | {f(r['rank'], 1)} | {f(r['effective_rank'], 1)} | {f(r['nuclear_norm'], 1)} | "
            f"{f(r['nuclear_norm_normalized'], 1)} | {r['test_top1']['n']} | {r['paper']['top1']} / "
            f"{r['paper']['nuclear_norm']} | {direction} |"
        )
    (Path(args.out) / "table2.md").write_text("\n".join(lines) + "\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="*", default=[0, 1, 2])
    ap.add_argument("--preset", default="fashion-short", help="TrainConfig preset (default: fashion-short)")
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--train-limit", type=int, default=8000, help="training subset (0: all 55,000)")
    ap.add_argument("--out", default="benchmarks/results/fmnist")
    ap.add_argument("--runs", default="runs/fmnist_table2")
    args = ap.parse_args()
    args.train_limit = args.train_limit or None
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    Path(args.out).mkdir(parents=True, exist_ok=True)
    val = build_datasets("fashion-mnist", IMAGE_SIZE, train=False, model="rexnet_100").val
    images = torch.stack([val[i][0] for i in range(FEATURE_IMAGES)])
    results: dict[int, list[dict]] = {}
    for seed in args.seeds:
        for k in range(len(VARIANTS)):
            results.setdefault(k, []).append(run_variant(k, seed, args, images))
            write_tables(results, args)


if __name__ == "__main__":
    main()
