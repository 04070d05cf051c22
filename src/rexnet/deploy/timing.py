"""``rexnet.latency``: a network's measured latency on a deploy runtime, cached per plan and machine.

The network is exported exactly as the benchmark exports it (:mod:`rexnet.deploy.candidates`):
ONNX for onnxruntime (int8: onnxruntime's static QDQ quantization), OpenVINO IR for OpenVINO
(int8: NNCF post-training quantization, fast bias correction). Calibration images are random:
int8 here is for timing, and calibration values change scales, not speed. The runner is warmed up,
then called ``repeats`` times on one fixed random batch; the result is the median and its spread.

Results are cached, one JSON file per key, under ``cache_home()/latency`` (``REXNET_CACHE`` or
``XDG_CACHE_HOME/rexnet``). The key is everything that changes the figure: the plan's fingerprint
(or a foreign module's architecture), class count, runtime, precision, input size, batch, threads,
the CPU model and the library versions. A stale entry cannot match a new library or another CPU.

Example:
    >>> import rexnet
    >>> lat = rexnet.latency("rexnet_100", runtime="openvino", precision="int8")  # doctest: +SKIP
    >>> f"{lat.median_ms:.2f} ms ({lat.low_ms:.2f}-{lat.high_ms:.2f})"  # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.metadata
import json
import logging
import math
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .._device import cpu_model
from .._env import cache_home
from .._files import write_json
from ..errors import InputError
from ..plan import NetworkPlan

__all__ = [
    "LATENCY_PRECISIONS",
    "LATENCY_RUNTIMES",
    "Latency",
    "build_runner",
    "fingerprint",
    "latency",
    "latency_cache_dir",
    "latency_key",
    "time_runner",
]

_log = logging.getLogger(__name__)

#: Precisions :func:`latency` measures (``f32`` is read as ``fp32``).
LATENCY_PRECISIONS = ("fp32", "int8")
#: Libraries whose versions are part of the cache key (a new runtime may be faster).
_VERSIONED = ("torch", "onnx", "onnxruntime", "openvino", "nncf")

Runner = Callable[[torch.Tensor], Any]
#: The most calls one measurement times, however fast the model.
MAX_REPEATS = 100_000


@dataclass(frozen=True)
class Latency:
    """One latency measurement: milliseconds per call at ``key['batch']`` images.

    Attributes:
        median_ms: Median over the timed calls.
        q25_ms / q75_ms: The quartiles; :attr:`iqr_ms` is their distance (the reported spread).
        mad_ms: Median absolute deviation from the median.
        min_ms / max_ms: The fastest and slowest call.
        low_ms / high_ms: The reported spread: the quartiles widened to the lowest and highest median of the
            rounds the calls were timed in, so that a drift between rounds (clock, load) counts too.
        n: Timed calls.
        key: What was measured and where (fingerprint, runtime, precision, size, batch, threads, CPU,
            versions).
        cached: Read from the cache rather than measured now.
    """

    median_ms: float
    q25_ms: float
    q75_ms: float
    mad_ms: float
    min_ms: float
    max_ms: float
    low_ms: float
    high_ms: float
    n: int
    key: dict[str, Any]
    cached: bool = False

    @property
    def iqr_ms(self) -> float:
        """Inter-quartile range: the spread of the middle half of the calls."""
        return self.q75_ms - self.q25_ms

    def agrees(self, other: Latency) -> bool:
        """Whether the two measurements' spreads (``low_ms``..``high_ms``) overlap."""
        return self.low_ms <= other.high_ms and other.low_ms <= self.high_ms

    def to_dict(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "iqr_ms": self.iqr_ms}

    @classmethod
    def from_rounds(cls, rounds: list[list[float]], key: dict[str, Any]) -> Latency:
        """Summarise per-call times in seconds, timed in one or more rounds."""
        ms = sorted(v * 1e3 for r in rounds for v in r)
        if not ms:
            raise InputError("no timed call: repeats must be >= 1")
        med = statistics.median(ms)
        q = statistics.quantiles(ms, n=4, method="inclusive") if len(ms) > 1 else [ms[0]] * 3
        mad = statistics.median(abs(v - med) for v in ms)
        medians = [statistics.median(r) * 1e3 for r in rounds if r]
        return cls(med, q[0], q[2], mad, ms[0], ms[-1], min(q[0], *medians), max(q[2], *medians), len(ms), key)


