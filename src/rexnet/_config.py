"""Dataclass configs: strict coercion of every field and argparse flags generated from the fields.

A config is a ``@dataclass`` that derives from :class:`Config`; each field carries its help text in
``field(metadata={"help": ...})``. Constructing one coerces every value to its field's type (CLI
strings included: ``"3"``, ``"none"``, ``"true"``, ``"30M"`` where a field has ``parse``) and then
calls :meth:`Config.validate` for the range checks; an unknown key or a value of the wrong type is a
:class:`ConfigError` that names the key and echoes the value, as in nanoGPT's configurator.

Supported field types: ``bool``, ``int``, ``float``, ``str``, ``Literal[...]`` of strings,
``tuple[X, Y]`` (fixed length), ``tuple[X, ...]``, ``dict[str, Any]``, another :class:`Config`
(nested: coerced from a mapping, flags ``--<field>-<subfield>``) and ``X | None`` of these.

Ranges are field metadata, checked for every config the same way before :meth:`Config.validate`:
``min``/``max`` (inclusive) and ``gt``/``lt`` (exclusive), a number or a callable giving one
(``max=available_cores``); a tuple's items are checked one by one. Floats refuse NaN and inf. Every
message names the key and its flag (``epochs (--epochs) must be >= 1, got 0``).
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

from ._ranges import check_bounds, check_range, parse_count
from .errors import ConfigError

__all__ = [
    "Config",
    "ConfigError",
    "add_flags",
    "check_range",
    "coerce",
    "flag_name",
    "flag_overrides",
    "parse_count",
]

C = TypeVar("C", bound="Config")


class Config:
    """Base of the dataclass configs: coerce and range-check on construction, strict :meth:`replace`."""

    #: What a key is called in error messages (``unknown search option 'x'``).
    kind: ClassVar[str] = "config key"
    #: The flag prefix of this config's fields when it is nested (``"aug"``: ``--aug-scale``).
    flag_prefix: ClassVar[str] = ""
    #: Older flat keys still accepted by :meth:`replace`/:meth:`from_dict`: ``{"hflip": "aug.hflip"}``.
    legacy_keys: ClassVar[Mapping[str, str]] = {}

    def __post_init__(self) -> None:
        cls = type(self)
        for f in dataclasses.fields(self):  # type: ignore[arg-type]
            object.__setattr__(self, f.name, coerce(cls, f.name, getattr(self, f.name)))
        for f in dataclasses.fields(self):  # type: ignore[arg-type]
            _check_bounds(cls, f, getattr(self, f.name))
        self.validate()

    def validate(self) -> None:
        """Consistency checks beyond the field types and ranges (raise :class:`ConfigError`)."""

    def replace(self: C, **overrides: Any) -> C:
        """A copy with ``overrides`` applied, checked like construction.

        Keys may be field names, dotted paths into a nested config (``aug.hflip``) or
        :attr:`legacy_keys`; a mapping given for a nested config changes only the keys it names.

        Raises:
            ConfigError: Unknown key, or a value that does not fit the field.
        """
        changes: dict[str, Any] = {}
        for key, value in _nest(type(self), overrides).items():
            _field(type(self), key)
            current = getattr(self, key)
            if isinstance(current, Config) and isinstance(value, Mapping):
                value = current.replace(**value)
            changes[key] = value
        return dataclasses.replace(self, **changes)  # type: ignore[type-var]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (tuples become lists, nested configs dicts)."""
        return {f.name: _plain(getattr(self, f.name)) for f in dataclasses.fields(self)}  # type: ignore[arg-type]

    def flat_dict(self) -> dict[str, Any]:
        """:meth:`to_dict` with nested configs spelt as dotted keys (``aug.scale``)."""
        out: dict[str, Any] = {}
        for key, value in self.to_dict().items():
            if isinstance(getattr(self, key), Config):
                out.update({f"{key}.{k}": v for k, v in getattr(self, key).flat_dict().items()})
            else:
                out[key] = value
        return out

    @classmethod
    def key_path(cls, key: str) -> str:
        """The dotted path of ``key`` (a field, a dotted path or a legacy key; ``-`` read as ``_``).

        Raises:
            ConfigError: No such key.
        """
        key = key.strip().replace("-", "_")
        key = cls.legacy_keys.get(key, key)
        head, _, rest = key.partition(".")
        _field(cls, head)
        sub = _nested_type(cls, head)
        return f"{head}.{sub.key_path(rest)}" if rest and sub is not None else key

    @classmethod
    def from_dict(cls: type[C], d: Mapping[str, Any]) -> C:
        """The defaults with ``d`` applied (unknown keys and bad values raise :class:`ConfigError`)."""
        return cls().replace(**d)


