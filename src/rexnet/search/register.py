"""``rexnet search register``: a found configuration becomes a named model of the zoo.

The trial (by default the most accurate finished one; in a latency study every finished trial is
within the budget) is rebuilt as a plan from the study's stored space, and written to the user model
registry (:mod:`rexnet.zoo.user`) with its measured latency, the search's training recipe and where
it came from. ``create_model(name, num_classes=...)`` then builds it.
"""

from __future__ import annotations

import datetime as _dt
import logging
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from ..errors import InputError
from .report import resolve_study
from .space import SearchSpace
from .study import database_url, default_storage

__all__ = ["default_name", "register", "select_trial"]

_log = logging.getLogger(__name__)


def default_name(cpu: str | None, runtime: str | None) -> str:
    """``rexnet_lat_<cpu>_<runtime>``: the CPU model's distinctive words, lower case.

    Example:
        >>> default_name("AMD EPYC 9B14 96-Core Processor", "openvino")
        'rexnet_lat_amd_epyc_9b14_openvino'
    """
    words = [w for w in re.split(r"[^a-z0-9]+", (cpu or "cpu").lower()) if w]
    keep = [w for w in words if w not in {"processor", "cpu", "core", "r", "tm", "with", "radeon", "graphics"}]
    keep = [w for w in keep if not re.fullmatch(r"\d+", w) or len(keep) < 3][:4]
    return "_".join(["rexnet_lat", *keep, runtime or "cpu"])[:64]


def _study(out: str | os.PathLike, storage: str | None, study: str | None) -> optuna.Study:
    url = database_url(storage or default_storage(out))
    if storage is None and not (Path(out) / "search.db").exists():
        raise InputError(f"no search database in {out} (expected {Path(out) / 'search.db'}); pass storage=...")
    return optuna.load_study(study_name=resolve_study(url, study), storage=url)


def select_trial(st: optuna.Study, trial: int | None = None) -> FrozenTrial:
    """Trial number ``trial`` (it must have finished), else the finished trial with the best accuracy.

    Raises:
        InputError: No such finished trial.
    """
    done = [t for t in st.get_trials(deepcopy=False) if t.state == TrialState.COMPLETE and "channels" in t.user_attrs]
    if trial is not None:
        for t in done:
            if t.number == trial:
                return t
        raise InputError(
            f"trial {trial} of study {st.study_name!r} has not finished; finished: "
            + (", ".join(str(t.number) for t in done) or "(none)")
        )
    if not done:
        raise InputError(f"study {st.study_name!r} has no finished trial to register")
    return max(done, key=lambda t: (t.values[0], -t.user_attrs.get("latency_ms", 0.0)))


def _space(attrs: dict[str, Any]) -> SearchSpace:
    sp = dict(attrs["space"])
    sp["macs_fractions"] = tuple(sp.get("macs_fractions") or ())
    return SearchSpace(**sp)


def register(
    out: str | os.PathLike,
    name: str | None = None,
    *,
    storage: str | None = None,
    study: str | None = None,
    trial: int | None = None,
    measure: Sequence[tuple[int, int]] = (),
    registry: str | os.PathLike | None = None,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Register a search's pick as a named model (plan, measured latencies, recipe) in the user registry.

    Args:
        out: The search folder (its ``search.db``, unless ``storage`` is given).
        name: Model name (``None``: ``rexnet_lat_<cpu>_<runtime>``, see :func:`default_name`).
        storage / study: Where the study is (as :func:`~rexnet.search.report`).
        trial: Trial number (``None``: the most accurate finished trial).
        measure: Extra ``(image_size, batch)`` latencies to measure now on the study's runtime and
            precision (e.g. ``[(224, 1), (224, 32)]``); they are cached like every measurement.
        registry: The registry file (``None``: ``REXNET_MODELS`` or ``~/.config/rexnet/models.json``).
        overwrite: Replace an entry of the same name.

    Returns:
        The stored record, with ``name`` and ``registry`` (the file written).

    Raises:
        InputError: No study or finished trial, a bad or taken name.

    Example:
        >>> rec = register("runs/lat", "rexnet_lat_epyc_openvino", measure=[(224, 1)])  # doctest: +SKIP
        >>> rexnet.create_model(rec["name"], num_classes=10)  # doctest: +SKIP
    """
    st = _study(out, storage, study)
    t = select_trial(st, trial)
    attrs, u = st.user_attrs, t.user_attrs
    space = _space(attrs)
    plan = space.plan(u["channels"])
    lat_cfg = attrs.get("latency") or {}
    latencies = []
    if "latency_ms" in u:
        latencies.append(
            {
                **{k: lat_cfg.get(k) for k in ("runtime", "precision", "image_size", "batch")},
                "median_ms": u["latency_ms"],
                "iqr_ms": u.get("latency_iqr_ms"),
                "cpu": u.get("latency_cpu"),
                "when": "during the search",
            }
        )
    if measure and not lat_cfg:
        raise InputError("measure=... needs a latency study (its runtime and precision); this study has none")
    for size, batch in measure:
        from ..deploy import timing

        lat = timing.latency(plan, lat_cfg["runtime"], lat_cfg["precision"], size, batch, num_classes=space.num_classes)
        latencies.append(
            {
                "runtime": lat_cfg["runtime"],
                "precision": lat_cfg["precision"],
                "image_size": size,
                "batch": batch,
                "median_ms": lat.median_ms,
                "iqr_ms": lat.iqr_ms,
                "cpu": lat.key["cpu"],
                "when": "at registration",
            }
        )
    name = name or default_name(u.get("latency_cpu"), lat_cfg.get("runtime"))
    record = {
        "image_size": space.image_size,
        "num_classes": space.num_classes,
        "channels": list(u["channels"]),
        "latency": latencies[0] if latencies else None,
        "latencies": latencies,
        "recipe": {
            "data": attrs.get("data"),
            "epochs": attrs.get("epochs"),
            "seeds": attrs.get("seeds"),
            "samples": attrs.get("samples"),
            "image_size": space.image_size,
        },
        "search": {
            "study": st.study_name,
            "trial": t.number,
            "accuracy": t.values[0],
            "seed_accuracies": u.get("seed_accuracies"),
            "macs": u.get("macs"),
            "params": u.get("params"),
            "objectives": attrs.get("objectives"),
            "latency_settings": lat_cfg or None,
        },
        "created": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
    }
    from ..zoo import save_user_model

    path = save_user_model(name, plan, record, path=registry, overwrite=overwrite)
    _log.info("registered trial %d of %r as %s in %s", t.number, st.study_name, name, path)
    return {**record, "name": name, "registry": str(path)}