def _versions() -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for dist in _VERSIONED:
        try:  # installed metadata: importing nncf would send its telemetry
            out[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            out[dist] = None
    return out


def fingerprint(plan_or_model: NetworkPlan | nn.Module | str) -> str:
    """A short hash naming the architecture: the plan's (a registered name counts as its plan), else a
    foreign module's class and parameter shapes (weights do not change the time)."""
    if isinstance(plan_or_model, str):
        from ..zoo import get_plan

        plan_or_model = get_plan(plan_or_model)
    plan = plan_or_model if isinstance(plan_or_model, NetworkPlan) else getattr(plan_or_model, "plan", None)
    if isinstance(plan, NetworkPlan):
        text = json.dumps(plan.to_dict(), sort_keys=True, default=str)
    elif isinstance(plan_or_model, nn.Module):
        shapes = [(k, list(v.shape)) for k, v in plan_or_model.state_dict().items()]
        text = json.dumps([type(plan_or_model).__qualname__, shapes])
    else:
        raise InputError(f"latency needs a plan, a model or a model name, got {type(plan_or_model).__name__}")
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _precision(precision: str) -> str:
    p = {"f32": "fp32"}.get(precision, precision)
    if p not in LATENCY_PRECISIONS:
        raise InputError(f"unknown latency precision {precision!r}; expected one of: {', '.join(LATENCY_PRECISIONS)}")
    return p


def latency_key(
    plan_or_model: NetworkPlan | nn.Module | str,
    *,
    runtime: str,
    precision: str,
    image_size: int,
    batch: int,
    threads: int | None,
    num_classes: int,
) -> dict[str, Any]:
    """The cache key of one measurement (everything that changes the figure)."""
    return {
        "fingerprint": fingerprint(plan_or_model),
        "num_classes": int(num_classes),
        "runtime": runtime,
        "precision": _precision(precision),
        "image_size": int(image_size),
        "batch": int(batch),
        "threads": int(threads or torch.get_num_threads()),
        "cpu": cpu_model(),
        "versions": _versions(),
    }


def latency_cache_dir(cache: str | os.PathLike | bool | None = None) -> Path | None:
    """The cache folder ``cache`` means: ``None``/``True`` the default, ``False``/``"off"`` none, else the path."""
    if cache is None or cache is True:
        return cache_home() / "latency"
    if cache is False or (isinstance(cache, str) and cache.strip().lower() in ("off", "none", "no", "false")):
        return None
    return Path(cache).expanduser()


def _cache_file(folder: Path, key: dict[str, Any]) -> Path:
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:24]
    return folder / f"{key['fingerprint']}-{digest}.json"


def _read_cache(path: Path, key: dict[str, Any]) -> Latency | None:
    try:
        d = json.loads(path.read_text(encoding="utf-8"))
        if d.get("key") != key:  # a hash collision or a hand-edited file: measure again
            return None
        fields = {f.name for f in dataclasses.fields(Latency)} - {"cached"}
        return Latency(**{k: d[k] for k in fields}, cached=True)
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError) as e:  # a corrupt entry is measured again, not fatal
        _log.warning("latency cache entry %s unreadable (%s); measuring again", path, e)
        return None


def _model(plan_or_model: NetworkPlan | nn.Module | str, num_classes: int) -> nn.Module:
    if isinstance(plan_or_model, str):
        from ..zoo import create_model

        return create_model(plan_or_model, num_classes=num_classes).eval()
    if isinstance(plan_or_model, NetworkPlan):
        from ..model import RexNet

        return RexNet(plan_or_model, num_classes=num_classes).eval()
    if isinstance(plan_or_model, nn.Module):
        return plan_or_model.eval()
    raise InputError(f"latency needs a plan, a model or a model name, got {type(plan_or_model).__name__}")


