"""The search's latency side: budgets in milliseconds, the per-candidate measurement, the reference models.

Latency is measured *in the worker* that trains the candidate, before training, on that worker's
CPU (:func:`rexnet.latency`, through the benchmark's export path, cached). Workers sharing a study
through PostgreSQL on different machines would each measure their own CPU, so the study records the
first worker's CPU model and refuses a worker on another CPU unless ``mixed_cpus`` is set (then it
warns, and every trial records the CPU it was timed on).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from typing import Any

from .._device import cpu_model
from .._env import available_cores
from ..errors import ConfigError, StudyMismatchError

__all__ = ["DEFAULT_REFERENCES", "check_cpu", "latency_attrs", "measure_references", "measurer", "parse_ms"]

_log = logging.getLogger(__name__)

#: Models timed once per CPU in every latency study, for the Pareto figure (latency only: not trained here).
DEFAULT_REFERENCES = ("rexnet_090", "rexnet_100", "rexnet_130", "rexnet_lite_100", "mobilenetv2_100")

_UNITS = {"": 1.0, "ms": 1.0, "s": 1e3, "us": 1e-3, "µs": 1e-3}


def parse_ms(text: str) -> float:
    """``3ms``, ``0.003s``, ``500us`` or a bare ``3`` (milliseconds) -> milliseconds.

    Example:
        >>> parse_ms("3ms"), parse_ms("0.003s"), parse_ms("3"), parse_ms("250us")
        (3.0, 3.0, 3.0, 0.25)
        >>> parse_ms("3 fps")
        Traceback (most recent call last):
        ...
        rexnet.errors.ConfigError: expected a latency like 3ms, 0.003s, 500us or 3 (milliseconds), got '3 fps'
    """
    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+(?:[eE][+-]?[0-9]+)?)\s*(ms|s|us|µs)?\s*", str(text))
    if not m:
        raise ConfigError(f"expected a latency like 3ms, 0.003s, 500us or 3 (milliseconds), got {text!r}")
    return float(m.group(1)) * _UNITS[m.group(2) or ""]


def measurer(cfg: Any, image_size: int, num_classes: int) -> Callable[[Any], Any] | None:
    """``measure(plan_or_name) -> Latency`` with the search's runtime settings (``None``: no latency in this study).

    The thread count is fixed here, before any trial sets torch's (training runs on ``cfg.threads``).
    """
    if not cfg.uses_latency:
        return None
    threads = cfg.latency_threads or available_cores()
    size = cfg.latency_size or image_size

    def measure(plan_or_name: Any) -> Any:
        from ..deploy import timing  # looked up per call: tests replace timing.latency with a stub

        return timing.latency(
            plan_or_name,
            cfg.runtime,
            cfg.precision,
            size,
            cfg.latency_batch,
            threads,
            cfg.latency_repeats,
            num_classes=num_classes,
            cache=cfg.latency_cache,
        )

    return measure


def latency_attrs(lat: Any) -> dict[str, Any]:
    """The trial attributes one measurement leaves: median, spread, CPU, whether it came from the cache."""
    return {
        "latency_ms": lat.median_ms,
        "latency_iqr_ms": lat.iqr_ms,
        "latency_min_ms": lat.min_ms,
        "latency_cpu": lat.key.get("cpu"),
        "latency_cached": bool(lat.cached),
    }


def check_cpu(study: Any, mixed_cpus: bool) -> str:
    """Record the study's CPU (first worker) or check this worker's against it; returns this worker's CPU.

    Raises:
        StudyMismatchError: Another CPU without ``mixed_cpus``.
    """
    cpu = cpu_model()
    first = study.user_attrs.get("latency_cpu")
    if first is None:
        study.set_user_attr("latency_cpu", cpu)
    elif first != cpu:
        msg = (
            f"study {study.study_name!r} measures latency on {first!r}, this worker runs on {cpu!r}: each worker "
            "times candidates on its own CPU"
        )
        if not mixed_cpus:
            raise StudyMismatchError(f"{msg}; run the workers on one CPU model, or pass --mixed-cpus to allow it")
        _log.warning("%s (allowed by --mixed-cpus; trials record their latency_cpu)", msg)
    return cpu


def measure_references(study: Any, measure: Callable[[Any], Any], names: tuple[str, ...]) -> dict[str, Any]:
    """Time the reference models on this worker's CPU once per study; ``{name: Latency dict}``."""
    cpu = cpu_model()
    stored = dict(study.user_attrs.get("reference_latency") or {})
    if cpu in stored and set(names) <= set(stored[cpu]):
        return stored[cpu]
    mine = dict(stored.get(cpu) or {})
    for name in names:
        if name not in mine:
            lat = measure(name)
            mine[name] = lat.to_dict()
            _log.info("reference %s: %.3f ms (IQR %.3f)", name, lat.median_ms, lat.iqr_ms)
    stored[cpu] = mine
    study.set_user_attr("reference_latency", stored)
    return mine
