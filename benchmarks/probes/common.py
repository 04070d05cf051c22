"""Shared pieces of the probe catalog: base command lines and small checks."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from . import craft
from .core import Probe

#: A legitimate, tiny classification run (rexnet_060 on 64 digits, one epoch) into ``r``.
TRAIN = ["train", "-m", "rexnet_060", "--epochs", "1", "--train-limit", "64", "--val-limit", "64",
         "--no-progress", "--no-tensorboard"]  # fmt: skip
#: A legitimate, tiny detection run (SSDLite on 8 demo canvases at 64 px).
DETECT = ["detect", "train", "--epochs", "1", "--train-limit", "8", "--val-limit", "4", "--image-size", "64",
          "--batch-size", "4", "--no-progress"]  # fmt: skip
#: A legitimate, tiny rank study.
RANK = ["rank", "study", "--blocks", "conv1x1", "--activations", "relu", "--ratios", "0.5", "-n", "2",
        "--no-progress", "--no-plot"]  # fmt: skip
#: A tiny search (one trial, one epoch, 64 images).
SEARCH = ["search", "run", "--blocks", "2", "--budget-macs", "1M", "--image-size", "16", "--trials", "1",
          "--epochs", "1", "--seeds", "1", "--max-samples", "64", "--val-samples", "32"]  # fmt: skip


def cli(name: str, family: str, argv: list[str], **kw: Any) -> Probe:
    """A CLI probe."""
    return Probe(name=name, family=family, argv=argv, **kw)


def api(name: str, family: str, code: str, **kw: Any) -> Probe:
    """A Python-API probe (``code`` runs in a fresh interpreter; RexnetError is a clean refusal)."""
    return Probe(name=name, family=family, code=code, **kw)


def predictions(stdout: str) -> dict[str, dict[str, float]]:
    """``image -> {class: probability}`` from ``predict --json``."""
    rows = json.loads(stdout[stdout.index("[") :])
    return {Path(r["image"]).name: {t["class"]: t["prob"] for t in r["top"]} for r in rows}


def _gap(a: dict[str, float], b: dict[str, float]) -> float:
    return max(abs(a.get(k, 0.0) - b.get(k, 0.0)) for k in set(a) | set(b))


def agree(pairs: list[tuple[str, str]], control: tuple[str, str], share: float = 0.05) -> Any:
    """A check: ``predict --json -k 10`` gives the same probabilities for each pair of images.

    ``control`` is a pair of very different images (noise vs flat white); each pair must differ by
    less than ``share`` of the control's difference (a 16-bit image saturated to white would differ
    by about all of it), and the control must differ at all (else the check proves nothing).
    """

    def check(d: Path, res: dict[str, Any]) -> tuple[str, str] | None:
        if res["rc"] != 0:
            return None  # a refusal is judged by the generic rules
        try:
            pred = predictions(res["stdout"])
        except (ValueError, KeyError, IndexError, TypeError) as e:
            return "wrong-result", f"unparseable predict --json output ({type(e).__name__})"
        ref = _gap(pred[control[0]], pred[control[1]])
        if ref <= 1e-7:
            return "setup-failed", f"the model gives {control} the same output: the check proves nothing"
        tol = share * ref
        bad = [(a, b, _gap(pred[a], pred[b])) for a, b in pairs if _gap(pred[a], pred[b]) > tol]
        if bad:
            a, b, g = bad[0]
            return (
                "wrong-result",
                f"{len(bad)}/{len(pairs)} pairs decode differently, e.g. {a} vs {b}: "
                f"|dp| {g:.2g} (noise vs white: {ref:.2g})",
            )
        return None

    return check


def needs_warning(*words: str) -> Any:
    """A check: an accepted run must say (on stderr) one of ``words``, else it is misleading."""

    def check(d: Path, res: dict[str, Any]) -> tuple[str, str] | None:
        if res["rc"] == 0 and not any(w.lower() in res["stderr"].lower() for w in words):
            return "misleading", f"exit 0 and no warning mentioning {' / '.join(words)}"
        return None

    return check


def not_read(marker: str) -> Any:
    """A check: a run that exits 0 must not have used the file outside the dataset (misleading otherwise)."""

    def check(d: Path, res: dict[str, Any]) -> tuple[str, str] | None:
        if res["rc"] == 0:
            return "misleading", f"accepted a file name pointing outside the dataset ({marker})"
        return None

    return check


def marker(d: Path, res: dict[str, Any]) -> tuple[str, str] | None:
    if (d / "PWNED").exists():
        return "executed", "a crafted pickle ran code"
    return None


def files(**files: Any) -> Any:
    """A setup writing ``name=bytes|callable(d, fx)``; names may hold ``/``; ``fifo`` values make pipes."""

    def setup(d: Path, fx: Path) -> None:
        for name, content in files.items():
            path = d / name.replace("__", "/")
            path.parent.mkdir(parents=True, exist_ok=True)
            if content == "fifo":
                craft.fifo(path)
            elif callable(content):
                content(path, fx)
            else:
                path.write_bytes(content)

    return setup


def huge_plan(plan: dict[str, Any]) -> None:
    for b in plan["blocks"]:
        b["exp_channels"] = 30_000_000
    plan["final_conv"]["out_channels"] = 30_000_000
