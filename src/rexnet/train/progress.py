"""What the loop shows and listens to: a progress bar or log lines, and Ctrl-C / SIGTERM as a flag."""

from __future__ import annotations

import logging
import signal
import sys
import threading
from typing import Any

from .._signals import repair_altstack

log = logging.getLogger("rexnet.train.loop")  # the loop's messages, whichever module writes them


class _StopFlag:
    """Turns SIGINT/SIGTERM into a flag the loop checks after each optimiser step."""

    def __init__(self) -> None:
        self.signal: int | None = None
        self._old: dict[int, Any] = {}

    def __enter__(self) -> _StopFlag:
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


class _Progress:
    """A tqdm bar on a terminal; otherwise a log line every ``every`` steps (none inside the epoch if 0)."""

    def __init__(self, enabled: bool, total: int, initial: int, desc: str, every: int) -> None:
        self.bar, self.every, self.total, self.desc = None, every if enabled else 0, total, desc
        if enabled and _is_terminal():
            from tqdm import tqdm

            self.bar = tqdm(total=total, initial=initial, desc=desc, leave=False, dynamic_ncols=True)

    def update(self, step: int, **stats: str) -> None:
        if self.bar is not None:
            self.bar.set_postfix(**stats)
            self.bar.update(1)
        elif self.every and step % self.every == 0:
            log.info("%s step %d/%d  %s", self.desc, step, self.total, "  ".join(f"{k} {v}" for k, v in stats.items()))

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _is_terminal() -> bool:
    return sys.stderr.isatty()
