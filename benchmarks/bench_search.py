"""Channel-search throughput: trials per hour for 5 IBs / 30 M MACs at 32x32, and 1 -> 2 workers.

Each worker is a real ``rexnet search run`` process (1 torch thread) on one shared PostgreSQL
study; throughput is measured inside the study, from the first trial's start to the last trial's
end, so process start-up (imports, data loading) is excluded. The machine load (``uptime``) is
recorded before and after, since other jobs may share the cores.

Usage:
    python benchmarks/bench_search.py [--storage URL] [--trials 4] [--max-samples 512] [--epochs 1]

Without ``--storage`` it starts PostgreSQL through ``.ci/postgres.sh``.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import optuna
from optuna.trial import TrialState

ROOT = Path(__file__).resolve().parents[1]


def _uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def _prepare(study: str, trials: int, storage: str, args: argparse.Namespace) -> None:
    """Create the study with every slot holding the same candidate (ReXNet's line), so that runs
    with different worker counts train identical workloads."""
    from rexnet.search import SearchSpace, linear_params, open_storage
    from rexnet.search.study import make_sampler, open_study

    config = {
        "space": SearchSpace(blocks=5, budget_macs=30e6, image_size=32, num_classes=10).to_dict(),
        "epochs": args.epochs,
        "seeds": 1,
        "objectives": "accuracy",
        "data": "digits",
        "sampler": "random",
    }
    st = open_study(
        open_storage(storage, heartbeat_interval=5),
        study,
        config=config,
        target_trials=0,
        sampler=make_sampler("random", 0, False),
        directions=["maximize"],
        seed_rules=False,
    )
    for slot in range(trials):
        st.enqueue_trial(linear_params(5), user_attrs={"slot": slot, "rule": "rexnet_linear"})
    st.set_user_attr("target_trials", trials)


def _workers(n_workers: int, trials: int, storage: str, args: argparse.Namespace, out: Path) -> dict:
    study = f"bench-{n_workers}w-{uuid.uuid4().hex[:6]}"
    if args.same_candidate:
        _prepare(study, trials, storage, args)
    cmd = [
        sys.executable,
        "-m",
        "rexnet",
        "search",
        "run",
        "--storage",
        storage,
        "--study",
        study,
        "--blocks",
        "5",
        "--budget-macs",
        "30M",
        "--image-size",
        "32",
        "--trials",
        str(trials),
        "--epochs",
        str(args.epochs),
        "--seeds",
        "1",
        "--max-samples",
        str(args.max_samples),
        "--threads",
        "1",
        "--train-options",
        '{"batch_size": 64}',
        "--heartbeat",
        "5",
    ]
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"), OMP_NUM_THREADS="1")
    before = _uptime()
    t0 = time.perf_counter()
    procs = [
        subprocess.Popen(
            [*cmd, "--out", str(out / f"{study}-{i}"), "--seed", str(i)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(n_workers)
    ]
    errs = [p.communicate()[1] for p in procs]
    wall = time.perf_counter() - t0
    if any(p.returncode for p in procs):
        raise SystemExit(f"worker failed:\n{errs}")
    st = optuna.load_study(study_name=study, storage=storage)
    done = [t for t in st.get_trials() if t.state == TrialState.COMPLETE]
    span = (max(t.datetime_complete for t in done) - min(t.datetime_start for t in done)).total_seconds()
    per_trial = sorted(t.duration.total_seconds() for t in done)
    return {
        "workers": n_workers,
        "trials": len(done),
        "span_s": span,
        "wall_s": wall,
        "trials_per_hour": 3600 * len(done) / span,
        "median_trial_s": per_trial[len(per_trial) // 2],
        "macs": sorted(t.user_attrs["macs"] for t in done),
        "uptime_before": before,
        "uptime_after": _uptime(),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--storage", default=None, help="PostgreSQL URL (default: start one with .ci/postgres.sh)")
    p.add_argument("--trials", type=int, default=4, help="trials per worker (default: 4)")
    p.add_argument("--max-samples", type=int, default=512, help="training images per epoch (default: 512)")
    p.add_argument("--epochs", type=int, default=1, help="epochs per trial (default: 1)")
    p.add_argument(
        "--same-candidate",
        action="store_true",
        help="every trial trains ReXNet's line (identical work per trial, for a fair 1 -> 2 comparison)",
    )
    args = p.parse_args()
    from rexnet.search.study import database_url

    storage = (
        args.storage
        or subprocess.run(["bash", str(ROOT / ".ci" / "postgres.sh")], capture_output=True, text=True, check=True)
        .stdout.strip()
        .splitlines()[-1]
    )
    storage = database_url(storage)
    out = Path(tempfile.mkdtemp(prefix="bench-search-"))
    import torch

    print(
        f"torch {torch.__version__}, optuna {optuna.__version__}, {os.cpu_count()} cores, "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}"
    )
    results = [_workers(n, n * args.trials, storage, args, out) for n in (1, 2)]
    print(
        f"setting: 5 IBs, 30 M MACs at 32x32, digits (embedded), {args.max_samples} train images x "
        f"{args.epochs} epoch(s) x 1 seed per trial, batch 64, 1 torch thread per worker, PostgreSQL study"
    )
    print("| workers | trials | span (s) | trials/hour | median trial (s) | load before -> after |")
    print("|---|---|---|---|---|---|")
    for r in results:
        la = lambda s: s.split("load average:")[-1].strip()  # noqa: E731
        print(
            f"| {r['workers']} | {r['trials']} | {r['span_s']:.0f} | {r['trials_per_hour']:.0f} | "
            f"{r['median_trial_s']:.1f} | {la(r['uptime_before'])} -> {la(r['uptime_after'])} |"
        )
    print(f"scaling 1 -> 2 workers: x{results[1]['trials_per_hour'] / results[0]['trials_per_hour']:.2f}")
    print(f"MACs of the trials: {min(results[0]['macs']) / 1e6:.2f}-{max(results[0]['macs']) / 1e6:.2f} M")


if __name__ == "__main__":
    main()
