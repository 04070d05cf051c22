"""``mix_seed``: one seed from several integers, shared by sampling, augmentation and search."""

from __future__ import annotations

__all__ = ["mix_seed"]


def mix_seed(*parts: int) -> int:
    """A 63-bit seed from integers (splitmix64-style mixing).

    Example:
        >>> mix_seed(0, 1) == mix_seed(0, 1) != mix_seed(1, 0)
        True
    """
    h = 0x9E3779B97F4A7C15
    for p in parts:
        h = (h ^ (int(p) & 0xFFFFFFFFFFFFFFFF)) * 0xBF58476D1CE4E5B9 & 0xFFFFFFFFFFFFFFFF
        h ^= h >> 31
    return h & 0x7FFFFFFFFFFFFFFF
