"""``rexnet train`` end to end against timm's own ``train.py`` (issue 26): same model, data, batch, epochs, recipe.

Usage:
    python benchmarks/bench_train_vs_timm.py --timm-train /path/to/pytorch-image-models/train.py
        [--train-images 12000] [--val-images 10000] [--epochs 4] [--rounds 1] [--conditions quiet busy]

The workload: ``rexnet_100`` at 32 px on a Fashion-MNIST image folder (``DIR/train/<class>/*.png`` from the
first ``--train-images`` of the official training split, ``DIR/val`` from the first ``--val-images`` of the
test split; PNGs written once from the IDX files and reused), batch 128, ``--epochs`` epochs, the
``fashion-short`` recipe, spelled in timm's flags for its script (:func:`timm_command`).

Runs, interleaved (the order rotates per round), each in its own process, quiet and with a competing
CPU-bound process that this script starts (``busy``: a busy loop at nice 0, or ``--competitor train``: a
second ``rexnet train`` at nice 0):

* ``rexnet``: ``rexnet train --data folder:DIR --preset fashion-short`` (the measured execution plan);
* ``rexnet_1thread``: the same with ``--plan fixed --threads 1`` (its own single-thread plan);
* ``timm_cl``: timm's ``train.py --channels-last``; ``timm``: timm's defaults (NCHW).

Each row: wall time of the process, end-to-end training img/s (``epochs x train images / wall``), last-epoch
validation top-1, and peak memory (the largest sum of RSS over the process and its children, polled every
0.1 s). Writes ``results.json`` and ``results.md`` under ``--out`` (default
``benchmarks/results/train_vs_timm/``). timm's ``train.py`` is not in the timm wheel: without
``--timm-train`` the timm runs are skipped with a message. Run it on a machine where nothing else runs:
every number names the CPU and the load average.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RUNS = ("rexnet", "rexnet_1thread", "timm_cl", "timm")

#: The ``fashion-short`` preset (rexnet.train.config.PRESETS) in timm's train.py flags: SGD with Nesterov,
#: LR 0.2 x 128 / 256, 1 warm-up epoch from 1e-4, cosine to 1e-6, weight decay 5e-5, label smoothing 0.1,
#: dropout 0.2, flips 0.5, crops of 85-100 % of the area with ratio 0.9-1.11, no colour jitter, no erasing,
#: bicubic resampling. timm steps its schedule per epoch by default; ``--sched-on-updates`` steps it per
#: update, as rexnet does.
TIMM_RECIPE = [
    "--opt", "sgd", "--momentum", "0.9", "--weight-decay", "5e-5",
    "--sched", "cosine", "--sched-on-updates", "--warmup-epochs", "1", "--warmup-lr", "1e-4", "--min-lr", "1e-6",
    "--cooldown-epochs", "0", "--smoothing", "0.1", "--drop", "0.2",
    "--hflip", "0.5", "--scale", "0.85", "1.0", "--ratio", "0.9", "1.11",
    "--color-jitter", "0", "--reprob", "0", "--train-interpolation", "bicubic",
]  # fmt: skip


def make_folder(dest: str | os.PathLike, train_images: int, val_images: int, source: str | None = None) -> Path:
    """The Fashion-MNIST image folder ``dest`` (``train/`` and ``val/``, one PNG per image), made once.

    A folder that holds the right number of images is reused; one is written to a temporary sibling and
    renamed into place, so an interrupted run leaves no half-written folder.
    """
    import numpy as np
    from PIL import Image

    from rexnet.data.idx import load_idx_dataset

    dest = Path(dest)
    want = {"train": train_images, "val": val_images}
    if all(sum(1 for _ in (dest / s).glob("*/*.png")) == n for s, n in want.items() if (dest / s).is_dir()) and all(
        (dest / s).is_dir() for s in want
    ):
        return dest
    if dest.exists():
        raise SystemExit(f"{dest} exists but does not hold {train_images} + {val_images} images; remove it first")
    d = load_idx_dataset("fashion-mnist", source)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", dir=dest.parent if dest.parent.exists() else None))
    splits = {"train": (d.train_images, d.train_labels), "val": (d.test_images, d.test_labels)}
    for split, (x, y) in splits.items():
        n = want[split]
        if n > len(y):
            raise SystemExit(f"--{split}-images {n}: the split has only {len(y)} images")
        for c in d.classes:
            (tmp / split / c.replace("/", "-")).mkdir(parents=True)
        arr, lab = x[:n].numpy().astype(np.uint8), y[:n].tolist()
        for i in range(n):
            Image.fromarray(arr[i], "L").save(tmp / split / d.classes[lab[i]].replace("/", "-") / f"{i:05d}.png")
    dest.parent.mkdir(parents=True, exist_ok=True)
    os.replace(tmp, dest)
    return dest


def rexnet_command(
    data: Path, out: Path, *, epochs: int, batch: int, image_size: int, model: str, seed: int, extra: list[str]
) -> list[str]:
    """``rexnet train`` on the folder with the ``fashion-short`` preset, quiet (no bar, no TensorBoard)."""
    return [
        sys.executable, "-m", "rexnet", "train", "--data", f"folder:{data}", "--preset", "fashion-short",
        "--epochs", str(epochs), "--batch-size", str(batch), "--image-size", str(image_size), "--model", model,
        "--seed", str(seed), "--out", str(out), "--no-progress", "--no-tensorboard", *extra,
    ]  # fmt: skip


def timm_command(
    train_py: Path,
    data: Path,
    out: Path,
    *,
    epochs: int,
    batch: int,
    image_size: int,
    model: str,
    seed: int,
    channels_last: bool,
    workers: int,
) -> list[str]:
    """timm's ``train.py`` on the same folder with the recipe in :data:`TIMM_RECIPE` (CPU, fp32)."""
    cmd = [
        sys.executable, str(train_py), str(data), "--train-split", "train", "--val-split", "val",
        "--model", model, "--num-classes", "10", "--input-size", "3", str(image_size), str(image_size),
        "-b", str(batch), "--epochs", str(epochs), "--lr", str(0.2 * batch / 256), *TIMM_RECIPE,
        "--device", "cpu", "-j", str(workers), "--seed", str(seed), "--output", str(out), "--experiment", "run",
        "--checkpoint-hist", "1", "--log-interval", "1000",
    ]  # fmt: skip
    return cmd + (["--channels-last"] if channels_last else [])


