"""Run one hostile probe in a sandbox and classify what happened.

Every probe is a subprocess (the CLI, or a ``python -c`` snippet of the API) run in its own folder
under a memory cap (``RLIMIT_AS``), a wall timeout and a blocked, watched network (a
``sitecustomize.py`` that records and refuses every non-loopback connect and DNS lookup).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import resource
import shutil
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

#: Outcomes that are fine; anything else makes the probe script exit non-zero.
GOOD = ("refused", "ok")
#: Every outcome, worst first (a probe gets the worst that applies).
OUTCOMES = (
    "setup-failed",
    "network",
    "executed",
    "overwrote",
    "nan-completed",
    "hang",
    "memory",
    "crash",
    "traceback",
    "wrong-result",
    "misleading",
    "refused",
    "ok",
)

SITECUSTOMIZE = r"""
# Written by benchmarks/probe_hostile.py: record and refuse any network access but loopback.
import os, socket
_LOG = os.environ.get("REXNET_PROBE_NETLOG")
_LOCAL = ("127.", "::1", "localhost", "0.0.0.0")

def _note(what):
    if _LOG:
        with open(_LOG, "a") as f:
            f.write(what + "\n")
    raise OSError(101, "network blocked by the hostile-input probe: " + what)

def _host_ok(host):
    if not isinstance(host, (bytes, str)):
        return False
    host = host.decode() if isinstance(host, bytes) else host
    return host == "" or host.startswith(_LOCAL)

_getaddrinfo = socket.getaddrinfo
def getaddrinfo(host, *a, **k):
    if host is not None and not _host_ok(host):
        _note(f"getaddrinfo {host!r}")
    return _getaddrinfo(host, *a, **k)
socket.getaddrinfo = getaddrinfo

_connect, _connect_ex = socket.socket.connect, socket.socket.connect_ex
def _check(sock, address):
    if sock.family in (socket.AF_INET, socket.AF_INET6) and not _host_ok(address[0]):
        _note(f"connect {address!r}")
def connect(self, address):
    _check(self, address)
    return _connect(self, address)
def connect_ex(self, address):
    _check(self, address)
    return _connect_ex(self, address)
socket.socket.connect, socket.socket.connect_ex = connect, connect_ex
"""

API_WRAPPER = """
import sys
try:
{code}
except BaseException as e:
    from rexnet.errors import RexnetError
    if isinstance(e, RexnetError):
        print(f"rexnet api: {{e.outcome}}: {{e}}", file=sys.stderr)
        sys.exit(e.exit_code)
    raise
