"""Benchmark contestants from files the user already exported (``rexnet bench --onnx F --openvino F.xml``)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from .candidates import Candidate
from .runtime import load_exported

__all__ = ["file_candidates"]


def file_candidates(
    files: Sequence[tuple[str | os.PathLike, str]], image_size: int, batches: set[int], threads: int | None = None
) -> list[Candidate]:
    """One :class:`Candidate` per ``(path, runtime)``, timed by the same harness as the built ones.

    The file's sidecar, when present, gives its input size and precision (as ``rexnet eval -c FILE``
    reads them); a file made for another size gets the benchmark's input resized before timing.

    Raises:
        InputError: A missing file or a runtime that is not installed.
        ExportError: A broken file or sidecar.
    """
    cands = []
    for path, runtime in files:
        fn, meta = load_exported(path, runtime, threads=threads or None)
        side = int(meta["image_size"])

        def prepare(x: torch.Tensor, side: int = side) -> torch.Tensor:
            if x.shape[-1] == side:
                return x
            return F.interpolate(x, size=(side, side), mode="bilinear", align_corners=False)

        name = f"{Path(path).name} ({meta['runtime']})"
        cands.append(
            Candidate(name, "file", _precision(meta), fn, prepare, frozenset(batches), params=0, macs=_macs(meta, side))
        )
    return cands


def _precision(meta: dict[str, Any]) -> str:
    """The benchmark's names (fp32, int8) for a sidecar's precision (f32, int8)."""
    p = str(meta.get("precision") or "f32")
    return "fp32" if p == "f32" else p


def _macs(meta: dict[str, Any], side: int) -> int | None:
    """MACs per image from the sidecar's model name, when the zoo knows it (None otherwise)."""
    from ..plan import plan_cost
    from ..zoo import get_plan, list_models

    name = meta.get("model")
    if not name or name not in list_models():
        return None
    return int(plan_cost(get_plan(name), side).macs)
