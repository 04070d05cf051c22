"""Families ``overwrite`` (outputs onto finished work) and ``atomic`` (kill -9 during a write)."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from . import craft
from .common import DETECT, RANK, SEARCH, TRAIN, cli
from .core import Ctx, Probe, command, finish, sha, spawn, with_signal

RUN_FILES = ["run/config.json", "run/summary.json", "run/metrics.jsonl", "run/checkpoints/*.pt"]
DET_FILES = ["det/config.json", "det/summary.json", "det/checkpoints/*.pt"]
RANK_FILES = ["rank/config.json", "rank/*.csv", "rank/*.jsonl"]


def _with(*names: str) -> Any:
    """A setup copying fixture folders/files into the probe's folder."""

    def setup(d: Path, fx: Path) -> None:
        for n in names:
            src = fx / n
            if src.is_dir():
                craft.copy_tree(src, d / n)
            else:
                (d / n).write_bytes(src.read_bytes())

    return setup


def _foreign(*files: str, also: tuple[str, ...] = ()) -> Any:
    """A setup writing unrelated files (another program's) and copying fixtures ``also``."""

    def setup(d: Path, fx: Path) -> None:
        _with(*also)(d, fx)
        for f in files:
            (d / f).parent.mkdir(parents=True, exist_ok=True)
            (d / f).write_text('{"owner": "another program", "keep": true}\n')

    return setup


def two_at_once(p: Probe, ctx: Ctx, d: Path) -> dict[str, Any]:
    """Start the same command twice on one ``--out``; both exiting 0 means one run was lost."""
    env = ctx.env_for(d, p.env)
    first = spawn(command(p, ctx, d), ctx, d, env)
    out = d / p.argv[p.argv.index("--out") + 1] if p.argv and "--out" in p.argv else None
    for _ in range(300):  # start the second while the first is at work (its run lock taken), not after it
        time.sleep(0.1)
        if out is not None and (out / "run.lock").exists() or first.poll() is not None:
            break
    second = spawn(command(p, ctx, d), ctx, d, env)
    r2, r1 = finish(second, p.timeout), finish(first, p.timeout)
    res = dict(r2)
    res["stderr"] = r1["stderr"][-2000:] + "\n--- second process ---\n" + r2["stderr"]
    res["hung"] = r1["hung"] or r2["hung"]
    res["seconds"] = max(r1["seconds"], r2["seconds"])
    if r1["rc"] == 0 and r2["rc"] == 0:
        res["overwrote"] = "both processes wrote the same --out and exited 0 (no run lock): one run was lost"
    elif 0 not in (r1["rc"], r2["rc"]):
        res["rc"] = r1["rc"] or r2["rc"]
        res["stderr"] += "\n(neither process finished its run)"
    else:
        res["rc"] = r1["rc"] or r2["rc"]  # the refused one's status and message
    return res


def _open_under(pid: int, folder: Path) -> str | None:
    """A file under ``folder`` the process ``pid`` has open (an O_TMPFILE shows as ``#N (deleted)``)."""
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return None
    for fd in fds:
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.startswith(str(folder) + os.sep):
            return target
    return None


def kill_mid_write(target: str) -> Any:
    """A runner: kill -9 the export while it writes; the earlier ``target`` must survive intact.

    The write is seen as the process opening a file in the target's folder (temp files and
    O_TMPFILE included) or the target changing; the kill follows 50 ms later.
    """

    def runner(p: Probe, ctx: Ctx, d: Path) -> dict[str, Any]:
        path = d / target
        before = sha(path) if path.is_file() else None
        stat0 = path.stat() if path.exists() else None
        cmd = command(p, ctx, d)
        if not _has_overwrite(ctx):  # before the output policy: the plain command replaced files anyway
            cmd = [a for a in cmd if a != "--overwrite"]
        proc = spawn(cmd, ctx, d, ctx.env_for(d, p.env))
        t0, why = time.monotonic(), "timer"
        while proc.poll() is None and time.monotonic() - t0 < p.timeout:
            st = path.stat() if path.exists() else None
            opened = _open_under(proc.pid, path.parent.resolve())
            if opened or (st and stat0 and (st.st_mtime_ns, st.st_size) != (stat0.st_mtime_ns, stat0.st_size)):
                why = f"while writing {Path(opened).name if opened else target}"
                time.sleep(0.05)
                break
            time.sleep(0.005)
        finished = proc.poll() is not None
        with_signal(proc, 9)
        res = finish(proc, 30)
        res["hung"], res["seconds"] = False, round(time.monotonic() - t0, 1)
        after = sha(path) if path.is_file() else None
        if finished:
            res["stdout"] += "\ninconclusive: the export ended before it could be killed"
        elif after != before and not _complete(path):
            res["overwrote"] = f"kill -9 ({why}) left a changed, incomplete {target}: the earlier file was lost"
        else:
            state = "the earlier file intact" if after == before else "a complete new file"
            res["stdout"] += f"\nkilled {why} after {time.monotonic() - t0:.1f} s; {state} at {target}"
        res["rc"] = 0 if res["rc"] == -9 else res["rc"]  # our own kill is not a crash
        return res

    return runner


