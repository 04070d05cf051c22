"""Dataclass configs: strict coercion of every field and argparse flags generated from the fields.

A config is a ``@dataclass`` that derives from :class:`Config`; each field carries its help text in
``field(metadata={"help": ...})``. Constructing one coerces every value to its field's type (CLI
strings included: ``"3"``, ``"none"``, ``"true"``, ``"30M"`` where a field has ``parse``) and then
calls :meth:`Config.validate` for the range checks; an unknown key or a value of the wrong type is a
:class:`ConfigError` that names the key and echoes the value, as in nanoGPT's configurator.

Supported field types: ``bool``, ``int``, ``float``, ``str``, ``Literal[...]`` of strings,
``tuple[X, Y]`` (fixed length), ``tuple[X, ...]``, ``dict[str, Any]`` and ``X | None`` of these.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import math
import os
import re
import types
import typing
from collections.abc import Iterable, Mapping
from typing import Any, ClassVar, Literal, TypeVar

from .errors import ConfigError

__all__ = ["Config", "ConfigError", "add_flags", "check_range", "coerce", "flag_overrides", "parse_count"]

C = TypeVar("C", bound="Config")

_SUFFIX = {"": 1.0, "k": 1e3, "m": 1e6, "g": 1e9}


def parse_count(text: str) -> float:
    """``30M``, ``0.2m``, ``3e7``, ``1.5G`` -> a number.

    Example:
        >>> parse_count("7.5M"), parse_count("0.2m"), parse_count("3e7")
        (7500000.0, 200000.0, 30000000.0)
    """
    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+(?:e[+-]?[0-9]+)?)\s*([kmgKMG]?)\s*", text)
    if not m:
        raise ValueError(f"expected a count like 30M, 0.2M or 3e7, got {text!r}")
    return float(m.group(1)) * _SUFFIX[m.group(2).lower()]


class Config:
    """Base of the dataclass configs: coerce and validate on construction, strict :meth:`replace`."""

    #: What a key is called in error messages (``unknown search option 'x'``).
    kind: ClassVar[str] = "config key"

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):  # type: ignore[arg-type]
            object.__setattr__(self, f.name, coerce(type(self), f.name, getattr(self, f.name)))
        self.validate()

    def validate(self) -> None:
        """Range and consistency checks beyond the field types (raise :class:`ConfigError`)."""

    def replace(self: C, **overrides: Any) -> C:
        """A copy with ``overrides`` applied, checked like construction.

        Raises:
            ConfigError: Unknown key, or a value that does not fit the field.
        """
        for key in overrides:
            _field(type(self), key)
        return dataclasses.replace(self, **overrides)  # type: ignore[type-var]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (tuples become lists)."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}  # type: ignore[call-overload]

    @classmethod
    def from_dict(cls: type[C], d: Mapping[str, Any]) -> C:
        """The defaults with ``d`` applied (unknown keys and bad values raise :class:`ConfigError`)."""
        return cls().replace(**d)


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


@functools.cache
def _fields(cls: type) -> dict[str, dataclasses.Field]:
    return {f.name: f for f in dataclasses.fields(cls)}


def _field(cls: type, name: str) -> dataclasses.Field:
    fs = _fields(cls)
    if name not in fs:
        kind = getattr(cls, "kind", "config key")
        raise ConfigError(f"unknown {kind} {name!r}; expected one of: {', '.join(sorted(fs))}")
    return fs[name]


def _types_of(hint: Any) -> tuple[Any, ...]:
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        return typing.get_args(hint)
    return (hint,)


def _describe(hint: Any) -> str:
    return re.sub(r"\b(typing|builtins)\.", "", str(hint) if not isinstance(hint, type) else hint.__name__)


def coerce(cls: type, name: str, value: Any) -> Any:
    """Convert ``value`` (possibly a CLI string) to the type of field ``name`` of ``cls``.

    Raises:
        ConfigError: Unknown field, or a value that does not fit its type.
    """
    f = _field(cls, name)
    hint = _hints(cls)[name]
    allowed = _types_of(hint)
    nullable = type(None) in allowed
    if value is None or (nullable and isinstance(value, str) and value.strip().lower() in ("none", "null")):
        if nullable:
            return None
        raise ConfigError(f"{name} cannot be None")
    if isinstance(value, str) and "parse" in f.metadata:
        try:
            value = f.metadata["parse"](value)
        except ValueError as e:
            raise ConfigError(f"bad value for {name}: {e}") from None
    for t in allowed:
        if t is type(None):
            continue
        if typing.get_origin(t) is Literal:
            if value in typing.get_args(t):
                return value
            raise ConfigError(
                f"bad value for {name}: {value!r}; expected one of: {', '.join(map(str, typing.get_args(t)))}"
            )
        if typing.get_origin(t) is dict:
            return _mapping(name, value)
        try:
            return _convert(t, value)
        except (TypeError, ValueError):
            continue
    raise ConfigError(f"bad value for {name}: {value!r} (expected {_describe(hint)})")


def _mapping(name: str, value: Any) -> dict[str, Any]:
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as e:
            raise ConfigError(f"{name} must be a JSON object, got {value!r}: {e}") from None
    if not isinstance(value, Mapping):
        raise ConfigError(f"{name} must be a mapping (a JSON object), got {type(value).__name__} {value!r}")
    return dict(value)


def _convert(t: Any, value: Any) -> Any:
    if typing.get_origin(t) is tuple:
        args = typing.get_args(t)
        if len(args) == 2 and args[1] is Ellipsis:  # tuple[X, ...]: a list, or one comma-separated string
            if isinstance(value, str):
                value = [v.strip() for v in value.split(",") if v.strip()]
            if not isinstance(value, (list, tuple)):
                raise ValueError(value)
            return tuple(_convert(args[0], v) for v in value)
        if isinstance(value, str):
            value = [v for v in value.replace(",", " ").split() if v]
        if not isinstance(value, (list, tuple)) or len(value) != len(args):
            raise ValueError(value)
        return tuple(_convert(a, v) for a, v in zip(args, value))
    if t is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("1", "true", "yes", "on", "0", "false", "no", "off"):
            return value.lower() in ("1", "true", "yes", "on")
        raise ValueError(value)
    if t is int:
        if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
            raise ValueError(value)
        return int(value)
    if t is float:
        if isinstance(value, bool):
            raise ValueError(value)
        number = float(value)
        if not math.isfinite(number):  # NaN and inf pass every "x > 0" check: refuse them here, for every field
            raise ValueError(value)
        return number
    if t is str:
        if not isinstance(value, (str, os.PathLike)):
            raise ValueError(value)
        return str(value)
    raise TypeError(t)


def add_flags(
    parser: argparse.ArgumentParser | argparse._ArgumentGroup,
    cls: type[Config],
    *,
    defaults: Config | None = None,
    alt_defaults: tuple[str, Config] | None = None,
    aliases: Mapping[str, Iterable[str]] | None = None,
    skip: Iterable[str] = (),
    prefix: str = "cfg_",
) -> None:
    """One flag per field of ``cls``: ``--field-name`` (``--x/--no-x`` for booleans, choices for literals).

    Every flag defaults to ``None`` (not given); :func:`flag_overrides` collects the given ones, and
    the config coerces and checks them, so a bad value is a :class:`ConfigError` naming the key.

    Args:
        parser: Parser or argument group to add to.
        cls: The config dataclass.
        defaults: The config whose values the help text gives as defaults (default: ``cls()``).
        alt_defaults: ``(label, config)``: also name this config's value where it differs
            (e.g. ``("--tiny", TINY)``).
        aliases: Extra option strings per field, e.g. ``{"model": ["-m"]}``.
        skip: Fields without a flag.
        prefix: Prefix of each flag's ``dest`` (keeps config fields apart from other arguments).
    """
    defaults = defaults if defaults is not None else cls()
    aliases = aliases or {}
    hints = _hints(cls)
    for f in dataclasses.fields(cls):
        if f.name in skip:
            continue
        flags = [f"--{f.name.replace('_', '-')}", *aliases.get(f.name, ())]
        flags.sort(key=lambda s: s.startswith("--"))  # short options first, as argparse lists them
        default = getattr(defaults, f.name)
        help_ = f.metadata.get("help", "")
        # a help text ending in "(None: what None means)" names the default itself
        means = re.fullmatch(r"(.*) \(None: (.*)\)", help_, flags=re.S)
        if default is None and means:
            help_, note = means.group(1), f"default: {means.group(2)}"
        else:
            note = f"default: {_show(default)}"
        if alt_defaults is not None and getattr(alt_defaults[1], f.name) != default:
            note += f"; {alt_defaults[0]}: {_show(getattr(alt_defaults[1], f.name))}"
        help_ = f"{help_} ({note})".replace("%", "%%")  # argparse formats help with %
        kwargs: dict[str, Any] = dict(dest=prefix + f.name, default=None, help=help_)
        kinds = [t for t in _types_of(hints[f.name]) if t is not type(None)]
        if kinds == [bool]:
            parser.add_argument(*flags, action=argparse.BooleanOptionalAction, **kwargs)
            continue
        if len(kinds) == 1 and typing.get_origin(kinds[0]) is Literal:
            kwargs["choices"] = typing.get_args(kinds[0])
        elif len(kinds) == 1 and typing.get_origin(kinds[0]) is tuple and typing.get_args(kinds[0])[-1] is Ellipsis:
            kwargs["nargs"] = "+"
        if "choices" not in kwargs:
            kwargs["metavar"] = f.metadata.get("metavar", f.name.upper())
        parser.add_argument(*flags, **kwargs)


def _show(value: Any) -> str:
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, tuple):
        return " ".join(map(str, value)) or "all"
    if isinstance(value, dict):
        return json.dumps(value) if value else "none"
    if isinstance(value, float) and value >= 1e4:
        return f"{value:g}"
    return str(value)


def flag_overrides(args: argparse.Namespace, prefix: str = "cfg_") -> dict[str, Any]:
    """The config fields a parsed command line gives (flags from :func:`add_flags` that were used)."""
    return {k[len(prefix) :]: v for k, v in vars(args).items() if k.startswith(prefix) and v is not None}


def check_range(
    name: str,
    value: Any,
    low: float | None = None,
    high: float | None = None,
    *,
    open_low: bool = False,
    open_high: bool = False,
    none_means: str | None = None,
) -> None:
    """Raise :class:`ConfigError` unless ``low <= value <= high`` (``None`` passes; bounds optional).

    Example:
        >>> check_range("epochs", 0, 1)
        Traceback (most recent call last):
        ...
        rexnet.errors.ConfigError: epochs must be >= 1, got 0
    """
    if value is None:
        return
    below = low is not None and (value <= low if open_low else value < low)
    above = high is not None and (value >= high if open_high else value > high)
    if not (below or above):
        return
    if low is not None and high is not None:
        rng = f"in {'(' if open_low else '['}{low:g}, {high:g}{')' if open_high else ']'}"
    elif low is not None:
        rng = f"{'>' if open_low else '>='} {low:g}"
    else:
        rng = f"{'<' if open_high else '<='} {high:g}"
    extra = f" (or None for {none_means})" if none_means else ""
    raise ConfigError(f"{name} must be {rng}{extra}, got {value!r}")
