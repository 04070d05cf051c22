"""Process settings made before torch is imported, and the one reader of the environment variables rexnet uses.

OpenMP's wait policy is read once, when torch loads libgomp. By default idle threads sleep
(``PASSIVE``): on a busy or small machine spinning threads make multi-threaded torch 5-20x slower.
A ``rexnet train``/``finetune`` command line with the measured execution plan (``--plan auto``, the
default; not under torchrun) lets them spin briefly instead (``GOMP_SPINCOUNT``, about 0.2 ms, then
sleep): two spinning threads are 1.3x faster than one on an idle 2-core machine, passive ones slower
than one, and the plan's calibration drops to one thread, where no team waits, when another process
wants the cores (:mod:`rexnet.train.plan`; benchmarks/RESULTS.md, "Fast CPU training"). A bounded spin,
unlike ``ACTIVE``, lets a pool thread left over from a two-thread step go to sleep. A value the user
set (``OMP_WAIT_POLICY`` or ``GOMP_SPINCOUNT``) wins.

Every variable rexnet reads (``WORLD_SIZE``, ``RANK``, ``LOCAL_RANK``, ``LOCAL_WORLD_SIZE``,
``REXNET_*``) goes through :func:`env_int` or :func:`env_str`, so a bad value is a
:class:`~rexnet.errors.ConfigError` that names the variable and echoes the value, never a traceback.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

from .errors import ConfigError

__all__ = [
    "DistEnv",
    "THREAD_BOUNDS",
    "WAIT_POLICY",
    "available_cores",
    "cache_home",
    "dist_env",
    "env_int",
    "env_str",
    "user_models_file",
]

#: More processes than this in one job is a typo, not a cluster (torchrun's own limit is far lower in practice).
MAX_WORLD_SIZE = 1 << 16


def available_cores() -> int:
    """The CPU cores this process may run on (its affinity mask where the OS has one)."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return os.cpu_count() or 1


def env_str(name: str, default: str | None = None) -> str | None:
    """The variable ``name``, stripped; ``default`` when unset or empty."""
    value = os.environ.get(name, "").strip()
    return value or default


def env_int(name: str, default: int, low: int = 0, high: int | None = None) -> int:
    """The variable ``name`` as an integer in ``[low, high]`` (``default`` when unset or empty).

    Example:
        >>> os.environ["REXNET_DOCTEST"] = "abc"
        >>> env_int("REXNET_DOCTEST", 1)
        Traceback (most recent call last):
        ...
        rexnet.errors.ConfigError: environment variable REXNET_DOCTEST must be an integer, got 'abc'

    Raises:
        ConfigError: Not an integer, or out of range; the message names the variable.
    """
    text = env_str(name)
    if text is None:
        return default
    try:
        value = int(text)
    except ValueError:
        raise ConfigError(f"environment variable {name} must be an integer, got {text!r}") from None
    if value < low or (high is not None and value > high):
        rng = f">= {low}" if high is None else f"in [{low}, {high}]"
        raise ConfigError(f"environment variable {name} must be {rng}, got {value}")
    return value


@dataclass(frozen=True)
class DistEnv:
    """What ``torchrun`` put in the environment (all 1/0 without it)."""

    world_size: int = 1
    rank: int = 0
    local_rank: int = 0
    local_world_size: int = 1

    @property
    def distributed(self) -> bool:
        """Whether this process is one of several (``WORLD_SIZE`` > 1 and ``RANK`` set)."""
        return self.world_size > 1 and env_str("RANK") is not None