_HELP: dict[str, bool] = {}


def _has_overwrite(ctx: Ctx) -> bool:
    if "export" not in _HELP:
        import subprocess

        out = subprocess.run([ctx.python, "-m", "rexnet", "export", "--help"], capture_output=True, text=True,
                             env=ctx.base_env)  # fmt: skip
        _HELP["export"] = "--overwrite" in out.stdout
    return _HELP["export"]


def _complete(path: Path) -> bool:
    if not path.is_file():
        return False
    if path.suffix == ".onnx":
        try:
            import onnx

            onnx.load(str(path))
            return True
        except Exception:
            return False
    if path.suffix == ".xml":
        import xml.etree.ElementTree as ET

        try:
            ET.parse(path)
            return path.with_suffix(".bin").is_file()
        except ET.ParseError:
            return False
    try:
        import zipfile

        return zipfile.ZipFile(path).testzip() is None
    except Exception:
        return False


def _earlier_export(name: str, fmt: str = "onnx") -> Any:
    """A setup: a finished earlier export at ``name`` (small, from the fixtures) the kill must not lose."""

    def setup(d: Path, fx: Path) -> None:
        src = fx / ("model.onnx" if fmt == "onnx" else "model_ts.pt")
        (d / name).write_bytes(src.read_bytes())
        if fmt == "onnx":
            (d / (Path(name).stem + ".json")).write_text((fx / "model.json").read_text())

    return setup


def _earlier_ir(d: Path, fx: Path) -> None:
    """An earlier IR pair at ov/rexnet_300.{xml,bin} (bytes of the small fixture IR)."""
    (d / "ov").mkdir()
    for ext in ("xml", "bin", "json"):
        (d / "ov" / f"rexnet_300.{ext}").write_bytes((fx / "ov" / f"rexnet_060.{ext}").read_bytes())