def _calibration(image_size: int, images: int) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    return [torch.randn(min(8, images - i), 3, image_size, image_size, generator=g) for i in range(0, images, 8)]


def _onnxruntime(model: nn.Module, precision: str, size: int, threads: int, tmp: Path, calib: int) -> Runner:
    from .onnx_core import OnnxModel, export_onnx, is_rexnet
    from .quant import quantize_int8

    if precision == "int8":  # as the bench: our SE layers kept float; no bias correction (values, not speed)
        q = quantize_int8(model, _calibration(size, calib), tmp / "int8.onnx", image_size=size, bias_correction=False)
        return OnnxModel(q.path, threads)
    return OnnxModel(export_onnx(model, tmp / "fp32.onnx", image_size=size, fused=is_rexnet(model)), threads)


def _openvino(model: nn.Module, precision: str, size: int, threads: int, tmp: Path, calib: int) -> Runner:
    from .openvino_ir import OpenVinoModel, openvino_available, to_openvino

    if not openvino_available(with_nncf=precision == "int8"):
        raise InputError("runtime 'openvino' needs openvino (and nncf for int8): pip install openvino nncf")
    if precision == "int8":  # the bench's int8 IR: NNCF, fast bias correction, the IR's own precision hint
        q = to_openvino(
            model, "int8", calibration=_calibration(size, calib), image_size=size, fast_bias_correction=True
        )
        return OpenVinoModel(q, threads=threads)
    return OpenVinoModel(to_openvino(model, "f32", image_size=size), "f32", threads)


#: Runtime name -> ``build(model, precision, size, threads, tmp, calib_images)``: the bench's export path.
LATENCY_RUNTIMES: dict[str, Callable[..., Runner]] = {"openvino": _openvino, "onnxruntime": _onnxruntime}


def build_runner(
    model: nn.Module, runtime: str, precision: str, image_size: int, threads: int, tmp: Path, calib_images: int = 32
) -> Runner:
    """Export ``model`` for ``runtime`` at ``precision`` into ``tmp`` and load it (the bench's path).

    Raises:
        InputError: An unknown runtime or precision, or the runtime is not installed.
    """
    build = LATENCY_RUNTIMES.get(runtime)
    if build is None:
        raise InputError(f"unknown latency runtime {runtime!r}; expected one of: {', '.join(LATENCY_RUNTIMES)}")
    return build(model, _precision(precision), image_size, threads, tmp, calib_images)


