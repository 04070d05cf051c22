"""Training speed on CPU, side by side in one run: timm's rexnet_100 against our execution paths.

Usage:
    python benchmarks/bench_train_speed.py step [--size 32] [--batch 64] [--threads 1] [--rounds 3]
    python benchmarks/bench_train_speed.py e2e [--data digits] [--seeds 0 1 2] [-- more rexnet train flags]
    python benchmarks/bench_train_speed.py search [--data digits] [--trials 4] [--epochs 2]

``step``: forward + backward + SGD step of rexnet_100 (10 classes) on random data, each path in its
own child process (clean thread settings, its own peak memory), paths interleaved over ``--rounds``;
prints the median img/s of each path, its ratio to timm's NCHW eager step, and the peak resident
memory the steps added (max RSS after the steps minus RSS before the first step).

``e2e``: whole ``rexnet train`` runs, the old defaults (1 thread, NCHW, per-image torchvision
augmentation) against the new ones, alternating per seed; prints ``images_per_sec`` from
``summary.json`` and the best validation (and test, where the data has one) top-1 of each.

``search``: trials per hour of one search worker (1 thread) with the old and the new training
defaults, the same candidates (sampler seed 0).

Each prints one JSON object; run them on a quiet machine (the numbers name the CPU and the load).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

STEP_PATHS = {
    "timm_nchw": dict(model="timm", channels_last=False, amp="none", compile=False),
    "ours_nchw": dict(model="ours", channels_last=False, amp="none", compile=False),
    "ours_cl": dict(model="ours", channels_last=True, amp="none", compile=False),
    "ours_cl_bf16": dict(model="ours", channels_last=True, amp="bf16", compile=False),
    "ours_cl_compile": dict(model="ours", channels_last=True, amp="none", compile=True),
    "ours_cl_compile_bf16": dict(model="ours", channels_last=True, amp="bf16", compile=True),
}
#: old defaults (before the fast path) and new ones, as ``rexnet train`` flags
E2E_SETTINGS = {
    "old": ["--threads", "1", "--no-channels-last", "--aug-backend", "per-sample"],
    "new": [],
    "new_1thread": ["--threads", "1"],
    "new_bf16": ["--amp", "bf16"],
    "new_compile": ["--compile"],
}


def _cpu_model() -> str:
    from rexnet._device import cpu_model

    return cpu_model()


def cpu_flags() -> list[str]:
    """The ISA flags that decide the fast paths (bf16, VNNI, AMX)."""
    from rexnet._device import cpu_flags as _cpu_flags

    return sorted(f for f in _cpu_flags() if f.startswith(("avx512_bf16", "amx", "avx512f", "avx512_vnni", "avx2")))


def _child_step(path: str, size: int, batch: int, threads: int, steps: int, warmup: int) -> dict:
    """Runs in a child process: time ``steps`` training steps of one path."""
    import resource

    import torch
    import torch.nn.functional as F

    torch.set_num_threads(threads)
    spec = STEP_PATHS[path]
    torch.manual_seed(0)
    if spec["model"] == "timm":
        import timm

        model = timm.create_model("rexnet_100", num_classes=10)
    else:
        import rexnet

        model = rexnet.create_model("rexnet_100", num_classes=10)
    model.train()
    fmt = torch.channels_last if spec["channels_last"] else torch.contiguous_format
    model = model.to(memory_format=fmt)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, nesterov=True)
    net = torch.compile(model) if spec["compile"] else model
    x = torch.randn(batch, 3, size, size).contiguous(memory_format=fmt)
    y = torch.randint(0, 10, (batch,))
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t_warm = time.perf_counter()
    times = []
    for i in range(warmup + steps):
        t = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=spec["amp"] == "bf16"):
            loss = F.cross_entropy(net(x).float(), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if i == warmup - 1:
            t_warm = time.perf_counter() - t_warm
        if i >= warmup:
            times.append(time.perf_counter() - t)
    rss1 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return dict(img_s=batch / statistics.median(times), warmup_s=t_warm, peak_mib=(rss1 - rss0) / 1024)


def bench_step(args: argparse.Namespace) -> dict:
    paths = args.paths or list(STEP_PATHS)
    runs: dict[str, list[dict]] = {p: [] for p in paths}
    for r in range(args.rounds):
        for p in paths:
            cmd = [
                sys.executable,
                __file__,
                "_child",
                p,
                str(args.size),
                str(args.batch),
                str(args.threads),
                str(args.steps),
                str(args.warmup),
            ]
            out = subprocess.run(cmd, capture_output=True, text=True, timeout=1800)
            if out.returncode:
                raise SystemExit(f"{p} failed:\n{out.stderr[-3000:]}")
            runs[p].append(json.loads(out.stdout.strip().splitlines()[-1]))
            print(f"round {r + 1} {p}: {runs[p][-1]['img_s']:.0f} img/s", file=sys.stderr, flush=True)
    med = {p: statistics.median(x["img_s"] for x in v) for p, v in runs.items()}
    ref = med.get("timm_nchw")
    return dict(
        kind="step",
        size=args.size,
        batch=args.batch,
        threads=args.threads,
        rounds=args.rounds,
        steps=args.steps,
        paths={
            p: dict(
                img_s=round(med[p], 1),
                vs_timm=round(med[p] / ref, 2) if ref else None,
                peak_mib=round(max(x["peak_mib"] for x in runs[p]), 1),
                warmup_s=round(statistics.median(x["warmup_s"] for x in runs[p]), 1),
                all_img_s=[round(x["img_s"], 1) for x in runs[p]],
            )
            for p in paths
        },
    )


def bench_e2e(args: argparse.Namespace) -> dict:
    results: dict[str, list[dict]] = {k: [] for k in args.settings}
    root = Path(args.out or tempfile.mkdtemp(prefix="rexnet-e2e-"))
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    for seed in args.seeds:
        for name in args.settings:
            out = root / f"{name}-seed{seed}"
            cmd = [
                sys.executable,
                "-m",
                "rexnet",
                "train",
                "--data",
                args.data,
                "--seed",
                str(seed),
                "--out",
                str(out),
                "--no-progress",
                "--no-tensorboard",
                *E2E_SETTINGS[name],
                *args.extra,
            ]
            if (out / "summary.json").is_file() and json.loads((out / "summary.json").read_text())[
                "status"
            ] == "completed":
                pass  # resumable: a finished run is read, not redone
            else:
                t = time.time()
                res = subprocess.run(
                    cmd + (["--resume"] if (out / "config.json").is_file() else []),
                    capture_output=True,
                    text=True,
                    env=env,
                )
                if res.returncode:
                    raise SystemExit(f"{name} seed {seed} failed:\n{res.stderr[-3000:]}")
                print(f"{name} seed {seed}: {time.time() - t:.0f}s", file=sys.stderr, flush=True)
            s = json.loads((out / "summary.json").read_text())
            hist = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines() if line.strip()]
            results[name].append(
                dict(
                    seed=seed,
                    images_per_sec=round(statistics.mean(h["images_per_sec"] for h in hist), 1),
                    best_val_top1=s["best_top1"],
                    test_top1=s.get("test_top1"),
                    total_seconds=round(s["total_seconds"], 1),
                    threads=s["threads"],
                )
            )

    def agg(rows: list[dict], key: str) -> dict | None:
        vals = [r[key] for r in rows if r[key] is not None]
        if not vals:
            return None
        std = statistics.stdev(vals) if len(vals) > 1 else 0.0
        return dict(mean=round(statistics.mean(vals), 2), std=round(std, 2))

    summary = {
        k: dict(runs=v, **{m: agg(v, m) for m in ("images_per_sec", "best_val_top1", "test_top1", "total_seconds")})
        for k, v in results.items()
    }
    if "old" in summary and "new" in summary:
        summary["speedup_new_over_old"] = round(
            summary["new"]["images_per_sec"]["mean"] / summary["old"]["images_per_sec"]["mean"], 2
        )
    return dict(kind="e2e", data=args.data, extra=args.extra, out=str(root), settings=summary)


def bench_search(args: argparse.Namespace) -> dict:
    """The same candidates (same sampler seed) searched with the old and the new training defaults."""
    old_opts = json.dumps(dict(channels_last=False, aug_backend="per-sample"))
    res = {}
    for r in range(args.rounds):
        for name in ("old", "new"):
            out = Path(tempfile.mkdtemp(prefix=f"rexnet-search-{name}-"))
            cmd = [
                sys.executable,
                "-m",
                "rexnet",
                "search",
                "run",
                "--out",
                str(out),
                "--data",
                args.data,
                "--trials",
                str(args.trials),
                "--seeds",
                "1",
                "--epochs",
                str(args.epochs),
                "--max-samples",
                str(args.max_samples),
                "--threads",
                "1",
                "--seed",
                "0",
            ]
            if name == "old":
                cmd += ["--train-options", old_opts]
            t = time.time()
            done = subprocess.run(cmd, capture_output=True, text=True)
            if done.returncode:
                raise SystemExit(f"search {name} failed:\n{done.stderr[-3000:]}")
            res.setdefault(name, []).append(time.time() - t)
            print(f"round {r + 1} search {name}: {res[name][-1]:.0f}s", file=sys.stderr, flush=True)
    per_hour = {k: round(3600 * args.trials / statistics.median(v), 1) for k, v in res.items()}
    return dict(
        kind="search",
        data=args.data,
        trials=args.trials,
        epochs=args.epochs,
        max_samples=args.max_samples,
        seconds={k: [round(x, 1) for x in v] for k, v in res.items()},
        trials_per_hour=per_hour,
        speedup_new_over_old=round(per_hour["new"] / per_hour["old"], 2),
    )


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "_child":
        p, size, batch, threads, steps, warmup = sys.argv[2:8]
        print(json.dumps(_child_step(p, int(size), int(batch), int(threads), int(steps), int(warmup))))
        return
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="what", required=True)
    s = sub.add_parser("step", help="one training step, per path, side by side")
    s.add_argument("--size", type=int, default=32)
    s.add_argument("--batch", type=int, default=64)
    s.add_argument("--threads", type=int, default=1)
    s.add_argument("--rounds", type=int, default=3)
    s.add_argument("--steps", type=int, default=15)
    s.add_argument("--warmup", type=int, default=4)
    s.add_argument("--paths", nargs="*", choices=list(STEP_PATHS), help="default: all")
    e = sub.add_parser("e2e", help="whole `rexnet train` runs, old defaults vs new")
    e.add_argument("--data", default="digits")
    e.add_argument("--seeds", type=int, nargs="*", default=[0, 1, 2])
    e.add_argument("--settings", nargs="*", default=["old", "new"], choices=list(E2E_SETTINGS))
    e.add_argument("--out", default=None, help="run folders (default: a temporary folder); finished runs are reused")
    e.add_argument("extra", nargs="*", help="more `rexnet train` flags, after --")
    q = sub.add_parser("search", help="search trials per hour, old defaults vs new (1 worker, 1 thread)")
    q.add_argument("--data", default="digits")
    q.add_argument("--trials", type=int, default=4)
    q.add_argument("--epochs", type=int, default=2)
    q.add_argument("--max-samples", type=int, default=1024)
    q.add_argument("--rounds", type=int, default=1)
    args = ap.parse_args()
    t0, load0 = time.time(), os.getloadavg()
    import torch

    res = dict(step=bench_step, e2e=bench_e2e, search=bench_search)[args.what](args)
    res.update(
        cpu=_cpu_model(),
        cpu_flags=cpu_flags(),
        cores=len(os.sched_getaffinity(0)),
        torch=torch.__version__,
        python=platform.python_version(),
        load_avg_start=[round(x, 2) for x in load0],
        load_avg_end=[round(x, 2) for x in os.getloadavg()],
        seconds=round(time.time() - t0, 1),
        date=time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        omp_wait_policy=os.environ.get("OMP_WAIT_POLICY", "(unset)"),
    )
    print(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