def run_child(cmd: list[str], env: dict[str, str], log: Path, timeout: float) -> dict[str, Any]:
    """Run ``cmd``; its wall time, exit code and peak RSS of its process tree (MiB)."""
    import psutil

    t0 = time.perf_counter()
    with open(log, "wb") as f:
        proc = subprocess.Popen(cmd, env=env, stdout=f, stderr=subprocess.STDOUT, cwd=ROOT)
        peak, ps = 0, psutil.Process(proc.pid)
        while proc.poll() is None:
            try:
                rss = sum(p.memory_info().rss for p in [ps, *ps.children(recursive=True)])
                peak = max(peak, rss)
            except psutil.Error:
                pass
            if time.perf_counter() - t0 > timeout:
                proc.kill()
                break
            time.sleep(0.1)
        rc = proc.wait()
    return {"wall_s": time.perf_counter() - t0, "rc": rc, "peak_mib": peak / 2**20}


def rexnet_top1(out: Path) -> dict[str, Any]:
    """Last-epoch validation top-1 and the run's plan and time split, from ``summary.json``."""
    import json

    s = json.loads((out / "summary.json").read_text())
    keys = ("val_top1", "best_top1", "images_per_sec", "threads", "plan", "step_share", "time_split")
    return {k: s.get(k) for k in keys}