"""

_ERROR_LINE = re.compile(r"^rexnet( [\w-]+)*: (error|failed|diverged|locked|interrupted|timeout)\b", re.M)
# per-item reports on stdout (``predict``: ``IMAGE: error: ...``) are clean refusals too
_ITEM_ERROR = re.compile(r"^\S.*?: error: ", re.M)
_MEMORY = re.compile(
    r"MemoryError|bad_alloc|can't allocate memory|Cannot allocate memory|Out of memory allocating", re.I
)
_CRASH = re.compile(r"terminate called|Segmentation fault|core dumped|Exception raised from|Fatal Python error")
_BARE_NAN = re.compile(rb"\bNaN\b|-?\bInfinity\b")


@dataclass
class Probe:
    """One hostile invocation.

    ``argv`` (the CLI after ``rexnet``) or ``code`` (a Python snippet) is formatted with ``d`` (the
    probe's folder, also its working directory) and ``fx`` (the shared fixtures).
    """

    name: str
    family: str
    argv: list[str] | None = None
    code: str | None = None
    setup: Callable[[Path, Path], None] | None = None
    env: dict[str, str] = field(default_factory=dict)
    timeout: float = 90.0
    expect: str = "refuse"  # refuse | ok | any
    protect: list[str] = field(default_factory=list)  # globs under d whose bytes must not change
    check: Callable[[Path, dict[str, Any]], tuple[str, str] | None] | None = None
    runner: Callable[[Probe, Ctx, Path], dict[str, Any]] | None = None
    needs: tuple[str, ...] = ()  # fixtures: run, det, rank, onnx, st, ts, ov, rnd
    max_rss_mb: int | None = None  # a bomb must be refused before its process grows past this
    quick: bool = False  # in the pytest subset
    note: str = ""


@dataclass
class Ctx:
    """What every probe run shares: the interpreter, the fixtures, the sandbox settings."""

    python: str
    out: Path
    fx: Path
    mem_bytes: int
    sitedir: Path
    base_env: dict[str, str]

    @classmethod
    def make(cls, out: Path, mem_gib: float, python: str = sys.executable) -> Ctx:
        out.mkdir(parents=True, exist_ok=True)
        sitedir = out / "sitecustomize"
        sitedir.mkdir(exist_ok=True)
        (sitedir / "sitecustomize.py").write_text(SITECUSTOMIZE)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("WORLD_SIZE", "RANK", "LOCAL_", "MASTER_"))}
        env["PYTHONPATH"] = os.pathsep.join([str(sitedir), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
        env.setdefault("OMP_WAIT_POLICY", "PASSIVE")
        env.update({"OMP_NUM_THREADS": "1", "MPLBACKEND": "Agg", "NO_PROXY": "*", "PYTHONUNBUFFERED": "1"})
        for k in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY"):
            env.pop(k, None)
        return cls(python, out, out / "fixtures", int(mem_gib * 2**30), sitedir, env)

    def env_for(self, d: Path, extra: dict[str, str]) -> dict[str, str]:
        env = dict(self.base_env)
        env.update(
            {
                "REXNET_PROBE_NETLOG": str(d / ".netlog"),
                "TORCH_HOME": str(d / ".torch_home"),
                "HF_HOME": str(d / ".hf_home"),
                "XDG_CACHE_HOME": str(d / ".cache"),
            }
        )
        env.update(extra)
        return {k: v for k, v in env.items() if v is not None}


def command(p: Probe, ctx: Ctx, d: Path) -> list[str]:
    """The probe's command line."""
    if p.argv is not None:
        return [ctx.python, "-m", "rexnet", *[fill(a, d, ctx.fx) for a in p.argv]]
    code = textwrap.indent(fill(textwrap.dedent(p.code or "pass"), d, ctx.fx), "    ")
    return [ctx.python, "-c", API_WRAPPER.format(code=code)]


def fill(text: str, d: Path, fx: Path) -> str:
    """``text`` with ``{d}`` and ``{fx}`` replaced (other braces, e.g. JSON, stay as they are)."""
    return text.replace("{d}", str(d)).replace("{fx}", str(fx))


def limiter(mem_bytes: int) -> Callable[[], None]:
    """A ``preexec_fn`` capping the address space (the memory cap of every probe)."""

    def apply() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (mem_bytes, mem_bytes))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        os.nice(5)

    return apply


def spawn(cmd: list[str], ctx: Ctx, d: Path, env: dict[str, str]) -> subprocess.Popen:
    """Start ``cmd`` in ``d`` under the cap, in its own process group."""
    return subprocess.Popen(
        cmd,
        cwd=d,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        preexec_fn=limiter(ctx.mem_bytes),
        start_new_session=True,
    )


def finish(proc: subprocess.Popen, timeout: float) -> dict[str, Any]:
    """Wait for ``proc``; on timeout send SIGINT (as Ctrl-C), then SIGKILL to its group."""
    t0, hung, sigint_ok = time.monotonic(), False, None
    peak = [0]
    sampler = threading.Thread(target=_sample_rss, args=(proc, peak), daemon=True)
    sampler.start()
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        hung = True
        with_signal(proc, signal.SIGINT)
        try:
            out, err = proc.communicate(timeout=10)
            sigint_ok = True
        except subprocess.TimeoutExpired:
            sigint_ok = False
            with_signal(proc, signal.SIGKILL)
            out, err = proc.communicate()
    return {
        "rc": proc.returncode,
        "stdout": out.decode(errors="replace"),
        "stderr": err.decode(errors="replace"),
        "seconds": round(time.monotonic() - t0, 1),
        "hung": hung,
        "sigint_ended_it": sigint_ok,
        "peak_rss_mb": peak[0] // 1024,
    }