def time_runner(
    runner: Runner | list[Runner],
    x: torch.Tensor,
    *,
    warmup: int,
    repeats: int,
    rounds: int = 1,
    min_seconds: float = 0.0,
) -> list[list[float]]:
    """Seconds per call of ``runner(x)``: ``warmup`` untimed calls, then ``repeats`` timed ones in ``rounds``
    rounds of (nearly) equal size. Several runners (sessions of one model) take the rounds in turn. More calls
    than ``repeats`` are timed when they would take less than ``min_seconds`` (at most :data:`MAX_REPEATS`)."""
    runners = runner if isinstance(runner, list) else [runner]
    with torch.inference_mode():
        t0 = time.perf_counter()
        for r in runners:
            for _ in range(warmup):
                r(x)
        per_call = (time.perf_counter() - t0) / max(1, warmup * len(runners))
        if min_seconds > 0 and per_call > 0:  # fast models: enough calls to span min_seconds, like timeit
            repeats = min(max(repeats, math.ceil(min_seconds / per_call)), MAX_REPEATS)
        sizes = [repeats // rounds + (i < repeats % rounds) for i in range(min(rounds, repeats))]
        out: list[list[float]] = []
        for i, size in enumerate(sizes):
            r, times = runners[i % len(runners)], []
            for _ in range(size):
                t0 = time.perf_counter()
                r(x)
                times.append(time.perf_counter() - t0)
            out.append(times)
    return out


def latency(
    plan_or_model: NetworkPlan | nn.Module | str,
    runtime: str = "openvino",
    precision: str = "fp32",
    image_size: int = 224,
    batch: int = 1,
    threads: int | None = None,
    repeats: int = 50,
    *,
    rounds: int = 6,
    sessions: int = 2,
    min_seconds: float = 0.5,
    warmup: int = 10,
    num_classes: int = 1000,
    cache: str | os.PathLike | bool | None = None,
    calib_images: int = 32,
) -> Latency:
    """Measure (or read from the cache) the latency of a network on a deploy runtime.

    Args:
        plan_or_model: A :class:`~rexnet.plan.NetworkPlan`, a registered name (``"rexnet_100"``)
            or any module taking one NCHW batch (timm's model too).
        runtime: ``openvino`` or ``onnxruntime``.
        precision: ``fp32`` or ``int8`` (random calibration: a timing, not an accuracy).
        image_size: Square input size.
        batch: Images per call.
        threads: Runtime threads (``None``: torch's thread count; the key records the number).
        repeats: Timed calls after the warm-up.
        rounds: The timed calls are split into this many rounds; the spread of their medians widens the
            reported spread (``low_ms``..``high_ms``).
        sessions: Runtime sessions built from the one exported model, taking the rounds in turn: two
            sessions of one file differ by a few % (memory placement), and the spread should say so.
        min_seconds: Time at least this long (more calls than ``repeats`` for a fast model), so that the rounds
            span the machine's slower drifts, not a few milliseconds of them.
        warmup: Untimed calls first.
        num_classes: Classifier outputs of a network built from a plan or name.
        cache: Cache folder; ``None`` the default (``cache_home()/latency``), ``False`` or ``"off"``
            none. A hit returns the stored measurement (``cached=True``) whatever ``repeats``.
        calib_images: Random images quantization is calibrated on (int8 only).

    Returns:
        A :class:`Latency`: median, quartiles, MAD, min/max, count and key.

    Raises:
        InputError: An unknown runtime or precision, a missing runtime, or bad sizes.

    Example:
        >>> from rexnet.plan import rexnet_plan
        >>> lat = latency(rexnet_plan(0.5), "onnxruntime", image_size=32, repeats=5, min_seconds=0, cache=False)
        >>> lat.n, lat.min_ms <= lat.low_ms <= lat.median_ms <= lat.high_ms <= lat.max_ms
        (5, True)
    """
    for name, value, low in (("image_size", image_size, 8), ("batch", batch, 1), ("repeats", repeats, 1)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise InputError(f"latency {name} must be an integer >= {low}, got {value!r}")
    if runtime not in LATENCY_RUNTIMES:
        raise InputError(f"unknown latency runtime {runtime!r}; expected one of: {', '.join(LATENCY_RUNTIMES)}")
    threads = int(threads or torch.get_num_threads())
    key = latency_key(
        plan_or_model,
        runtime=runtime,
        precision=precision,
        image_size=image_size,
        batch=batch,
        threads=threads,
        num_classes=num_classes,
    )
    folder = latency_cache_dir(cache)
    path = _cache_file(folder, key) if folder is not None else None
    if path is not None and (hit := _read_cache(path, key)) is not None:
        return hit
    model = _model(plan_or_model, num_classes)
    x = torch.randn(batch, 3, image_size, image_size, generator=torch.Generator().manual_seed(0))
    with tempfile.TemporaryDirectory(prefix="rexnet_latency_") as tmp:
        runners = []
        for i in range(max(1, sessions)):
            (folder_i := Path(tmp) / str(i)).mkdir()
            runners.append(build_runner(model, runtime, key["precision"], image_size, threads, folder_i, calib_images))
        times = time_runner(runners, x, warmup=warmup, repeats=repeats, rounds=rounds, min_seconds=min_seconds)
        result = Latency.from_rounds(times, key)
    _log.info(
        "latency %s %s %s %dpx b%d: %.3f ms (spread %.3f-%.3f)",
        key["fingerprint"],
        runtime,
        key["precision"],
        image_size,
        batch,
        result.median_ms,
        result.low_ms,
        result.high_ms,
    )
    if path is not None:
        # a cache entry: replacing a stale or concurrent one is what a cache does
        write_json(result.to_dict(), path, overwrite=True, what="latency cache entry")
    return result
