"""Resume rules for any :class:`~rexnet._config.Config`: what a resumed run may change, and what it may not.

A run folder's ``config.json`` holds the config it was started with. ``--resume`` continues it with
the same settings; a changed setting is refused unless it is *free* (how the run executes, not what
it computes: threads, progress, ...) or named on purpose in ``--allow-change``; a *fixed* setting
(what the checkpoint's weights are tied to, e.g. the model) can never change.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, TypeVar

from .._config import Config
from .._files import check_regular_file
from ..errors import ConfigError, InputError, ResumeMismatchError

__all__ = ["read_config_json", "saved_config", "resume_changes"]

C = TypeVar("C", bound=Config)


def read_config_json(folder: str | os.PathLike) -> dict[str, Any]:
    """The JSON object in ``folder/config.json``.

    Raises:
        InputError: Missing (the folder is no run folder).
        ConfigError: Corrupt, or not a JSON object.
    """
    path = Path(folder) / "config.json"
    if not path.exists():
        raise InputError(f"cannot resume: {path} not found (is {folder} a run folder?)")
    check_regular_file(path, "run config")
    try:
        saved = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ConfigError(f"cannot resume: {path} is corrupt ({e}); restore it or start a new run") from None
    if not isinstance(saved, dict):
        raise ConfigError(f"cannot resume: {path} must hold a JSON object, got {type(saved).__name__}")
    return saved


def saved_config(cls: type[C], folder: str | os.PathLike, adjust: Callable[[dict[str, Any]], None] | None = None) -> C:
    """The ``cls`` config a run folder was started with (extra keys of ``config.json`` are ignored).

    Args:
        cls: The config class.
        folder: The run folder.
        adjust: Edits the saved values in place before they are checked (e.g. a thread count from a
            bigger machine).

    Raises:
        InputError: No ``config.json``, or one that is corrupt or holds bad values.
    """
    saved = read_config_json(folder)
    known = set(cls.__dataclass_fields__) | set(cls.legacy_keys)  # type: ignore[attr-defined]  # older runs' keys
    values = {k: v for k, v in saved.items() if k in known}
    if adjust is not None:
        adjust(values)
    try:
        return cls.from_dict(values)
    except ConfigError as e:
        raise ConfigError(f"cannot resume: {Path(folder) / 'config.json'}: {e}") from None


def _flag(key: str) -> str:
    return key.replace("_", "-")


def resume_changes(
    saved: Config,
    cfg: Config,
    allow_change: Iterable[str] = (),
    *,
    free: Iterable[str] = (),
    fixed: Iterable[str] = (),
    fixed_hint: str = "start a new run",
) -> dict[str, Any]:
    """The settings ``cfg`` changes relative to the run's ``saved`` config, checked against ``allow_change``.

    Args:
        saved / cfg: The run's config and the one asked for now (the same class).
        allow_change: Fields the user changes on purpose (``--allow-change epochs,lr``).
        free: Fields that may always change (they do not change what the run computes).
        fixed: Fields that may never change (the checkpoint's weights are tied to them).
        fixed_hint: What the message suggests instead of changing a fixed field.

    Returns:
        ``{field: {"from": old, "to": new}}`` for every changed field outside ``free``.

    Raises:
        ResumeMismatchError: A change not allowed; the message names each field with both values.
        ConfigError: ``allow_change`` names an unknown field.
    """
    allowed, unknown = set(), []
    for a in (a.strip() for a in allow_change if a.strip()):
        try:
            allowed.add(type(cfg).key_path(a))
        except ConfigError:
            unknown.append(a.replace("-", "_"))
    if unknown:
        raise ConfigError(f"allow_change names unknown config key(s) {', '.join(map(repr, sorted(unknown)))}")
    free = set(free)
    old, new = saved.flat_dict(), cfg.flat_dict()  # nested configs compared key by key (aug.hflip)
    changes = {k: {"from": old[k], "to": new[k]} for k in new if k not in free and old[k] != new[k]}
    stuck = [k for k in fixed if k in changes]
    if stuck:
        what = ", ".join(f"{k} {changes[k]['from']!r} -> {changes[k]['to']!r}" for k in stuck)
        raise ResumeMismatchError(
            f"cannot resume with another {', '.join(stuck)} ({what}): the checkpoint's weights belong to the run's; "
            f"{fixed_hint}"
        )
    refused = [k for k in changes if k not in allowed and k.partition(".")[0] not in allowed]
    if refused:
        what = ", ".join(f"{k} {changes[k]['from']!r} -> {changes[k]['to']!r}" for k in refused)
        raise ResumeMismatchError(
            f"--resume would change the run's settings: {what}; drop these options to continue the run as it "
            f"was, or name them on purpose: --allow-change {','.join(map(_flag, refused))}"
        )
    return changes
