"""Numbers from the command line and their ranges: ``parse_count`` (``30M``) and ``check_range``.

The base of :mod:`rexnet._config`'s range checks; every message names the key and echoes the value.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from .errors import ConfigError

__all__ = ["check_bounds", "check_range", "parse_count"]

_SUFFIX = {"": 1.0, "k": 1e3, "m": 1e6, "g": 1e9}


def parse_count(text: str) -> float:
    """``30M``, ``0.2m``, ``3e7``, ``1.5G`` -> a number.

    Example:
        >>> parse_count("7.5M"), parse_count("0.2m"), parse_count("3e7")
        (7500000.0, 200000.0, 30000000.0)
    """
    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+(?:e[+-]?[0-9]+)?)\s*([kmgKMG]?)\s*", text)
    if not m:
        raise ConfigError(f"expected a count like 30M, 0.2M or 3e7, got {text!r}")
    return float(m.group(1)) * _SUFFIX[m.group(2).lower()]


def check_range(
    name: str,
    value: Any,
    low: float | None = None,
    high: float | None = None,
    *,
    open_low: bool = False,
    open_high: bool = False,
    none_means: str | None = None,
    why: str | None = None,
) -> None:
    """Raise :class:`ConfigError` unless ``low <= value <= high`` (``None`` passes; bounds optional).

    ``why`` explains a bound in the message (``the cores this process may use``).

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
    if value != value:  # NaN compares false with every bound
        raise ConfigError(f"{name} must be a number, got {value!r}")
    if not (below or above):
        return
    if low is not None and high is not None:
        rng = f"in {'(' if open_low else '['}{_num(low)}, {_num(high)}{')' if open_high else ']'}"
    elif low is not None:
        rng = f"{'>' if open_low else '>='} {_num(low)}"
    else:
        rng = f"{'<' if open_high else '<='} {_num(high)}"
    extra = f" (or None for {none_means})" if none_means else ""
    extra += f" ({why})" if why else ""
    raise ConfigError(f"{name} must be {rng}{extra}, got {value!r}")


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() and abs(x) < 1e16 else f"{x:g}"


def check_bounds(name: str, value: Any, meta: Mapping[str, Any]) -> None:
    """The ``min``/``max`` (inclusive) and ``gt``/``lt`` (exclusive) bounds in a field's metadata, on ``value``
    or on each item of a tuple; a bound may be a callable (``max=available_cores``), ``why`` explains it.

    Example:
        >>> check_bounds("hflip", (0.5, 2.0), {"min": 0, "max": 1})
        Traceback (most recent call last):
        ...
        rexnet.errors.ConfigError: hflip must be in [0, 1], got 2.0
    """
    if value is None or not any(k in meta for k in ("min", "max", "gt", "lt")):
        return
    low, open_low = (_bound(meta["gt"]), True) if "gt" in meta else (_bound(meta.get("min")), False)
    high, open_high = (_bound(meta["lt"]), True) if "lt" in meta else (_bound(meta.get("max")), False)
    for item in value if isinstance(value, tuple) else (value,):
        check_range(name, item, low, high, open_low=open_low, open_high=open_high, why=meta.get("why"))


def _bound(value: Any) -> float | None:
    return value() if callable(value) else value