def overwrite_probes() -> list[Probe]:
    """Outputs aimed at finished work; each protected file must keep its bytes."""
    ck = "run/checkpoints/best.pt"
    exp = ["export", "rexnet_060", "--image-size", "32", "--no-verify"]
    return [
        cli(
            "export-onto-checkpoint",
            "overwrite",
            [*exp, "--out", ck],
            setup=_with("run"),
            protect=RUN_FILES,
            needs=("run",),
            quick=True,
        ),
        cli(
            "export-ts-onto-checkpoint",
            "overwrite",
            [*exp, "--format", "torchscript", "--out", ck],
            setup=_with("run"),
            protect=RUN_FILES,
            needs=("run",),
        ),
        cli(
            "export-onto-foreign-sidecar",
            "overwrite",
            [*exp, "--out", "model.onnx"],
            setup=_foreign("model.json"),
            protect=["model.json"],
            quick=True,
        ),
        cli(
            "export-onto-earlier-onnx",
            "overwrite",
            [*exp, "--out", "model.onnx"],
            setup=_with("model.onnx", "model.json"),
            protect=["model.onnx", "model.json"],
            needs=("onnx",),
        ),
        cli(
            "export-openvino-onto-foreign-xml",
            "overwrite",
            [*exp, "--format", "openvino", "--out", "ov"],
            setup=_foreign("ov/rexnet_060.xml", "ov/rexnet_060.json"),
            protect=["ov/*"],
        ),
        cli("export-onto-dir", "overwrite", [*exp, "--out", "adir"], setup=lambda d, fx: (d / "adir").mkdir()),
        cli(
            "export-onto-run-folder",
            "overwrite",
            [*exp, "--out", "run"],
            setup=_with("run"),
            protect=RUN_FILES,
            needs=("run",),
        ),
        cli(
            "export-under-a-file",
            "overwrite",
            [*exp, "--out", "afile/x.onnx"],
            setup=_foreign("afile"),
            protect=["afile"],
        ),
        cli(
            "train-onto-rank-study",
            "overwrite",
            [*TRAIN, "--out", "rank"],
            setup=_with("rank"),
            protect=RANK_FILES,
            needs=("rank",),
            quick=True,
        ),
        cli(
            "train-onto-detection-run",
            "overwrite",
            [*TRAIN, "--out", "det"],
            setup=_with("det"),
            protect=DET_FILES,
            needs=("det",),
        ),
        cli("train-onto-file", "overwrite", [*TRAIN, "--out", "afile"], setup=_foreign("afile"), protect=["afile"]),
        cli(
            "train-onto-finished-run",
            "overwrite",
            [*TRAIN, "--out", "run"],
            setup=_with("run"),
            protect=RUN_FILES,
            needs=("run",),
        ),
        cli(
            "train-onto-foreign-folder",
            "overwrite",
            [*TRAIN, "--out", "mine"],
            setup=_foreign("mine/config.json", "mine/summary.json"),
            protect=["mine/*"],
        ),
        cli(
            "finetune-onto-rank-study",
            "overwrite",
            ["finetune", *TRAIN[1:], "--pretrained", "w.safetensors", "--out", "rank"],
            setup=_with("rank", "w.safetensors"),
            protect=RANK_FILES,
            needs=("rank", "st"),
        ),
        cli(
            "detect-onto-classification-run",
            "overwrite",
            [*DETECT, "--out", "run"],
            setup=_with("run"),
            protect=RUN_FILES,
            needs=("run",),
            quick=True,
        ),
        cli(
            "detect-onto-detection-run",
            "overwrite",
            [*DETECT, "--out", "det"],
            setup=_with("det"),
            protect=DET_FILES,
            needs=("det",),
        ),
        cli(
            "detect-onto-rank-study",
            "overwrite",
            [*DETECT, "--out", "rank"],
            setup=_with("rank"),
            protect=RANK_FILES,
            needs=("rank",),
        ),
        cli("detect-onto-file", "overwrite", [*DETECT, "--out", "afile"], setup=_foreign("afile"), protect=["afile"]),
        cli(
            "rank-study-onto-classification-run",
            "overwrite",
            [*RANK, "--out", "run"],
            setup=_with("run"),
            protect=RUN_FILES,
            needs=("run",),
        ),
        cli(
            "rank-study-onto-detection-run",
            "overwrite",
            [*RANK, "--out", "det"],
            setup=_with("det"),
            protect=DET_FILES,
            needs=("det",),
        ),
        cli(
            "rank-profile-onto-run",
            "overwrite",
            ["rank", "profile", "rexnet_060", "--image-size", "32", "-b", "4", "--out", "run"],
            setup=_with("run"),
            protect=RUN_FILES,
            needs=("run",),
        ),
        cli(
            "search-onto-classification-run",
            "overwrite",
            [*SEARCH, "--out", "run"],
            setup=_with("run"),
            protect=RUN_FILES,
            needs=("run",),
            timeout=150,
        ),
        cli(
            "convert-onto-existing",
            "overwrite",
            ["convert", "w.safetensors", "other.safetensors"],
            setup=lambda d, fx: (_with("w.safetensors")(d, fx), (d / "other.safetensors").write_text("keep")),
            protect=["other.safetensors"],
            needs=("st",),
        ),
        cli(
            "convert-onto-checkpoint",
            "overwrite",
            ["convert", "w.safetensors", "run/checkpoints/best.pt"],
            setup=_with("run", "w.safetensors"),
            protect=RUN_FILES,
            needs=("run", "st"),
        ),
        cli(
            "eval-out-onto-foreign",
            "overwrite",
            ["eval", "-c", "run", "--data", "digits", "-o", "res.json"],
            setup=_foreign("res.json", also=("run",)),
            protect=["res.json", *RUN_FILES],
            needs=("run",),
        ),
        cli(
            "eval-out-onto-summary",
            "overwrite",
            ["eval", "-c", "run", "--data", "digits", "-o", "run/summary.json"],
            setup=_with("run"),
            protect=RUN_FILES,
            needs=("run",),
        ),
        cli(
            "eval-out-under-file",
            "overwrite",
            ["eval", "-c", "run", "--data", "digits", "-o", "afile/x.json"],
            setup=_foreign("afile", also=("run",)),
            protect=["afile"],
            needs=("run",),
        ),
        cli(
            "eval-confusion-onto-checkpoint",
            "overwrite",
            ["eval", "-c", "run", "--data", "digits", "--confusion", "run/checkpoints/best.pt"],
            setup=_with("run"),
            protect=RUN_FILES,
            needs=("run",),
        ),
        cli(
            "detect-predict-onto-foreign-png",
            "overwrite",
            ["detect", "predict", "det/checkpoints/best.pt", "img.png", "-o", "."],
            setup=lambda d, fx: (
                _with("det")(d, fx),
                (d / "img.png").write_bytes(craft.png_bytes(64, 64)),
                (d / "img_detections.png").write_text("another program's file"),
            ),
            protect=["img_detections.png"],
            needs=("det",),
        ),
        cli(
            "detect-export-onto-checkpoint",
            "overwrite",
            ["detect", "export", "det/checkpoints/best.pt", "-o", "det/checkpoints/last.pt", "--no-verify"],
            setup=_with("det"),
            protect=DET_FILES,
            needs=("det",),
        ),
        cli(
            "bench-onto-run-folder",
            "overwrite",
            [
                "bench",
                "--tiny",
                "--no-timm",
                "--no-int8",
                "--no-bf16",
                "--no-onnx",
                "--no-openvino",
                "--no-train",
                "--no-peers",
                "--out",
                "run",
            ],
            setup=_with("run"),
            protect=RUN_FILES,
            needs=("run",),
            timeout=150,
        ),
        cli(
            "two-detect-trains-one-out",
            "overwrite",
            [*DETECT, "--epochs", "5", "--train-limit", "32", "--out", "det2"],
            runner=two_at_once,
            expect="refuse",
            timeout=240,
            quick=True,
        ),
        cli(
            "two-trains-one-out",
            "overwrite",
            [*TRAIN, "--epochs", "5", "--train-limit", "256", "--out", "r2"],
            runner=two_at_once,
            timeout=240,
        ),
        cli(
            "two-rank-studies-one-out",
            "overwrite",
            [*RANK, "-n", "3000", "--ratios", "0.2", "0.4", "0.6", "0.8", "1.0", "--out", "rk2"],
            runner=two_at_once,
            timeout=240,
        ),
    ]


def atomic_probes() -> list[Probe]:
    """kill -9 in the middle of big exports that replace an earlier, good file (asked with --overwrite)."""
    big = ["export", "rexnet_300", "--image-size", "64", "--no-verify", "--overwrite"]
    return [
        cli(
            "kill9-onnx-export-rexnet300",
            "atomic",
            [*big, "--out", "old.onnx"],
            setup=_earlier_export("old.onnx"),
            runner=kill_mid_write("old.onnx"),
            expect="any",
            timeout=180,
            needs=("onnx",),
        ),
        cli(
            "kill9-torchscript-export-rexnet300",
            "atomic",
            [*big, "--format", "torchscript", "--out", "old.pt"],
            setup=_earlier_export("old.pt", "ts"),
            runner=kill_mid_write("old.pt"),
            expect="any",
            timeout=180,
            needs=("ts",),
        ),
        cli(
            "kill9-openvino-export-rexnet300",
            "atomic",
            [*big, "--format", "openvino", "--out", "ov"],
            setup=_earlier_ir,
            runner=kill_mid_write("ov/rexnet_300.xml"),
            expect="any",
            timeout=180,
            needs=("ov",),
            note="earlier rexnet_300 IR at ov/ must survive",
        ),
    ]
