"""User models: named plans kept in a JSON registry file that the zoo reads at import.

``rexnet search register`` writes one entry per found configuration (its plan, measured latencies,
training recipe and the search it came from); afterwards ``create_model(name)``, ``rexnet models``
and every command taking ``-m NAME`` know it. The file is ``REXNET_MODELS``, else
``XDG_CONFIG_HOME/rexnet/models.json`` (:func:`rexnet._env.user_models_file`)::

    {"format": 1, "models": {"rexnet_lat_epyc_openvino": {"plan": {...}, "image_size": 32, ...}}}

A broken file is reported (a warning) and skipped at import, never fatal: ``import rexnet`` must work.
"""

from __future__ import annotations

import json
import logging
import os
import re
from pathlib import Path
from typing import Any

from .._env import user_models_file
from .._files import atomic_write, dumps_json
from ..errors import InputError
from ..plan import NetworkPlan, plan_from_dict
from .registry import ModelInfo, list_models, register_model

__all__ = ["USER_FORMAT", "load_user_models", "read_user_models", "save_user_model", "user_model_record"]

_log = logging.getLogger(__name__)

USER_FORMAT = 1
_NAME = re.compile(r"[a-z][a-z0-9_]{0,63}")


def read_user_models(path: str | os.PathLike | None = None) -> dict[str, dict[str, Any]]:
    """``{name: record}`` of the user registry file (``{}`` when there is none).

    Raises:
        InputError: The file is not a registry (bad JSON, another format).
    """
    p = Path(path) if path is not None else user_models_file()
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise InputError(f"user model registry {p} is unreadable: {e}") from None
    if not isinstance(data, dict) or data.get("format") != USER_FORMAT or not isinstance(data.get("models"), dict):
        raise InputError(f"user model registry {p} is not a rexnet registry (expected {{'format': 1, 'models': {{}}}})")
    return data["models"]


def _info(name: str, record: dict[str, Any], path: Path) -> ModelInfo:
    plan_from_dict(record["plan"])  # checked now: a bad entry fails here, not at create_model
    lat = record.get("latency") or {}
    how = f"{lat.get('median_ms', float('nan')):.3f} ms on {lat.get('runtime')} {lat.get('precision')}" if lat else ""
    return ModelInfo(
        name,
        plan_from_dict,
        {"d": record["plan"]},
        source=f"user model ({path}){': ' + how if how else ''}",
        input_size=int(record.get("image_size", 224)),
    )


def load_user_models(path: str | os.PathLike | None = None) -> list[str]:
    """Register every entry of the user registry file; returns the names added (bad entries are skipped)."""
    p = Path(path) if path is not None else user_models_file()
    try:
        models = read_user_models(p)
    except InputError as e:
        _log.warning("%s; no user model loaded", e)
        return []
    added = []
    for name, record in models.items():
        try:
            register_model(_info(name, record, p), replace=True)
            added.append(name)
        except (InputError, KeyError, TypeError) as e:
            _log.warning("user model %r in %s skipped: %s", name, p, e)
    return added


def save_user_model(
    name: str,
    plan: NetworkPlan,
    record: dict[str, Any],
    *,
    path: str | os.PathLike | None = None,
    overwrite: bool = False,
) -> Path:
    """Add ``name`` (its plan and ``record``) to the user registry file and to this process's registry.

    Raises:
        InputError: A malformed name, a built-in name, or an existing entry without ``overwrite``.
    """
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise InputError(f"model name must match [a-z][a-z0-9_]* (up to 64 characters), got {name!r}")
    p = Path(path) if path is not None else user_models_file()
    models = read_user_models(p)
    if name in models and not overwrite:
        raise InputError(f"user model {name!r} already exists in {p}; pass --overwrite to replace it")
    if name not in models and name in list_models():
        raise InputError(f"model name {name!r} is already registered; choose another name")
    entry = {**record, "plan": plan.to_dict()}
    register_model(_info(name, entry, p), replace=True)
    models[name] = entry
    # the registry file holds every user model: it is rewritten whole (atomically) with the new entry merged in
    atomic_write(p, dumps_json({"format": USER_FORMAT, "models": models}), overwrite=True, what="user model registry")
    return p


def user_model_record(name: str, path: str | os.PathLike | None = None) -> dict[str, Any]:
    """The stored record of a user model (plan, latencies, recipe, search).

    Raises:
        InputError: No such user model.
    """
    models = read_user_models(path)
    if name not in models:
        raise InputError(f"no user model {name!r}; user models: {', '.join(sorted(models)) or '(none)'}")
    return models[name]