def timm_top1(out: Path) -> dict[str, Any]:
    """Last-epoch ``eval_top1`` from timm's ``summary.csv``."""
    import csv

    rows = list(csv.DictReader((out / "run" / "summary.csv").open()))
    return {"val_top1": float(rows[-1]["eval_top1"]), "best_top1": max(float(r["eval_top1"]) for r in rows)}


def start_competitor(kind: str, data: Path) -> subprocess.Popen:
    """A CPU-bound process at nice 0: a busy loop, or a second ``rexnet train`` on the same folder."""
    if kind == "spin":
        cmd = [sys.executable, "-c", "while True: pass"]
    else:
        out = Path(tempfile.mkdtemp(prefix="rexnet-competitor-"))
        common = dict(epochs=1000, batch=128, image_size=32, model="rexnet_100", seed=1)
        cmd = rexnet_command(data, out / "run", **common, extra=[])  # type: ignore[arg-type]
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT, env=_env())


_COLUMNS = {"wall_s": ".1f", "img_s": ".0f", "val_top1": ".2f", "peak_mib": ".0f", "x_timm_cl": ".2f", "x_timm": ".2f"}
#: The environment this script started with: importing rexnet sets OMP_WAIT_POLICY in ``os.environ``, which a
#: child ``rexnet train`` would take for the user's choice.
_START_ENV = dict(os.environ)


def _env() -> dict[str, str]:
    env = dict(_START_ENV)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT / "src"), env.get("PYTHONPATH")]))
    return env


