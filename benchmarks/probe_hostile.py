"""The hostile-input probe of issue 23: bad invocations of the CLI and the Python API, each under a memory
cap, a timeout and a watched, blocked network, classified into outcomes.

    PYTHONPATH=$PWD/src python benchmarks/probe_hostile.py --out /tmp/probe          # every probe
    python benchmarks/probe_hostile.py --list                                        # what would run
    python benchmarks/probe_hostile.py --only overwrite,env --out /tmp/probe         # some families
    python benchmarks/probe_hostile.py --quick --out /tmp/probe                      # the pytest subset

Outcomes (worst first): setup-failed, network, executed (a crafted file ran code), overwrote (a finished
file's bytes changed without --overwrite), nan-completed (exit 0 with non-finite weights, metrics or
non-strict JSON), hang (timeout), memory (hit the cap: no check before the work), crash (a signal),
traceback, wrong-result (the probe knows the right answer), misleading (accepted silently where a
refusal or warning was due, or an exit without a one-line message), refused and ok (the good ones).

Writes ``OUT/probes.json`` and ``OUT/probes.csv`` (every probe with its stderr tail), ``OUT/summary.md``
(the tables and the failing probes), prints the tables, and exits 1 if any outcome is bad.
"""

from __future__ import annotations

import argparse
import csv
import json
import shutil
import sys
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from probes import data, images, numbers, offline, outputs, weights  # noqa: E402
from probes.common import DETECT, RANK, TRAIN  # noqa: E402
from probes.core import GOOD, OUTCOMES, Ctx, Probe, finish, run_probe, spawn  # noqa: E402

#: fixture -> (command after ``rexnet`` with {fx}, fixtures it needs first)
FIXTURES: dict[str, tuple[list[str], tuple[str, ...]]] = {
    "run": ([*TRAIN, "--out", "{fx}/run"], ()),
    "det": ([*DETECT, "--out", "{fx}/det"], ()),
    "rank": ([*RANK, "--out", "{fx}/rank"], ()),
    "st": (["convert", "{fx}/run/checkpoints/best.pt", "{fx}/w.safetensors"], ("run",)),
    "onnx": (
        ["export", "rexnet_060", "--checkpoint", "{fx}/run", "--image-size", "32", "--out", "{fx}/model.onnx"],
        ("run",),
    ),  # fmt: skip
    "ts": (
        [
            "export",
            "rexnet_060",
            "--format",
            "torchscript",
            "--image-size",
            "32",
            "--no-verify",
            "--out",
            "{fx}/model_ts.pt",
        ],
        (),
    ),  # fmt: skip
    "ov": (["export", "rexnet_060", "--format", "openvino", "--image-size", "32", "--out", "{fx}/ov"], ()),
    # random weights with 10 classes: outputs that depend on the input (a one-epoch run's barely do)
    "rnd": (
        [
            "python:",
            "import rexnet, torch; torch.manual_seed(0); m = rexnet.create_model('rexnet_060', "
            "num_classes=10); m.classifier.weight.data.mul_(300); "  # sharp outputs: decodings that differ show
            "rexnet.save_weights(m, '{fx}/rnd.safetensors')",
        ],
        (),
    ),  # fmt: skip
}


#: Probes whose input may legitimately be accepted (exit 0 is fine; still no hang, traceback, overwrite, ...).
LENIENT = {
    "train-onto-finished-run",  # may say "already finished" and leave it alone
    "train config empty.yaml",  # no keys: the defaults
    "idx images 1x1 px",  # valid IDX, resampled like 28 px
    "idx images int32",  # a valid IDX type
    "cifar data float",
    "cifar meta 3 names",
    "coco box negative size",  # may be dropped with a warning
    "coco declared size wrong",  # the decoded size may win
    "coco image missing on disk",  # may be skipped with a warning
    "api rexnet_plan width 1e6",  # a plan is arithmetic; building it costs nothing
    "api solve_for_budget 1e30",
    "rank-profile-onto-run",  # adds its own files to the folder; the run's files are protected
    "bench-onto-run-folder",
    "predict checkpoint model_name unknown",  # the checkpoint's plan describes the model; the name is a label
    "convert huge plan",  # convert copies tensors and builds nothing; loading the result is what must refuse
    "api create_model num_classes 0",  # timm's meaning: no classifier (a feature extractor)
    "detect eval-every=0",  # documented: 0 evaluates at the end only
}


