"""The execution plan of a CPU training run, chosen by timing the run's own steps.

Which thread count is fastest depends on the work per step and on what else the machine runs: on an
idle 2-core EPYC two briefly spinning OpenMP threads train a 32 px ReXNet 1.3x faster than one; with one
competing busy process, two threads are 2-4x *slower* than one (benchmarks/RESULTS.md, "Fast CPU
training"). No rule set before the run knows which case holds, so :class:`ThreadPlanner` measures:

* **Calibration.** The first optimiser steps of the run are timed under each candidate thread count
  (1, 2, 4, ... up to the cores this process may use): one untimed warm-up step, then a few timed ones,
  per candidate. They are real training steps, so the calibration costs only the difference between
  the candidates, not the steps themselves. A candidate far slower than one already timed is dropped
  early, and while one thread gets less than :data:`CONTENDED` of a core (CPU time over wall time of its
  steps) more threads are not tried at all. The fastest is kept and logged with its img/s.
* **Re-timing.** The step time (data wait included) is watched: when its median over the last steps
  drifts more than :data:`DRIFT` from the chosen plan's own steady state (the median of its first
  :data:`WINDOW` steps after a calibration, not the calibration's few steps, which are too noisy to
  compare with: a process started or stopped beside us; on one thread only a speed-up counts, since a
  slow-down there is more contention, where more threads only lose), or
  every :data:`RECHECK_SECONDS`, the candidates are timed again. Under contention that falls back to one
  thread, where no OpenMP team waits on a busy core.

The planner is off (the thread count stays as given) with ``plan="fixed"``, an explicit ``threads``, on
a GPU, under DDP (ranks would time each other's waits), and where only one core is available. Thread
counts change results in the last bits (kernels split their sums by thread), so a run that must repeat
bit for bit uses ``plan="fixed"``.
"""

from __future__ import annotations

import logging
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

log = logging.getLogger(__name__)

__all__ = ["ThreadPlanner", "Calibration", "planner_for", "thread_candidates", "DRIFT", "RECHECK_SECONDS"]

#: Relative change of the median step time that triggers a re-timing.
DRIFT = 0.25
#: Seconds between re-timings when nothing drifts (a competitor that left does not slow the one-thread plan).
RECHECK_SECONDS = 180.0
#: Steps in the rolling median that is compared with the calibrated step time.
WINDOW = 8
#: A candidate whose timed step (warm-up step) is this many times slower than one already timed is dropped.
REJECT, REJECT_WARMUP = 1.5, 3.0
#: One thread that gets less than this share of a core is contended: more threads are not timed (a step of
#: two threads on an oversubscribed machine can take 5-20x longer than one; timing it would cost more than it
#: could win). The periodic re-timing tries them again.
CONTENDED = 0.7


def thread_candidates(cores: int) -> list[int]:
    """1, 2, 4, ... below ``cores``, and ``cores`` itself (a 2-core machine: ``[1, 2]``)."""
    out, t = [], 1
    while t < cores:
        out.append(t)
        t *= 2
    return out + [max(1, cores)]


@dataclass
class Calibration:
    """One timing of the candidates: when, why, each candidate's img/s and the choice."""

    step: int
    reason: str
    img_s: dict[int, float] = field(default_factory=dict)
    threads: int = 0
    seconds: float = 0.0
    cpu_share: float | None = None  # of a core, by the one-thread steps; below CONTENDED: more threads untimed

    def to_dict(self) -> dict[str, Any]:
        return {
            "step": self.step,
            "reason": self.reason,
            "img_s": {str(k): round(v, 1) for k, v in self.img_s.items()},
            "threads": self.threads,
            "seconds": round(self.seconds, 2),
            "cpu_share": None if self.cpu_share is None else round(self.cpu_share, 2),
        }


