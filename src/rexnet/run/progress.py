"""What a long job shows and listens to: a progress bar or log lines, and Ctrl-C / SIGTERM as a flag."""

from __future__ import annotations

import logging
import signal
import sys
import threading
from typing import Any

from .._signals import repair_altstack

__all__ = ["StopFlag", "Progress"]

log = logging.getLogger("rexnet.run")


class StopFlag:
    """Turns SIGINT/SIGTERM into a flag the loop checks after each optimiser step."""

    def __init__(self) -> None:
        self.signal: int | None = None  # the first signal received
        self._old: dict[int, Any] = {}

    def __enter__(self) -> StopFlag:
        if threading.current_thread() is threading.main_thread():
            repair_altstack()  # an earlier OpenVINO model may have left a dangling one: Ctrl-C would segfault
            for s in (signal.SIGINT, signal.SIGTERM):
                self._old[s] = signal.signal(s, self._handle)
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        if self.signal is not None:  # second signal: stop now
            raise KeyboardInterrupt
        self.signal = signum
        log.warning("received %s: finishing this step, saving a checkpoint, then stopping", signal.Signals(signum).name)

    def __exit__(self, *exc: Any) -> None:
        for s, h in self._old.items():
            signal.signal(s, h)


class Progress:
    """A tqdm bar on a terminal; otherwise (a log file) a log line every ``every`` steps (none if 0).

    Args:
        enabled: Show anything at all (e.g. only on the main process).
        total / initial: Steps in all, and already done (a resumed epoch).
        desc: What the line says first (``epoch 2/10``).
        every: Steps between log lines when stderr is not a terminal.
    """

    def __init__(self, enabled: bool, total: int, initial: int, desc: str, every: int) -> None:
        self.bar, self.every, self.total, self.desc = None, every if enabled else 0, total, desc
        self.done = initial
        if enabled and _is_terminal():
            from tqdm import tqdm

            self.bar = tqdm(total=total, initial=initial, desc=desc, leave=False, dynamic_ncols=True)

    def update(self, step: int, **stats: str) -> None:
        """One step done; ``stats`` go on the bar or the log line."""
        if self.bar is not None:
            self.bar.set_postfix(**stats)
            self.bar.update(1)
        elif self.every and step % self.every == 0:
            log.info("%s step %d/%d  %s", self.desc, step, self.total, "  ".join(f"{k} {v}" for k, v in stats.items()))

    def advance(self, n: int = 1, **stats: str) -> None:
        """``n`` more units done (e.g. networks of a rank-study point); a log line each time a multiple of
        ``every`` is passed, so a log file gets one line per interval, never a carriage return."""
        before, self.done = self.done, self.done + n
        if self.bar is not None:
            if stats:
                self.bar.set_postfix(**stats)
            self.bar.update(n)
        elif self.every and self.done // self.every > before // self.every:
            extra = "  ".join(f"{k} {v}" for k, v in stats.items())
            log.info("%s %d/%d  %s", self.desc, self.done, self.total, extra)

    def close(self) -> None:
        """Remove the bar."""
        if self.bar is not None:
            self.bar.close()


def _is_terminal() -> bool:
    return sys.stderr.isatty()