#: Probes whose input declares a huge size: refusing it must not first read or allocate it.
BOMBS = ("bomb", "huge plan", "plan huge", "1e9", "gzip", "image-size=100000")
BOMB_RSS_MB = 2000  # a CLI with torch loaded peaks well under this on the tiny fixtures


def catalog() -> list[Probe]:
    """Every probe, by family."""
    ps = outputs.overwrite_probes() + outputs.atomic_probes()
    ps += numbers.flag_probes() + numbers.config_probes() + numbers.env_probes()
    ps += data.idx_probes() + data.cifar_probes() + data.coco_probes() + images.image_probes()
    ps += weights.checkpoint_probes() + offline.network_probes() + offline.api_probes()
    for p in ps:
        if p.name in LENIENT:
            p.expect = "any"
        if any(w in p.name for w in BOMBS):
            p.max_rss_mb = BOMB_RSS_MB
    names = Counter(p.name for p in ps)
    dup = [n for n, c in names.items() if c > 1]
    if dup:
        raise SystemExit(f"duplicate probe names: {dup}")
    return ps


def select(ps: list[Probe], only: str | None, name: str | None, quick: bool) -> list[Probe]:
    """The probes the flags ask for."""
    if only:
        families = set(only.split(","))
        unknown = families - {p.family for p in ps}
        if unknown:
            raise SystemExit(f"--only: unknown families {sorted(unknown)}; known: {sorted({p.family for p in ps})}")
        ps = [p for p in ps if p.family in families]
    if name:
        ps = [p for p in ps if any(n in p.name for n in name.split(","))]
    if quick:
        ps = [p for p in ps if p.quick]
    return ps


def build_fixtures(ctx: Ctx, wanted: set[str], reuse: bool) -> dict[str, str]:
    """Build the fixtures the probes need (in dependency order); returns fixture -> error for failures."""
    errors: dict[str, str] = {}
    todo = set(wanted)
    for key in list(wanted):
        todo |= set(FIXTURES[key][1])
    if not reuse and ctx.fx.exists():
        shutil.rmtree(ctx.fx)
    ctx.fx.mkdir(parents=True, exist_ok=True)
    for key in FIXTURES:  # dict order is dependency order
        if key not in todo:
            continue
        if reuse and (ctx.fx / f".{key}.ok").exists():
            continue
        missing = [dep for dep in FIXTURES[key][1] if dep in errors]
        if missing:
            errors[key] = f"needs fixture {missing[0]}"
            continue
        argv = [a.replace("{fx}", str(ctx.fx)) for a in FIXTURES[key][0]]
        t0 = time.monotonic()
        cmd = [ctx.python, "-c", argv[1]] if argv[0] == "python:" else [ctx.python, "-m", "rexnet", *argv]
        res = finish(spawn(cmd, ctx, ctx.fx, ctx.env_for(ctx.fx, {})), 600)
        if res["rc"] != 0:
            errors[key] = f"fixture {key} failed (exit {res['rc']}): {res['stderr'].strip().splitlines()[-1:]}"
        else:
            (ctx.fx / f".{key}.ok").write_text("")
        print(f"fixture {key}: {'ok' if key not in errors else errors[key]} ({time.monotonic() - t0:.0f} s)")
    return errors


def run_all(ps: list[Probe], ctx: Ctx, jobs: int, fixture_errors: dict[str, str]) -> list[dict[str, Any]]:
    """Run the probes (``jobs`` at a time), printing one line per probe as it ends."""

    lock = threading.Lock()
    (ctx.out / "probes.jsonl").unlink(missing_ok=True)

    def one(p: Probe) -> dict[str, Any]:
        broken = [fixture_errors[n] for n in p.needs if n in fixture_errors]
        if broken:
            return {"name": p.name, "family": p.family, "outcome": "setup-failed", "detail": broken[0], "rc": None,
                    "seconds": 0}  # fmt: skip
        rec = run_probe(p, ctx)
        with lock, open(ctx.out / "probes.jsonl", "a") as f:  # as they end: a stopped pass keeps its records
            f.write(json.dumps(rec) + "\n")
        mark = "  " if rec["outcome"] in GOOD else "!!"
        print(f"{mark} {rec['outcome']:<14} {rec['seconds']:>6}s  {p.family:<10} {p.name}: {rec['detail'][:140]}",
              flush=True)  # fmt: skip
        return rec

    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        return list(pool.map(one, ps))