class ThreadPlanner:
    """Chooses the thread count of a training run by timing its steps (see the module docstring).

    Args:
        candidates: Thread counts to time; one candidate (or ``enabled=False``) means a fixed plan.
        enabled: Time and switch at all.
        timed_steps: Timed steps per candidate (after one warm-up step).
        recheck_seconds: Re-time at least this often.
        drift: Relative change of the median step time that triggers a re-timing.
        wait_policy: How idle OpenMP threads wait in this process (for the log).
        set_threads: Applies a thread count (``torch.set_num_threads``; tests pass their own).
        clock: Seconds (``time.perf_counter``; tests pass their own).

    Example:
        >>> p = ThreadPlanner([1, 2], enabled=False)
        >>> p.summary()["mode"]
        'fixed'
    """

    def __init__(
        self,
        candidates: list[int],
        *,
        enabled: bool = True,
        timed_steps: int = 3,
        recheck_seconds: float = RECHECK_SECONDS,
        drift: float = DRIFT,
        wait_policy: str = "",
        set_threads: Callable[[int], None] = torch.set_num_threads,
        clock: Callable[[], float] = time.perf_counter,
        cpu_clock: Callable[[], float] = time.thread_time,
    ) -> None:
        self.candidates = sorted(set(candidates)) or [1]
        self.enabled = enabled and len(self.candidates) > 1
        self.timed_steps, self.recheck_seconds, self.drift = timed_steps, recheck_seconds, drift
        self.wait_policy, self._set, self._clock, self._cpu_clock = wait_policy, set_threads, clock, cpu_clock
        self._cpu_last = 0.0
        self._share: list[float] = []  # CPU seconds / busy wall seconds of the one-thread candidate's steps
        self.threads = torch.get_num_threads() if not self.enabled else self.candidates[-1]
        self.calibrations: list[Calibration] = []
        self._queue: list[int] = []  # candidates still to time in the current calibration
        self._times: dict[int, list[float]] = {}  # seconds per image of the timed steps, per candidate
        self._warm = 0  # warm-up steps left for the candidate being timed
        self._recent: list[float] = []
        self._baseline: float | None = None
        self._last: float | None = None
        self._since = clock()
        self._steps = 0
        if self.enabled:
            self._calibrate("start")

    # ---- the loop's calls --------------------------------------------------------------------------
    def start_epoch(self) -> None:
        """A new epoch (after evaluation): the next step's time starts at its own batch, and is not used."""
        self._last = None

    def step_done(self, images: int, waited: float = 0.0) -> None:
        """One optimiser step of ``images`` images has finished (``waited`` seconds of it waiting for batches
        from loader workers); time it and perhaps change threads."""
        now, cpu = self._clock(), self._cpu_clock()
        last, self._last = self._last, now
        cpu_last, self._cpu_last = self._cpu_last, cpu
        self._steps += 1
        if not self.enabled or last is None or images <= 0:
            return
        per_image = (now - last) / images
        if self._queue:
            if self.threads == 1 and not self._warm and now - last - waited > 0:
                self._share.append((cpu - cpu_last) / (now - last - waited))
            self._time_candidate(per_image)
            return
        self._recent = (self._recent + [per_image])[-WINDOW:]
        if len(self._recent) < WINDOW:
            pass
        elif self._baseline is None:  # the chosen plan's steady state, not the calibration's few noisy steps
            self._baseline = statistics.median(self._recent)
        elif self._drifted(ratio := statistics.median(self._recent) / self._baseline):
            self._calibrate("drift")
        elif ratio > 1 + self.drift:  # one thread, slower: the new steady state, against which a speed-up shows
            self._baseline = statistics.median(self._recent)
        elif now - self._since > self.recheck_seconds:
            self._calibrate("timer")

    def _drifted(self, ratio: float) -> bool:
        """Whether the step time, ``ratio`` times its steady state, calls for a re-timing.

        On one thread only a speed-up does (a competitor left: more threads may win again); a slow-down there
        means more contention, where more threads only lose, and timing them again would cost steps for nothing.
        """
        if self.threads == 1:
            return ratio < 1 - self.drift
        return abs(ratio - 1) > self.drift

    # ---- calibration -------------------------------------------------------------------------------
    def _calibrate(self, reason: str) -> None:
        # the current plan last, so a calibration that changes nothing does not switch twice
        current = [self.threads] if self.threads in self.candidates else []
        self._queue = [t for t in self.candidates if t not in current] + current
        self._times, self._share = {}, []
        self.calibrations.append(Calibration(self._steps, reason))
        self._since = self._clock()
        self._begin(self._queue[0])

    def _begin(self, threads: int) -> None:
        self._set(threads)
        self.threads, self._warm = threads, 1

    def _time_candidate(self, per_image: float) -> None:
        t = self._queue[0]
        timed = [statistics.median(v) for k, v in self._times.items() if k != t]
        best = min(timed) if timed else None
        if self._warm:
            self._warm -= 1
            # a warm-up step far slower than a candidate already timed settles it (under contention a
            # two-thread step can take 4x longer: timing it fully would cost more than the calibration saves)
            if best is None or per_image < REJECT_WARMUP * best:
                return
        self._times.setdefault(t, []).append(per_image)
        slower = best is not None and min(self._times[t]) > REJECT * best
        if len(self._times[t]) < self.timed_steps and not slower:
            return
        self._queue.pop(0)
        cal = self.calibrations[-1]
        if t == 1 and self._share:
            cal.cpu_share = statistics.median(self._share)
            if cal.cpu_share < CONTENDED:
                self._queue = [k for k in self._queue if k == 1]
        if self._queue:
            self._begin(self._queue[0])
            return
        cal.img_s = {k: 1.0 / statistics.median(v) for k, v in sorted(self._times.items())}
        best = max(cal.img_s, key=lambda k: cal.img_s[k])
        cal.threads, cal.seconds = best, self._clock() - self._since
        if best != self.threads:
            self._set(best)
            self.threads = best
        self._baseline, self._recent, self._since = None, [], self._clock()
        busy = f"; one thread got {cal.cpu_share:.0%} of a core" if cal.cpu_share is not None else ""
        log.info(
            "execution plan (%s): %d thread(s), %.0f img/s (%s%s; OpenMP: %s)",
            cal.reason,
            best,
            cal.img_s[best],
            ", ".join(f"{k} thread(s) {v:.0f} img/s" for k, v in cal.img_s.items()),
            busy,
            self.wait_policy or "as loaded",
        )

    # ---- report ------------------------------------------------------------------------------------
    def summary(self) -> dict[str, Any]:
        """What ``summary.json`` records under ``plan``: mode, threads, wait policy, each calibration."""
        done = [c for c in self.calibrations if c.img_s]
        last = done[-1] if done else None
        text = f"{self.threads} thread(s)" + (f", {last.img_s[last.threads]:.0f} img/s" if last else "")
        return {
            "mode": "auto" if self.enabled else "fixed",
            "threads": self.threads,
            "wait_policy": self.wait_policy,
            "summary": ("auto: " if self.enabled else "fixed: ") + text,
            "calibrations": [c.to_dict() for c in done],
        }


def planner_for(cfg: Any, device: torch.device, world_size: int, cores: int, wait_policy: str = "") -> ThreadPlanner:
    """The planner of a run: measuring with ``cfg.plan == "auto"`` and no ``cfg.threads`` on a CPU, in one
    process, with more than one core; else fixed at the thread count already set."""
    enabled = cfg.plan == "auto" and cfg.threads is None and device.type == "cpu" and world_size == 1 and cores > 1
    return ThreadPlanner(thread_candidates(cores), enabled=enabled, wait_policy=wait_policy)