def dist_env() -> DistEnv:
    """``WORLD_SIZE``, ``RANK``, ``LOCAL_RANK`` and ``LOCAL_WORLD_SIZE``, checked against each other.

    Raises:
        ConfigError: A value that is not an integer or is out of range (``RANK`` >= ``WORLD_SIZE``, ...),
            naming the variables found.
    """
    world = env_int("WORLD_SIZE", 1, 1, MAX_WORLD_SIZE)
    # checked against WORLD_SIZE only where that is set (a test or a launcher may set the local count alone)
    local_world = env_int("LOCAL_WORLD_SIZE", 1, 1, world if env_str("WORLD_SIZE") else MAX_WORLD_SIZE)
    found = ", ".join(f"{k}={os.environ[k]!r}" for k in ("WORLD_SIZE", "RANK", "LOCAL_RANK") if k in os.environ)
    rank = env_int("RANK", 0, 0)
    local_rank = env_int("LOCAL_RANK", 0, 0)
    problems = []
    if rank >= world:
        problems.append("RANK < WORLD_SIZE")
    if local_rank >= (local_world if env_str("LOCAL_WORLD_SIZE") is not None else world):
        problems.append("LOCAL_RANK < LOCAL_WORLD_SIZE (or WORLD_SIZE)")
    if problems:
        raise ConfigError(f"inconsistent torchrun environment: need {' and '.join(problems)}; found {found}")
    return DistEnv(world, rank, local_rank, local_world)


#: Config-field bounds of a thread count (``metadata={"help": ..., **THREAD_BOUNDS}``): 1 to the cores available.
THREAD_BOUNDS = {"min": 1, "max": available_cores, "why": "the cores this process may use"}


def cache_home() -> Path:
    """rexnet's cache folder: ``REXNET_CACHE``, else ``XDG_CACHE_HOME/rexnet``, else ``~/.cache/rexnet``.

    Holds measurements that are expensive to repeat and safe to lose (the latency cache).
    """
    own = env_str("REXNET_CACHE")
    if own:
        return Path(own).expanduser()
    return Path(env_str("XDG_CACHE_HOME") or "~/.cache").expanduser() / "rexnet"


def user_models_file() -> Path:
    """The user model registry the zoo reads: ``REXNET_MODELS``, else ``XDG_CONFIG_HOME/rexnet/models.json``
    (``~/.config/rexnet/models.json``). ``rexnet search register`` writes it."""
    own = env_str("REXNET_MODELS")
    if own:
        return Path(own).expanduser()
    return Path(env_str("XDG_CONFIG_HOME") or "~/.config").expanduser() / "rexnet" / "models.json"


#: Spins of an idle OpenMP thread before it sleeps, for a training run with the measured plan: libgomp's
#: ``GOMP_SPINCOUNT=20000`` matched ``ACTIVE`` on an idle 2-core EPYC (443 vs 442 img/s, 2 threads).
TRAIN_SPINCOUNT = "20000"


def _measured_plan_command(argv: list[str]) -> bool:
    """Whether ``argv`` is ``rexnet [-v] train|finetune ...`` without ``--plan fixed``, in one process.

    ``python -m rexnet`` shows ``-m`` as ``argv[0]`` while the package is imported; the console script, its name.
    """
    if not argv or os.path.basename(argv[0]) not in ("rexnet", "-m"):
        return False
    rest = [a for a in argv[1:] if a not in ("-v", "--verbose")]
    if not rest or rest[0] not in ("train", "finetune"):
        return False
    fixed = "--plan=fixed" in rest or any(a == "--plan" and b == "fixed" for a, b in zip(rest, rest[1:]))
    return not fixed and env_str("WORLD_SIZE", "1") == "1"


def _set_wait_policy() -> str:
    """Set OpenMP's wait policy for this process (before torch loads); what it is, in words."""
    user = {k: v for k in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT") if (v := env_str(k))}
    if user:
        return "as set (" + ", ".join(f"{k}={v}" for k, v in user.items()) + ")"
    if _measured_plan_command(sys.argv):
        os.environ["GOMP_SPINCOUNT"] = TRAIN_SPINCOUNT
        return f"spin briefly (GOMP_SPINCOUNT={TRAIN_SPINCOUNT})"
    os.environ["OMP_WAIT_POLICY"] = "PASSIVE"
    return "passive"


#: How idle OpenMP threads of this process wait (set once, before torch loaded): ``passive``,
#: ``spin briefly (...)`` or ``as set (...)``.
WAIT_POLICY = _set_wait_policy()
