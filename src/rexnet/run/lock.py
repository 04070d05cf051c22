"""One process per run folder: ``RUN_DIR/run.lock`` holds the owner's PID under an exclusive ``flock``.

The kernel drops a ``flock`` when its holder dies (even by ``kill -9``), so a lock file whose lock
can be taken again belongs to a dead process: it is taken over with a notice naming the old PID.
A search, whose workers share one folder on purpose, takes the lock *shared*: any number of its
workers hold it together, and an exclusive holder (a training run) is refused while they do.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import socket
import time
from pathlib import Path
from types import TracebackType

from .._files import hold_folder, release_folder
from ..errors import RunLockedError

__all__ = ["RunLock", "LOCK_NAME"]

log = logging.getLogger(__name__)

LOCK_NAME = "run.lock"


class RunLock:
    """Exclusive ownership of a run folder for the lifetime of a ``with`` block.

    Args:
        run_dir: The run folder (created if missing).
        shared: Take the lock shared (several cooperating workers of one search) instead of exclusive.

    Raises:
        RunLockedError: On entry, when another live process holds the folder.

    Example:
        >>> with RunLock("/tmp/rexnet-doc-run"):  # doctest: +SKIP
        ...     pass
    """

    def __init__(self, run_dir: str | os.PathLike, *, shared: bool = False) -> None:
        self.path = Path(run_dir) / LOCK_NAME
        self.shared = shared
        self._fd: int | None = None

    def acquire(self) -> RunLock:
        """Take the lock (non-blocking: a busy folder is an error at once, never a wait)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        mode = fcntl.LOCK_SH if self.shared else fcntl.LOCK_EX
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
            try:
                fcntl.flock(fd, mode | fcntl.LOCK_NB)
            except BlockingIOError:
                owner = _read_owner(fd) or "the workers of a search"
                os.close(fd)
                raise RunLockedError(
                    f"{self.path.parent} is in use by another run ({owner}); wait for it to finish, stop it, "
                    "or choose another --out"
                ) from None
            # the previous holder may have unlinked the file between our open and flock: retry on the new one
            try:
                same = os.fstat(fd).st_ino == os.stat(self.path).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)
        self._fd = fd
        hold_folder(self.path.parent)  # the holder may replace the files of its run folder
        if self.shared:  # co-holders: the file is theirs too, nothing to write in it
            return self
        old = _read_owner(fd)
        if old:
            log.warning("taking over %s: its owner (%s) is no longer running", self.path, old)
        os.ftruncate(fd, 0)
        os.pwrite(
            fd,
            json.dumps(
                {"pid": os.getpid(), "host": socket.gethostname(), "started": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
            ).encode(),
            0,
        )
        return self

    def release(self) -> None:
        """Give the folder back (the lock file goes with an exclusive lock)."""
        if self._fd is None:
            return
        release_folder(self.path.parent)
        if not self.shared:
            try:
                os.unlink(self.path)  # while still locked: a waiting process retries on a fresh file
            except FileNotFoundError:
                pass
        os.close(self._fd)
        self._fd = None

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release()


def _read_owner(fd: int) -> str:
    """``PID n on HOST since T`` from the lock file, or ``""`` when it is empty."""
    try:
        raw = os.pread(fd, 4096, 0).decode(errors="replace").strip()
    except OSError:
        return ""
    if not raw:
        return ""
    try:
        d = json.loads(raw)
        return f"PID {d.get('pid')} on {d.get('host')} since {d.get('started')}"
    except (json.JSONDecodeError, AttributeError):
        return f"lock content {raw[:60]!r}"
