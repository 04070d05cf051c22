"""The run folder of one long job, held by this process: its kind, its lock, its config and its records.

A run folder says what it holds in ``run.json`` (``{"kind": "train" | "detect" | "rank-study" |
"search", ...}``); folders written before the marker existed are recognised by their files. A job
refuses a folder of another kind, a file where a folder belongs, and a finished run of its own kind
unless it resumes it. While a job holds the folder (:meth:`Run.open` takes the run lock) it may
replace the files in it; every file goes through :mod:`rexnet._files` (atomic, strict JSON), and a
checkpoint whose weights are not finite is never written.

Example:
    >>> import tempfile
    >>> with Run(tempfile.mkdtemp(), "train").open() as run:
    ...     run.write_config({"lr": 0.1})
    ...     run.log_epoch({"epoch": 1, "val_loss": float("nan")})  # strict JSON: null
    >>> folder_kind(run.folder)
    'train'
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

import torch

from .._files import atomic_write, atomic_write_paths, dumps_json, write_json
from ..errors import InputError
from .finite import check_finite
from .lock import RunLock

__all__ = ["Run", "KINDS", "MARKER", "folder_kind"]

log = logging.getLogger(__name__)

MARKER = "run.json"
#: Every kind of run folder, with how messages name it.
KINDS = {
    "train": "a classification training run",
    "detect": "a detection training run",
    "rank-study": "a rank study",
    "search": "a channel-configuration search",
}


def _legacy_kind(folder: Path) -> str | None:
    """The kind of a folder written before ``run.json`` existed, from its files."""
    if (folder / "points.jsonl").exists() or (folder / "rank_study.csv").exists():
        return "rank-study"
    if (folder / "search.db").exists() or (folder / "trials.csv").exists():
        return "search"
    cfg = folder / "config.json"
    if not cfg.is_file():
        return "unknown" if (folder / "checkpoints").is_dir() and any((folder / "checkpoints").iterdir()) else None
    try:
        d = json.loads(cfg.read_text())
    except (OSError, ValueError):
        return "unknown"
    if not isinstance(d, dict):
        return "unknown"
    if "blocks" in d and "protocol" in d:
        return "rank-study"
    if "arch" in d and "backbone" in d:
        return "detect"
    if "model" in d and "data" in d:
        return "train"
    return "unknown"


def folder_kind(folder: str | os.PathLike) -> str | None:
    """What ``folder`` holds: a kind of :data:`KINDS`, ``"unknown"`` (a ``config.json`` of nothing we
    know), or ``None`` (missing, or no run in it).

    Raises:
        InputError: ``folder`` is a file, or its ``run.json`` is corrupt.
    """
    folder = Path(folder)
    if not folder.exists():
        return None
    if not folder.is_dir():
        raise InputError(f"run folder {folder} is a file, not a folder; choose another --out")
    marker = folder / MARKER
    if marker.is_file():
        try:
            kind = json.loads(marker.read_text()).get("kind")
        except (OSError, ValueError, AttributeError):
            kind = None
        if kind not in KINDS:
            raise InputError(f"{marker} is corrupt (expected {{'kind': one of {', '.join(KINDS)}}}); is it a run?")
        return kind
    return _legacy_kind(folder)


class Run:
    """One long job's run folder: ``with Run(out, "train").open(resume=...) as run: ...``.

    Args:
        folder: The run folder; ``None`` writes nothing (in-memory runs, e.g. search trials).
        kind: One of :data:`KINDS`.
        main: Whether this process writes (the main process under DDP; the others only read).
        shared: Cooperating workers share the folder (a search): the lock is taken shared.
        finished: Files (relative to the folder) whose presence means a run already happened there.
    """

    def __init__(
        self,
        folder: str | os.PathLike | None,
        kind: str,
        *,
        main: bool = True,
        shared: bool = False,
        finished: Sequence[str] = ("checkpoints/last.pt",),
    ) -> None:
        if kind not in KINDS:
            raise ValueError(f"unknown run kind {kind!r}")  # a bug in the caller, not user input
        self.folder = Path(folder) if folder is not None else None
        self.kind, self.main, self.finished = kind, main, tuple(finished)
        self.lock = RunLock(self.folder, shared=shared) if self.folder is not None and main else None
        self.history: list[dict[str, Any]] = []
        self.tb: Any = None

    @property
    def writes(self) -> bool:
        """Whether this process writes the folder."""
        return self.folder is not None and self.main

    # ---- claim and release ------------------------------------------------------------------------
    def check(self, *, resume: bool = False) -> None:
        """Refuse a file, a folder of another kind, or a finished run of this kind without ``resume``."""
        if self.folder is None:
            return
        kind = folder_kind(self.folder)
        if kind not in (None, self.kind):
            what = KINDS.get(kind, "files of another program (a config.json rexnet does not know)")  # type: ignore[arg-type]
            raise InputError(
                f"{self.folder} holds {what}, not {KINDS[self.kind]}; refusing to write over it: choose another --out"
            )
        done = [f for f in self.finished if (self.folder / f).exists()]
        if not resume and done:
            raise InputError(
                f"{self.folder} already holds {KINDS[self.kind]} ({done[0]}); pass --resume to continue it "
                "or choose another --out"
            )

    def open(self, *, resume: bool = False) -> Run:
        """Check the folder (:meth:`check`), take the run lock, mark the folder's kind.

        Raises:
            InputError: See :meth:`check`.
            RunLockedError: Another live process holds the folder.
        """
        self.check(resume=resume)
        if self.lock is None:
            return self
        self.lock.acquire()
        try:
            self.check(resume=resume)  # again under the lock: another run may have finished meanwhile
            if not (self.folder / MARKER).exists():  # type: ignore[operator]
                stamp = time.strftime("%Y-%m-%dT%H:%M:%S%z")
                write_json({"kind": self.kind, "created": stamp}, self.folder / MARKER)  # type: ignore[operator]
        except BaseException:
            self.lock.release()
            raise
        return self

    def close(self) -> None:
        """Close TensorBoard and release the lock."""
        if self.tb is not None:
            self.tb.close()
            self.tb = None
        if self.lock is not None:
            self.lock.release()

    def __enter__(self) -> Run:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # ---- records ----------------------------------------------------------------------------------
    def write_json(self, name: str, obj: Any) -> None:
        """``folder/name`` as strict JSON (non-finite numbers as ``null``), atomically."""
        if self.writes:
            write_json(obj, self.folder / name)  # type: ignore[operator]

    def write_config(self, config: Mapping[str, Any]) -> None:
        """``config.json``: what the run was started with (read back by ``--resume``)."""
        self.write_json("config.json", dict(config))

    def reset_metrics(self, history: Sequence[Mapping[str, Any]], *, tensorboard: bool = False) -> None:
        """Start ``metrics.jsonl`` from a checkpoint's history, so a resumed epoch appears once."""
        self.history = [dict(m) for m in history]
        if not self.writes:
            return
        self._write_metrics()
        if tensorboard and self.tb is None:
            try:
                from torch.utils.tensorboard import SummaryWriter

                purge = len(self.history) + 1 if self.history else None  # redone epochs replace their events
                self.tb = SummaryWriter(str(self.folder / "tensorboard"), purge_step=purge)  # type: ignore[operator]
            except ImportError:
                log.info("tensorboard not installed; no event files written")

    def _write_metrics(self) -> None:
        text = "".join(dumps_json(m, indent=None) for m in self.history)
        atomic_write(self.folder / "metrics.jsonl", text)  # type: ignore[operator]

    def log_epoch(self, metrics: Mapping[str, Any]) -> None:
        """Add one line to ``metrics.jsonl`` (the file is rewritten atomically) and TensorBoard."""
        self.history.append(dict(metrics))
        if not self.writes:
            return
        self._write_metrics()
        if self.tb is not None:
            for k, v in metrics.items():
                if k != "epoch" and isinstance(v, (int, float)):
                    self.tb.add_scalar(k, v, metrics["epoch"])
            self.tb.flush()

    def plot(self, name: str, draw: Callable[[Path], Any]) -> None:
        """Draw a figure with ``draw(path)`` into ``folder/name`` atomically; a failed plot only warns."""
        if not self.writes:
            return
        try:
            atomic_write_paths(self.folder / name, draw)  # type: ignore[operator]
        except Exception as e:  # a plot must never lose a run
            log.warning("could not draw %s: %s", name, e)

    # ---- checkpoints ------------------------------------------------------------------------------
    @property
    def checkpoints(self) -> Path | None:
        """``folder/checkpoints`` (``None`` without a folder)."""
        return self.folder / "checkpoints" if self.folder is not None else None

    def save_checkpoint(self, state: Mapping[str, Any], name: str = "last.pt", *, where: str = "") -> None:
        """Write ``checkpoints/name`` atomically, after checking that its weights are finite.

        Args:
            state: The checkpoint; its ``model`` and ``ema`` entries (state dicts) are checked.
            where: When the save happens, for the message (``after epoch 3``).

        Raises:
            DivergedError: Non-finite weights (nothing is written; the last finite checkpoint stays).
        """
        for key in ("model", "ema"):
            if isinstance(state.get(key), Mapping):
                check_finite(where or f"before saving {name}", state[key])
        if self.writes:
            atomic_write(self.checkpoints / name, lambda f: torch.save(dict(state), f), what="checkpoint")  # type: ignore[operator]

    def copy_checkpoint(self, src: str, dst: str) -> None:
        """``checkpoints/dst`` becomes a copy of ``checkpoints/src`` (e.g. ``last.pt`` -> ``best.pt``), atomically."""
        if not self.writes:
            return
        with open(self.checkpoints / src, "rb") as f:  # type: ignore[operator]
            atomic_write(self.checkpoints / dst, lambda out: shutil.copyfileobj(f, out), what="checkpoint")  # type: ignore[operator]

    def last_checkpoint(self) -> Path | None:
        """``checkpoints/last.pt`` if it exists."""
        path = self.checkpoints / "last.pt" if self.checkpoints is not None else None
        return path if path is not None and path.is_file() else None