def tables(records: list[dict[str, Any]]) -> str:
    """The outcome counts, overall and per family, as Markdown."""
    total = Counter(r["outcome"] for r in records)
    seen = [o for o in OUTCOMES if total[o]]
    lines = ["| outcome | probes |", "|---|---:|"]
    lines += [f"| {o} | {total[o]} |" for o in OUTCOMES]
    lines += [f"| **total** | **{len(records)}** |", ""]
    families = sorted({r["family"] for r in records})
    lines += ["| family | " + " | ".join(seen) + " | total |", "|---|" + "---:|" * (len(seen) + 1)]
    for fam in families:
        c = Counter(r["outcome"] for r in records if r["family"] == fam)
        lines.append(f"| {fam} | " + " | ".join(str(c[o] or "") for o in seen) + f" | {sum(c.values())} |")
    return "\n".join(lines)


def failing(records: list[dict[str, Any]]) -> str:
    """The probes with a bad outcome, one line each."""
    bad = sorted((r for r in records if r["outcome"] not in GOOD), key=lambda r: (OUTCOMES.index(r["outcome"]),
                 r["family"], r["name"]))  # fmt: skip
    return "\n".join(f"- [{r['outcome']}] ({r['family']}) {r['name']}: {r['detail']}" for r in bad) or "(none)"


def write_reports(out: Path, records: list[dict[str, Any]], seconds: float) -> None:
    """probes.json, probes.csv and summary.md under ``out``."""
    (out / "probes.json").write_text(json.dumps(records, indent=1, allow_nan=False))
    cols = ["family", "name", "outcome", "detail", "rc", "seconds", "expect", "command", "stderr_tail"]
    with open(out / "probes.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=cols, extrasaction="ignore")
        w.writeheader()
        w.writerows(records)
    (out / "summary.md").write_text(
        f"# Hostile-input probe: {len(records)} probes in {seconds / 60:.1f} min\n\n{tables(records)}\n\n"
        f"## Failing probes\n\n{failing(records)}\n"
    )


def main(argv: list[str] | None = None) -> int:
    """Run the probes; 0 when every outcome is ``refused`` or ``ok``."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--out", type=Path, default=Path("/tmp/rexnet-probe"), help="output folder (default: %(default)s)")
    ap.add_argument("--only", help="comma list of families")
    ap.add_argument("-k", "--name", help="comma list of substrings of probe names")
    ap.add_argument("--quick", action="store_true", help="only the fast subset the pytest runs")
    ap.add_argument("--list", action="store_true", help="list the selected probes and exit")
    ap.add_argument("--jobs", type=int, default=1, help="probes at a time (default: 1)")
    ap.add_argument("--mem-gib", type=float, default=8.0, help="address-space cap per probe (default: 8 GiB)")
    ap.add_argument("--reuse-fixtures", action="store_true", help="keep OUT/fixtures from an earlier pass")
    args = ap.parse_args(argv)
    ps = select(catalog(), args.only, args.name, args.quick)
    if args.list:
        for p in ps:
            print(f"{p.family:<10} {p.name}  [{' '.join(p.argv) if p.argv else 'python: ' + (p.code or '').strip()}]")
        print(f"{len(ps)} probes; families: {dict(Counter(p.family for p in ps))}")
        return 0
    ctx = Ctx.make(args.out.resolve(), args.mem_gib)
    t0 = time.monotonic()
    errors = build_fixtures(ctx, {n for p in ps for n in p.needs}, args.reuse_fixtures)
    records = run_all(ps, ctx, args.jobs, errors)
    write_reports(ctx.out, records, time.monotonic() - t0)
    print("\n" + tables(records) + "\n\nFailing probes:\n" + failing(records))
    print(f"\n{len(records)} probes in {(time.monotonic() - t0) / 60:.1f} min; reports in {ctx.out}")
    return 0 if all(r["outcome"] in GOOD for r in records) else 1


if __name__ == "__main__":
    sys.exit(main())