def _markdown(meta: dict[str, Any], rows: list[dict[str, Any]]) -> str:
    lines = [
        f"# rexnet train vs timm train.py ({meta['cpu']}, {meta['cores']} cores)",
        "",
        f"{meta['model']}, {meta['image_size']} px, {meta['train_images']} train / {meta['val_images']} val images, "
        f"batch {meta['batch']}, {meta['epochs']} epochs; medians over {meta['rounds']} round(s); "
        f"load average before: {meta['load_before']}; competitor: {meta['competitor']}.",
        "",
        "| condition | run | wall (s) | e2e img/s | top-1 (%) | peak (MiB) | x timm_cl | x timm | plan |",
        "|---|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        c = {k: "" if r.get(k) is None else format(r[k], fmt) for k, fmt in _COLUMNS.items()}
        lines.append(
            f"| {r['condition']} | {r['run']} | {c['wall_s']} | {c['img_s']} | {c['val_top1']} | {c['peak_mib']} "
            f"| {c['x_timm_cl']} | {c['x_timm']} | {r.get('plan') or ''} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--timm-train", type=Path, default=None, help="timm's train.py (repository checkout)")
    p.add_argument("--data-dir", type=Path, default=None, help="image folder (default: a temp folder per size)")
    p.add_argument("--fashion-dir", default=None, help="folder of the Fashion-MNIST IDX files (default: Debian's)")
    p.add_argument("--train-images", type=int, default=12000)
    p.add_argument("--val-images", type=int, default=10000)
    p.add_argument("--epochs", type=int, default=4)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--image-size", type=int, default=32)
    p.add_argument("--model", default="rexnet_100")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--rounds", type=int, default=1)
    p.add_argument("--runs", nargs="+", default=list(RUNS), choices=RUNS)
    p.add_argument("--conditions", nargs="+", default=["quiet", "busy"], choices=["quiet", "busy"])
    p.add_argument("--competitor", default="spin", choices=["spin", "train"], help="what 'busy' runs beside")
    p.add_argument("--timm-workers", type=int, default=None, help="timm -j (default: the cores)")
    p.add_argument("--timeout", type=float, default=3600.0, help="seconds per run")
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "train_vs_timm")
    p.add_argument("--overwrite", action="store_true", help="replace results from an earlier run")
    args = p.parse_args(argv)
    sys.path.insert(0, str(ROOT / "src"))
    from rexnet._device import cpu_model
    from rexnet._env import available_cores
    from rexnet._files import atomic_write, write_json

    cores = available_cores()
    data = args.data_dir or Path(tempfile.gettempdir()) / f"rexnet-fmnist-folder-{args.train_images}-{args.val_images}"
    data = make_folder(data, args.train_images, args.val_images, args.fashion_dir)
    runs = list(args.runs)
    if args.timm_train is None:
        print("no --timm-train PATH given: skipping timm's train.py (not in the timm wheel)", file=sys.stderr)
        runs = [r for r in runs if not r.startswith("timm")]
    elif not args.timm_train.is_file():
        raise SystemExit(f"--timm-train {args.timm_train}: no such file")
    common = dict(epochs=args.epochs, batch=args.batch, image_size=args.image_size, model=args.model, seed=args.seed)
    work = Path(tempfile.mkdtemp(prefix="bench-train-vs-timm-"))
    meta = dict(
        cpu=cpu_model(), cores=cores, load_before=os.getloadavg()[0], competitor=args.competitor, **common,
        train_images=args.train_images, val_images=args.val_images, rounds=args.rounds, data=str(data),
    )  # fmt: skip
    results: dict[tuple[str, str], list[dict[str, Any]]] = {}
    try:
        for rnd in range(args.rounds):
            for cond in args.conditions:
                competitor = start_competitor(args.competitor, data) if cond == "busy" else None
                try:
                    order = runs[rnd % len(runs) :] + runs[: rnd % len(runs)]
                    for name in order:
                        out = work / f"{cond}-{name}-{rnd}"
                        if name.startswith("rexnet"):
                            extra = ["--plan", "fixed", "--threads", "1"] if name == "rexnet_1thread" else []
                            cmd = rexnet_command(data, out, **common, extra=extra)
                        else:
                            cmd = timm_command(
                                args.timm_train, data, out, **common, channels_last=name == "timm_cl",
                                workers=args.timm_workers or cores,
                            )  # fmt: skip
                        env = _env()
                        if not name.startswith("rexnet"):  # the timm checkout's own package, next to its train.py
                            env["PYTHONPATH"] = str(args.timm_train.resolve().parent)
                        res = run_child(cmd, env, work / f"{cond}-{name}-{rnd}.log", args.timeout)
                        if res["rc"] == 0:
                            res.update(rexnet_top1(out) if name.startswith("rexnet") else timm_top1(out))
                        else:
                            res["log_tail"] = (work / f"{cond}-{name}-{rnd}.log").read_text()[-2000:]
                        res["img_s"] = args.epochs * args.train_images / res["wall_s"]
                        results.setdefault((cond, name), []).append(res)
                        print(f"round {rnd + 1} {cond:5s} {name:15s} {res['wall_s']:7.1f}s rc={res['rc']}", flush=True)
                finally:
                    if competitor is not None:
                        competitor.kill()
                        competitor.wait()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    rows = []
    for (cond, name), rs in results.items():
        row = {"condition": cond, "run": name, "rounds": rs}
        for k in ("wall_s", "img_s", "peak_mib", "val_top1"):
            vals = [r[k] for r in rs if r.get(k) is not None and r["rc"] == 0]
            row[k] = statistics.median(vals) if vals else None
        plans = [r.get("plan") for r in rs if r.get("plan")]
        row["plan"] = plans[-1].get("summary") if plans and isinstance(plans[-1], dict) else None
        rows.append(row)
    for row in rows:
        for peer in ("timm_cl", "timm"):
            ref = next((r for r in rows if r["condition"] == row["condition"] and r["run"] == peer), None)
            ok = ref and ref["wall_s"] and row["wall_s"]
            row[f"x_{peer}"] = ref["wall_s"] / row["wall_s"] if ok else None  # type: ignore[index]
    report = {"meta": meta, "rows": rows}
    args.out.mkdir(parents=True, exist_ok=True)
    write_json(report, args.out / "results.json", overwrite=args.overwrite)
    atomic_write(args.out / "results.md", _markdown(meta, rows), overwrite=args.overwrite)
    print(_markdown(meta, rows))
    return report


if __name__ == "__main__":
    main()
