"""Feature levels: timm's ``FeatureInfo`` object and the index rules of ``out_indices`` / ``indices``.

A *level* is the last map at one resolution (strides 2, 4, 8, 16, 32 for ReXNet). Indices follow
timm: a sequence selects levels (negative ones count from the end), a plain int ``n`` selects the
last ``n`` levels, ``None`` selects all.
"""

import copy
from collections.abc import Iterator, Sequence
from typing import Any

from .errors import InputError, RexnetError

__all__ = ["FeatureInfo", "feature_take_indices", "resolve_out_indices"]

Indices = int | Sequence[int] | None


def feature_take_indices(num_levels: int, indices: Indices = None) -> tuple[list[int], int]:
    """Absolute level indices for ``indices`` and the largest of them.

    Args:
        num_levels: How many levels there are.
        indices: ``None`` (all), an int ``n`` (the last ``n``), or a sequence (negatives from the end).

    Raises:
        InputError: An index out of range, an empty selection or ``n`` outside ``1..num_levels``.
    """
    if indices is None:
        indices = num_levels
    if isinstance(indices, bool):  # bool is an int; True would silently mean "the last level"
        raise InputError(f"indices must be an int or a sequence of ints, got {indices!r}")
    if isinstance(indices, int):
        if not 0 < indices <= num_levels:
            raise InputError(f"last-n indices ({indices}) must be in 1..{num_levels}")
        take = list(range(num_levels - indices, num_levels))
    else:
        take = []
        for i in indices:
            idx = num_levels + i if i < 0 else i
            if not 0 <= idx < num_levels:
                raise InputError(
                    f"feature index {i} is out of range for {num_levels} levels (-{num_levels}..{num_levels - 1})"
                )
            take.append(idx)
        if not take:
            raise InputError("indices select no feature level")
    return take, max(take)


def resolve_out_indices(out_indices: Indices, num_levels: int) -> tuple[int, ...]:
    """``out_indices`` of a ``features_only`` backbone as sorted absolute levels (maps come out in that order).

    Raises:
        InputError: As :func:`feature_take_indices`, or a level named twice.
    """
    try:
        take, _ = feature_take_indices(num_levels, out_indices)
    except RexnetError as e:
        raise InputError(f"out_indices {out_indices!r}: {e}") from None
    if len(set(take)) != len(take):
        raise InputError(f"out_indices {out_indices!r} names a level twice")
    return tuple(sorted(take))


class FeatureInfo:
    """Per-level metadata (``num_chs``, ``reduction``, ``module``, ``index``) with timm's accessors.

    ``channels()``, ``reduction()`` and ``module_name()`` answer for the selected
    ``out_indices``; with ``idx`` (an int or a list) for those levels instead. Indexing,
    ``len`` and iteration cover every level, as in timm.

    Example:
        >>> info = FeatureInfo([dict(num_chs=16, reduction=2, module="blocks.0")], out_indices=(0,))
        >>> info.channels(), info.reduction(), info.module_name()
        ([16], [2], ['blocks.0'])
    """

    def __init__(self, info: Sequence[dict[str, Any]], out_indices: Indices = None) -> None:
        self.info = [dict(d) for d in info]
        for i, d in enumerate(self.info):
            d.setdefault("index", i)
        self.out_indices = resolve_out_indices(out_indices, len(self.info))

    def from_other(self, out_indices: Indices) -> "FeatureInfo":
        """The same levels with another selection."""
        return FeatureInfo(copy.deepcopy(self.info), out_indices)

    def get(self, key: str, idx: int | Sequence[int] | None = None) -> Any:
        """``key`` for each selected level, for level ``idx``, or for each level in ``idx``."""
        if idx is None:
            return [self.info[i][key] for i in self.out_indices]
        if isinstance(idx, int):
            return self.info[idx][key]
        return [self.info[i][key] for i in idx]

    def get_dicts(self, keys: Sequence[str] | None = None, idx: int | Sequence[int] | None = None) -> Any:
        """The level dicts (restricted to ``keys``) for the selection, level ``idx`` or levels ``idx``."""

        def pick(i: int) -> dict[str, Any]:
            return self.info[i] if keys is None else {k: self.info[i][k] for k in keys}

        if idx is None:
            return [pick(i) for i in self.out_indices]
        return pick(idx) if isinstance(idx, int) else [pick(i) for i in idx]

    def channels(self, idx: int | Sequence[int] | None = None) -> Any:
        """Channels of the selected maps (or of level/levels ``idx``)."""
        return self.get("num_chs", idx)

    def reduction(self, idx: int | Sequence[int] | None = None) -> Any:
        """Output stride of the selected maps (or of level/levels ``idx``)."""
        return self.get("reduction", idx)

    def module_name(self, idx: int | Sequence[int] | None = None) -> Any:
        """Name of the module producing each selected map (or level/levels ``idx``)."""
        return self.get("module", idx)

    def __getitem__(self, item: int) -> dict[str, Any]:
        return self.info[item]

    def __len__(self) -> int:
        return len(self.info)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return iter(self.info)

    def __repr__(self) -> str:
        return f"FeatureInfo(channels={self.channels()}, reduction={self.reduction()}, out_indices={self.out_indices})"