def _plain(value: Any) -> Any:
    if isinstance(value, Config):
        return value.to_dict()
    if isinstance(value, (tuple, list)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def _nest(cls: type[Config], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """Legacy and dotted keys -> ``{field: value}`` with one mapping per nested config."""
    out: dict[str, Any] = {}
    for key, value in overrides.items():
        key = cls.legacy_keys.get(key, key)
        head, _, rest = key.partition(".")
        if not rest:
            if isinstance(out.get(head), dict) and isinstance(value, Mapping):
                out[head].update(value)
            else:
                out[head] = dict(value) if isinstance(value, Mapping) and _nested_type(cls, head) else value
            continue
        _field(cls, head)
        if _nested_type(cls, head) is None:
            raise ConfigError(f"{head} has no sub-keys; got {key!r}")
        slot = out.setdefault(head, {})
        if not isinstance(slot, dict):  # a whole config object given too: apply the dotted key on top of it
            slot = out[head] = slot.to_dict()
        slot[rest] = value
    return out


def _nested_type(cls: type, name: str) -> type[Config] | None:
    hint = _hints(cls).get(name)
    for t in _types_of(hint):
        if isinstance(t, type) and issubclass(t, Config):
            return t
    return None


def flag_name(cls: type, name: str) -> str:
    """The CLI flag of field ``name`` of ``cls`` (``--aug-scale`` for a config nested as ``aug``)."""
    prefix = getattr(cls, "flag_prefix", "")
    return "--" + (f"{prefix}_{name}" if prefix else name).replace("_", "-")


def _flagged(cls: type, name: str, error: ConfigError) -> ConfigError:
    """``error`` with the field's flag in front, as argparse names a flag (``--epochs: epochs must be ...``)."""
    text = str(error)
    return error if text.startswith("--") else ConfigError(f"{flag_name(cls, name)}: {text}")


def _check_bounds(cls: type, f: dataclasses.Field, value: Any) -> None:
    try:
        check_bounds(f.name, value, f.metadata)
    except ConfigError as e:
        raise _flagged(cls, f.name, e) from None


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
        ConfigError: Unknown field, or a value that does not fit its type (the message starts with its flag).
    """
    f = _field(cls, name)
    try:
        return _coerce(cls, f, value)
    except ConfigError as e:
        raise _flagged(cls, name, e) from None


def _coerce(cls: type, f: dataclasses.Field, value: Any) -> Any:
    hint = _hints(cls)[f.name]
    label = f.name
    allowed = _types_of(hint)
    nullable = type(None) in allowed
    if value is None or (nullable and isinstance(value, str) and value.strip().lower() in ("none", "null")):
        if nullable:
            return None
        raise ConfigError(f"{label} cannot be None")
    if isinstance(value, str) and "parse" in f.metadata:
        try:
            value = f.metadata["parse"](value)
        except ValueError as e:
            raise ConfigError(f"bad value for {label}: {e}") from None
    for t in allowed:
        if t is type(None):
            continue
        if isinstance(t, type) and issubclass(t, Config):
            return _nested(t, f, label, value)
        if typing.get_origin(t) is Literal:
            if value in typing.get_args(t):
                return value
            raise ConfigError(
                f"bad value for {label}: {value!r}; expected one of: {', '.join(map(str, typing.get_args(t)))}"
            )
        if typing.get_origin(t) is dict:
            return _mapping(label, value)
        try:
            return _convert(t, value)
        except (TypeError, ValueError, OverflowError):
            continue
    finite = "; NaN and inf are refused" if "float" in _describe(hint) else ""
    raise ConfigError(f"bad value for {label}: {value!r} (expected {_describe(hint)}{finite})")


def _nested(t: type[Config], f: dataclasses.Field, label: str, value: Any) -> Config:
    """A nested config from itself or a mapping; a mapping changes the field's default, key by key."""
    if isinstance(value, t):
        return value
    if isinstance(value, str):
        value = _mapping(label, value)
    if not isinstance(value, Mapping):
        raise ConfigError(f"{label} must be a mapping of {t.__name__} keys, got {type(value).__name__} {value!r}")
    factory = f.default_factory if f.default_factory is not dataclasses.MISSING else None
    base = factory() if factory is not None else f.default if isinstance(f.default, t) else t()
    return base.replace(**value)


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
        sub = _nested_type(cls, f.name)
        if sub is not None:  # a nested config: --<field>-<subfield>, dest <prefix><field>.<subfield>
            add_flags(
                parser,
                sub,
                defaults=getattr(defaults, f.name),
                alt_defaults=None if alt_defaults is None else (alt_defaults[0], getattr(alt_defaults[1], f.name)),
                aliases={k.partition(".")[2]: v for k, v in aliases.items() if k.startswith(f.name + ".")},
                skip=[k.partition(".")[2] for k in skip if k.startswith(f.name + ".")],
                prefix=f"{prefix}{f.name}.",
            )
            continue
        if f.metadata.get("positional"):  # a name the command takes first (``rank profile MODEL``)
            parser.add_argument(prefix + f.name, metavar=f.name.upper(), help=f.metadata.get("help", ""))
            continue
        flags = [flag_name(cls, f.name), *aliases.get(f.name, ())]
        flags.sort(key=lambda s: s.startswith("--"))  # short options first, as argparse lists them
        kwargs: dict[str, Any] = dict(dest=prefix + f.name, default=None, help=_help(f, defaults, alt_defaults))
        if f.metadata.get("required"):
            kwargs["required"] = True
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


def _help(f: dataclasses.Field, defaults: Config, alt_defaults: tuple[str, Config] | None) -> str:
    default = getattr(defaults, f.name)
    help_ = f.metadata.get("help", "")
    if f.metadata.get("required"):
        return help_.replace("%", "%%")
    # a help text ending in "(None: what None means)" names the default itself
    means = re.fullmatch(r"(.*) \(None: (.*)\)", help_, flags=re.S)
    if default is None and means:
        help_, note = means.group(1), f"default: {means.group(2)}"
    else:
        note = f"default: {_show(default)}"
    if alt_defaults is not None and getattr(alt_defaults[1], f.name) != default:
        note += f"; {alt_defaults[0]}: {_show(getattr(alt_defaults[1], f.name))}"
    return f"{help_} ({note})".replace("%", "%%")  # argparse formats help with %


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