def _sample_rss(proc: subprocess.Popen, peak: list[int]) -> None:
    """Track the high-water mark (VmHWM, kB) of ``proc`` while it runs."""
    while proc.poll() is None:
        try:
            with open(f"/proc/{proc.pid}/status") as f:
                for line in f:
                    if line.startswith("VmHWM:"):
                        peak[0] = max(peak[0], int(line.split()[1]))
        except (OSError, ValueError):
            pass
        time.sleep(0.05)


def with_signal(proc: subprocess.Popen, sig: int) -> None:
    """Send ``sig`` to the process group of ``proc`` (ignoring one that is gone)."""
    try:
        os.killpg(proc.pid, sig)
    except ProcessLookupError:
        pass


def default_runner(p: Probe, ctx: Ctx, d: Path) -> dict[str, Any]:
    """Run the probe's one command."""
    return finish(spawn(command(p, ctx, d), ctx, d, ctx.env_for(d, p.env)), p.timeout)


def sha(path: Path) -> str:
    """SHA-256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def snapshot(d: Path, globs: list[str]) -> dict[str, str]:
    """Hashes of the protected files under ``d``."""
    return {str(f.relative_to(d)): sha(f) for g in globs for f in sorted(d.glob(g)) if f.is_file()}


def nonfinite_in(obj: Any) -> bool:
    """Whether a parsed JSON value holds a NaN or infinity anywhere."""
    if isinstance(obj, float):
        return not math.isfinite(obj)
    if isinstance(obj, dict):
        return any(nonfinite_in(v) for v in obj.values())
    if isinstance(obj, list):
        return any(nonfinite_in(v) for v in obj)
    return False


def mtimes(d: Path) -> dict[str, int]:
    """``path -> mtime_ns`` of every regular file under ``d`` (what the probe's setup left)."""
    return {str(f): f.stat().st_mtime_ns for f in d.rglob("*") if f.is_file()}


def json_findings(d: Path, since: dict[str, int]) -> list[str]:
    """Run outputs written by the probe (new or changed since ``since``) that hold NaN/inf."""
    found = []
    for f in list(d.rglob("*.json")) + list(d.rglob("*.jsonl")):
        if not f.is_file() or since.get(str(f)) == f.stat().st_mtime_ns or f.name.startswith("."):  # FIFOs block
            continue
        raw = f.read_bytes()
        if _BARE_NAN.search(raw):
            found.append(f"{f.relative_to(d)} holds bare NaN/Infinity (not JSON)")
        elif f.name == "summary.json":
            try:
                if nonfinite_in(json.loads(raw)):
                    found.append(f"{f.relative_to(d)} holds non-finite values")
            except ValueError:
                pass
    return found


def checkpoint_findings(d: Path, since: dict[str, int]) -> list[str]:
    """Checkpoints written by the probe (new or changed) whose weights are not finite."""
    found = []
    for f in d.rglob("checkpoints/*.pt"):
        if not f.is_file() or since.get(str(f)) == f.stat().st_mtime_ns:
            continue
        try:
            import torch

            ck = torch.load(f, map_location="cpu", weights_only=True)
        except Exception as e:  # unreadable: say so, it is not a finite checkpoint either
            found.append(f"{f.relative_to(d)} unreadable ({type(e).__name__})")
            continue
        state = ck.get("model", ck) if isinstance(ck, dict) else {}
        bad = [k for k, v in state.items() if hasattr(v, "is_floating_point") and v.is_floating_point()]
        if any(not torch.isfinite(state[k]).all() for k in bad):
            found.append(f"{f.relative_to(d)} has non-finite weights")
    return found


def classify(p: Probe, d: Path, res: dict[str, Any], before: dict[str, str], t0: dict[str, int]) -> tuple[str, str]:
    """The worst outcome that applies, with a one-line reason."""
    err, out, rc = res["stderr"], res["stdout"], res["rc"]
    net = (d / ".netlog").read_text().strip() if (d / ".netlog").exists() else ""
    cached = [str(f.relative_to(d)) for f in (d / ".torch_home").rglob("*") if f.is_file()]
    tried = last_line(err, re.compile(r"^Downloading:? .*https?://"))
    if net or cached or tried:
        return "network", (net.splitlines() or cached or [tried])[0]
    verdict = p.check(d, res) if p.check else None
    if verdict and verdict[0] == "executed":
        return verdict
    after = snapshot(d, p.protect)
    changed = [k for k, v in before.items() if after.get(k) != v]
    if changed or res.get("overwrote"):
        return "overwrote", res.get("overwrote") or f"changed without --overwrite: {', '.join(changed[:3])}"
    if rc == 0:
        bad = json_findings(d, t0) + checkpoint_findings(d, t0)
        if re.search(r"(?i)\bnan\b", out):
            bad.append("printed nan")
        if bad:
            return "nan-completed", "; ".join(bad[:2])
    if res["hung"]:
        return "hang", f"no end in {p.timeout:.0f} s; SIGINT {'ended' if res['sigint_ended_it'] else 'did not end'} it"
    if rc == -signal.SIGKILL or _MEMORY.search(err):  # even behind a clean message: it tried first, checked after
        return "memory", last_line(err, _MEMORY) or "killed (SIGKILL)"
    peak = res.get("peak_rss_mb", 0)
    if p.max_rss_mb and peak > p.max_rss_mb:
        return "memory", f"peak RSS {peak} MB > {p.max_rss_mb} MB: the input was read before it was checked"
    if "Traceback (most recent call last)" in err:
        return "traceback", last_line(err)
    if _CRASH.search(err) or (rc is not None and rc < 0):
        return "crash", last_line(err, _CRASH) or f"killed by signal {-rc}"
    if verdict:
        return verdict
    if rc != 0:
        line = _ERROR_LINE.search(err)
        item = _ITEM_ERROR.search(out)
        if not line and item:
            return "refused", out[item.start() :].splitlines()[0][:300]
        if not line:
            return "misleading", f"exit {rc} without a one-line 'rexnet ...: error:' message: {last_line(err)}"
        bare = json_findings(d, t0)
        if bare:
            return "misleading", bare[0]
        return "refused", err[line.start() :].splitlines()[0][:300]
    if p.expect == "refuse":
        return "misleading", "accepted (exit 0) where a refusal or a clear warning was expected"
    return "ok", last_line(out) or "exit 0"


def last_line(text: str, pattern: re.Pattern | None = None) -> str:
    """The last non-empty line of ``text`` (matching ``pattern`` if given), shortened."""
    lines = [ln.strip() for ln in text.splitlines() if ln.strip() and (pattern is None or pattern.search(ln))]
    return lines[-1][:300] if lines else ""


def run_probe(p: Probe, ctx: Ctx) -> dict[str, Any]:
    """Set up, run and classify one probe; its folder is ``out/work/<name>``."""
    d = ctx.out / "work" / p.name
    if d.exists():
        shutil.rmtree(d)
    d.mkdir(parents=True)
    record: dict[str, Any] = {"name": p.name, "family": p.family, "expect": p.expect, "note": p.note}
    try:
        if p.setup:
            p.setup(d, ctx.fx)
        before = snapshot(d, p.protect)
    except Exception as e:
        record.update(outcome="setup-failed", detail=f"{type(e).__name__}: {e}"[:300], rc=None, seconds=0)
        return record
    t0 = mtimes(d)
    try:
        record["command"] = " ".join(command(p, ctx, d)) if p.runner is None else "(custom runner)"
        res = (p.runner or default_runner)(p, ctx, d)
        outcome, detail = classify(p, d, res, before, t0)
    except Exception as e:  # a bug of the probe itself: recorded, and the pass goes on
        record.update(outcome="setup-failed", detail=f"probe error {type(e).__name__}: {e}"[:300], rc=None, seconds=0)
        return record
    record.update(
        outcome=outcome,
        detail=detail,
        rc=res["rc"],
        seconds=res["seconds"],
        peak_rss_mb=res.get("peak_rss_mb"),
        stderr_tail=res["stderr"][-1500:],
        stdout_tail=res["stdout"][-500:],
    )
    return record
