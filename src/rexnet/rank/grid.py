"""Protocol grid mode: sweep the unknowns of the paper's protocol and score each against Figure 1.

Every combination of the swept :class:`~rexnet.rank.protocols.Protocol` options is run on the
same seeds; one SVD per network serves all estimators, so each (options, estimator) pair is a
scored candidate. ``grid.csv`` lists them best first with the residual per panel; the log
``grid_points.jsonl`` makes the sweep resumable (one line per finished option combination).
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from .._files import atomic_write, write_csv
from ..errors import InputError
from ..run import Progress, RunLock
from .blocks import BLOCKS, check_blocks, point_rank_ratios
from .paper import score_against_paper
from .protocols import PAPER_ACTIVATIONS, Protocol, check_ratios, get_protocol
from .study import read_jsonl

__all__ = ["DEFAULT_GRID", "DEFAULT_GRID_ESTIMATORS", "GridRow", "run_protocol_grid"]

DEFAULT_GRID: dict[str, tuple[Any, ...]] = {
    "input": ("uniform01", "gaussian"),
    "init": ("normal", "he_normal", "pytorch_default"),
    "norm": ("none", "bn_before", "bn_after"),
}
DEFAULT_GRID_ESTIMATORS = ("matrix_rank", "rtol:1e-3", "rtol:1e-2", "rtol:3e-2", "energy:0.99", "erank")
DEFAULT_GRID_RATIOS = (0.1, 0.2, 0.3, 0.5, 1.0)


@dataclass(frozen=True)
class GridRow:
    """One scored candidate: the swept options, the estimator and its residuals to the paper."""

    options: dict[str, Any]
    estimator: str
    score: float
    panels: dict[str, float]
    order_agreement: float
    values: dict[tuple[str, str, float], float]


def _combos(grid: Mapping[str, Sequence[Any]]) -> list[dict[str, Any]]:
    keys = list(grid)
    return [dict(zip(keys, vals)) for vals in itertools.product(*(grid[k] for k in keys))]


def run_protocol_grid(
    out_dir: str | os.PathLike | None = None,
    *,
    grid: Mapping[str, Sequence[Any]] | None = None,
    estimators: Sequence[str] = DEFAULT_GRID_ESTIMATORS,
    base: str | Protocol | dict[str, Any] | None = None,
    blocks: Sequence[str] = BLOCKS,
    activations: Sequence[str] = PAPER_ACTIVATIONS,
    ratios: Sequence[float] = DEFAULT_GRID_RATIOS,
    networks: int = 30,
    seed: int = 0,
    progress: bool = True,
) -> list[GridRow]:
    """Sweep protocol options and rank each (options, estimator) by its distance to the paper's Fig. 1.

    Args:
        out_dir: Folder for ``grid.csv``, ``grid_points.jsonl`` and ``grid_config.json`` (``None``: memory only).
        grid: ``{protocol option: values}`` to sweep (default :data:`DEFAULT_GRID`).
        estimators: Estimator specs, all read from the same singular values.
        base: The protocol the swept options modify (default: the library default).
        blocks: Block types. activations: Activations. ratios: Dimension ratios.
        networks: Random networks per point (30 gives about +-0.01 per point).
        seed: Seed (shared by all combinations: common random numbers).
        progress: Show a progress bar.

    Returns:
        Scored rows, best (smallest mean per-panel RMS residual) first.

    Raises:
        InputError: Unknown options or values, or an ``out_dir`` holding another grid.
    """
    if networks < 1:
        raise InputError(f"networks must be >= 1, got {networks}")
    grid = dict(grid or DEFAULT_GRID)
    blocks, ratios = check_blocks(list(blocks)), check_ratios(list(ratios))
    base_p = get_protocol(base)
    combos = _combos(grid)
    protos = [base_p.replace(**c) for c in combos]  # validates every value up front
    for e in estimators:
        base_p.replace(estimator=e)
    config = {
        "grid": {k: list(v) for k, v in grid.items()},
        "estimators": list(estimators),
        "base": base_p.to_dict(),
        "blocks": list(blocks),
        "activations": list(activations),
        "ratios": list(ratios),
        "networks": networks,
        "seed": seed,
    }
    # the run lock for the whole sweep: its journal and outputs are this process's to replace
    with RunLock(out_dir) if out_dir is not None else contextlib.nullcontext():
        done, log_path = _open_grid_folder(Path(out_dir), config) if out_dir is not None else ({}, None)
        todo = [(c, p) for c, p in zip(combos, protos) if json.dumps(c, sort_keys=True) not in done]
        # a bar only on a terminal; a log file gets one line per protocol
        bar = Progress(progress, len(todo), 0, "protocol grid", 1)
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            for c, p in todo:
                t0 = time.perf_counter()
                vals: dict[str, list[list[Any]]] = {e: [] for e in estimators}
                for b in blocks:
                    for r in ratios:
                        res, _ = point_rank_ratios(b, r, activations, networks, p, seed, estimators)
                        for e in estimators:
                            vals[e] += [[b, a, r, float(v.mean())] for a, v in res[e].items()]
                rec = {"options": c, "values": vals, "seconds": time.perf_counter() - t0}
                done[json.dumps(c, sort_keys=True)] = rec
                if log_path is not None:
                    with open(log_path, "a") as fh:
                        fh.write(json.dumps(rec) + "\n")
                bar.advance(1)
        finally:
            torch.set_num_threads(threads)
            bar.close()
        rows = []
        for c in combos:
            rec = done[json.dumps(c, sort_keys=True)]
            for e in estimators:
                values = {(b, a, float(r)): v for b, a, r, v in rec["values"][e]}
                score, panels, order = score_against_paper(values)
                rows.append(GridRow(c, e, score, {p.block: p.rms for p in panels}, order, values))
        rows.sort(key=lambda g: g.score)
        if out_dir is not None:
            _write_grid_csv(rows, Path(out_dir) / "grid.csv", list(grid), blocks)
        return rows


def _open_grid_folder(out: Path, config: dict[str, Any]) -> tuple[dict[str, dict[str, Any]], Path]:
    """Create or resume ``out``: the protocols already computed under the same config (another is refused)."""
    out.mkdir(parents=True, exist_ok=True)
    cfg, log_path = out / "grid_config.json", out / "grid_points.jsonl"
    if cfg.exists() and json.loads(cfg.read_text()) != config:
        raise InputError(f"{out} holds a grid with a different config; use a new --out folder")
    atomic_write(cfg, json.dumps(config, indent=2) + "\n", what="grid config")
    return {json.dumps(rec["options"], sort_keys=True): rec for rec in read_jsonl(log_path)}, log_path


def _write_grid_csv(rows: Sequence[GridRow], path: Path, keys: list[str], blocks: Sequence[str]) -> None:
    head = [*keys, "estimator", "score", *[f"rms_{b}" for b in blocks], "order_agreement"]
    body = [
        [
            *(g.options[k] for k in keys),
            g.estimator,
            f"{g.score:.4f}",
            *(f"{g.panels.get(b, float('nan')):.4f}" for b in blocks),
            f"{g.order_agreement:.3f}",
        ]
        for g in rows
    ]
    write_csv([head, *body], path, what="grid table")


def format_grid(rows: Sequence[GridRow], top: int = 8) -> str:
    """The best ``top`` candidates as a text table, and the best one's residual per panel."""
    if not rows:
        return "no grid rows"
    blocks = list(rows[0].panels)
    lines = [f"{'options':<48} {'estimator':<12} {'score':>6} " + " ".join(f"{b:>8}" for b in blocks) + "  order"]
    for g in rows[:top]:
        opts = ",".join(f"{k}={v}" for k, v in g.options.items())
        lines.append(
            f"{opts:<48} {g.estimator:<12} {g.score:6.3f} "
            + " ".join(f"{g.panels[b]:8.3f}" for b in blocks)
            + f"  {g.order_agreement:.2f}"
        )
    best = rows[0]
    lines.append(
        f"best: {best.options} with {best.estimator}: mean per-panel RMS residual {best.score:.3f} "
        f"({', '.join(f'{b} {v:.3f}' for b, v in best.panels.items())}); "
        f"conv1x1 order agreement {best.order_agreement:.2f}"
    )
    return "\n".join(lines)
