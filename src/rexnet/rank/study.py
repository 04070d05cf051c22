"""The random-layer rank study (CVPR'21 Fig. 1) as a function: a resumable, deterministic run folder.

A run folder holds ``config.json`` (every parameter and the seed), ``points.jsonl`` (one line
per finished (block, ratio) point: the resume log), and at the end ``rank_study.csv``,
``rank_study.png`` and ``summary.txt`` (the paper's findings checked on the run's numbers).
Each point draws its networks from a seed derived from (seed, block, ratio), so a resumed
or parallel run gives the same numbers as an uninterrupted one.
"""

from __future__ import annotations

import csv
import json
import logging
import os
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import torch

from .._files import atomic_write, write_csv
from ..errors import InputError
from ..run import Progress, Run, read_config_json
from .blocks import BLOCKS, check_blocks, get_block_kind, point_rank_ratios
from .findings import Finding, check_findings, format_findings
from .protocols import (
    PAPER_ACTIVATIONS,
    Protocol,
    check_ratios,
    get_protocol,
    preset_name,
    resolve_activation,
)

__all__ = ["DEFAULT_RATIOS", "CSV_COLUMNS", "StudyRow", "StudyResult", "run_rank_study", "read_study_csv"]

log = logging.getLogger(__name__)

DEFAULT_RATIOS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)
CSV_COLUMNS = ("block", "activation", "ratio", "rank_ratio_mean", "rank_ratio_std", "networks")


@dataclass(frozen=True)
class StudyRow:
    """One point of one curve: mean and std of rank/d_out over ``networks`` random blocks."""

    block: str
    activation: str
    ratio: float
    rank_ratio_mean: float
    rank_ratio_std: float
    networks: int


@dataclass
class StudyResult:
    """What :func:`run_rank_study` returns.

    Attributes:
        rows: One row per (block, activation, ratio), in block/activation/ratio order.
        config: The run's parameters (as written to ``config.json``).
        findings: The paper's observations and design guides, checked on ``rows``.
        seconds: Wall time of this call (a resumed run counts only what it computed).
        out_dir: The run folder, if any.
    """

    rows: list[StudyRow]
    config: dict[str, Any]
    findings: list[Finding] = field(default_factory=list)
    seconds: float = 0.0
    out_dir: Path | None = None

    def values(self) -> dict[tuple[str, str, float], float]:
        """``{(block, activation, ratio): rank_ratio_mean}``."""
        return {(r.block, r.activation, r.ratio): r.rank_ratio_mean for r in self.rows}

    def value(self, block: str, activation: str, ratio: float) -> float:
        """The mean rank ratio at one point."""
        return self.values()[(block, activation, float(ratio))]

    def summary(self) -> str:
        """The findings, formatted for printing."""
        return format_findings(self.findings)


def _compute_point(
    block: str, ratio: float, activations: Sequence[str], networks: int, protocol: Protocol, seed: int
) -> dict[str, Any]:
    torch.set_num_threads(1)
    res, dims = point_rank_ratios(block, ratio, activations, networks, protocol, seed)
    r = res[protocol.estimator]
    return {
        "block": block,
        "ratio": ratio,
        "networks": networks,
        "dim_ratio": float(dims.mean()),
        "stats": {a: [float(v.mean()), float(v.std(unbiased=False))] for a, v in r.items()},
    }


def _expansion(p: Protocol) -> str:
    t = f"{p.expansion:g}" if p.expansion_max is None else f"U[{p.expansion:g},{p.expansion_max:g}]"
    return t + ("" if p.shortcut else ", no shortcut")


def _cost(block: str, ratio: float) -> float:
    return get_block_kind(block).cost(ratio)


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """The records of a JSON-lines log (none if it does not exist), skipping a line cut by an interrupt."""
    records = []
    for line in path.read_text().splitlines() if path.exists() else []:
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return records


def _load_points(path: Path) -> dict[tuple[str, float], dict[str, Any]]:
    return {(rec["block"], float(rec["ratio"])): rec for rec in read_jsonl(path)}


def _rows(
    points: dict[tuple[str, float], dict[str, Any]],
    blocks: Sequence[str],
    activations: Sequence[str],
    ratios: Sequence[float],
) -> list[StudyRow]:
    rows = []
    for b in blocks:
        for a in activations:
            for r in ratios:
                rec = points[(b, r)]
                m, s = rec["stats"][a]
                rows.append(StudyRow(b, a, r, m, s, int(rec["networks"])))
    return rows


def write_study_csv(rows: Sequence[StudyRow], path: str | os.PathLike, *, overwrite: bool = False) -> None:
    """Write rows with :data:`CSV_COLUMNS`, atomically under the output policy (:mod:`rexnet._files`)."""
    body = [
        [r.block, r.activation, f"{r.ratio:g}", f"{r.rank_ratio_mean:.6f}", f"{r.rank_ratio_std:.6f}", r.networks]
        for r in rows
    ]
    write_csv([CSV_COLUMNS, *body], path, overwrite=overwrite, what="rank study table")


def read_study_csv(path: str | os.PathLike) -> list[StudyRow]:
    """Read a ``rank_study.csv`` back into rows."""
    with open(path, newline="") as fh:
        return [
            StudyRow(
                d["block"],
                d["activation"],
                float(d["ratio"]),
                float(d["rank_ratio_mean"]),
                float(d["rank_ratio_std"]),
                int(d["networks"]),
            )
            for d in csv.DictReader(fh)
        ]


def run_rank_study(
    out_dir: str | os.PathLike | None = None,
    *,
    blocks: Sequence[str] = BLOCKS,
    activations: Sequence[str] = PAPER_ACTIVATIONS,
    ratios: Sequence[float] = DEFAULT_RATIOS,
    networks: int = 1000,
    seed: int = 0,
    protocol: str | Protocol | dict[str, Any] | None = None,
    workers: int | None = None,
    progress: bool = True,
    plot: bool = True,
) -> StudyResult:
    """Run the random-layer rank study of CVPR'21 Fig. 1.

    Args:
        out_dir: Run folder (created; an existing one with the same config is resumed).
            ``None`` computes in memory only.
        blocks: Block types (:data:`rexnet.rank.protocols.BLOCKS`).
        activations: Activation names (rexnet's or any ``torch.nn`` activation class name).
        ratios: Dimension ratios d_in/d_out, each in (0, 1].
        networks: Random networks per point (the paper: 1,000).
        seed: Seed; the same seed and config give the same numbers, resumed or not.
        protocol: A preset name, a :class:`Protocol` or a dict of options (default: ``"default"``).
        workers: Processes computing points in parallel, each single-threaded. ``None``: 1 for
            small runs (< 20,000 networks to compute), else ``min(2, cpu_count)``.
        progress: Show a progress bar.
        plot: Draw ``rank_study.png`` (only with ``out_dir``).

    Returns:
        The :class:`StudyResult`, with the findings checked.

    Raises:
        InputError: Unknown blocks/activations/options, a ratio outside (0, 1], or an
            ``out_dir`` holding a run with a different config.

    Example:
        >>> res = run_rank_study(blocks=["conv1x1"], activations=["identity", "relu"],
        ...                      ratios=[0.5], networks=20, progress=False)
        >>> round(res.value("conv1x1", "identity", 0.5), 2)
        0.5
    """
    blocks, ratios, activations = _check_args(blocks, ratios, activations, networks, workers)
    proto = get_protocol(protocol)
    config = {
        "blocks": list(blocks),
        "activations": list(activations),
        "ratios": list(ratios),
        "networks": networks,
        "seed": seed,
        "protocol": proto.to_dict(),
        "torch": torch.__version__,
    }
    # the run lock for the whole study; a folder holding another kind of run (a training run) is refused
    with Run(out_dir, "rank-study").open(resume=True) as run:
        return _run_study(run, config, proto, workers, progress, plot)


def _run_study(
    run: Run, config: dict[str, Any], proto: Protocol, workers: int | None, progress: bool, plot: bool
) -> StudyResult:
    """The body of :func:`run_rank_study` on its held run folder."""
    blocks, activations, ratios = config["blocks"], config["activations"], config["ratios"]
    networks, seed, out = config["networks"], config["seed"], run.folder
    points, log_path = _open_run_folder(run, config) if out is not None else ({}, None)
    todo = [(b, r) for b in blocks for r in ratios if (b, r) not in points]
    todo.sort(key=lambda t: -_cost(*t))  # heaviest first: better balance across workers
    if workers is None:
        workers = 1 if len(todo) * networks < 20_000 else min(2, os.cpu_count() or 1)
    if len(todo) < len(blocks) * len(ratios):
        total = len(blocks) * len(ratios)
        log.info("resuming: %d of %d points already done", total - len(todo), total)

    t0 = time.perf_counter()
    # a bar only on a terminal; to a log file, one line per ~10 % (never tqdm's carriage returns)
    total_nets = len(todo) * networks
    bar = Progress(progress, total_nets, 0, "rank study: networks", max(1, total_nets // 10))

    def finish(rec: dict[str, Any]) -> None:
        points[(rec["block"], float(rec["ratio"]))] = rec
        if log_path is not None:
            with open(log_path, "a") as fh:
                fh.write(json.dumps(rec) + "\n")
        bar.advance(rec["networks"])

    try:
        _compute_points(todo, activations, networks, proto, seed, workers, finish)
    finally:
        bar.close()
    rows = _rows(points, blocks, activations, ratios)
    result = StudyResult(rows, config, seconds=time.perf_counter() - t0, out_dir=out)
    result.findings = check_findings(result.values())
    if out is not None:
        _write_outputs(result, out, proto, plot)
    return result


def _check_args(
    blocks: Sequence[str], ratios: Sequence[float], activations: Sequence[str], networks: int, workers: int | None
) -> tuple[tuple[str, ...], tuple[float, ...], tuple[str, ...]]:
    checked = check_blocks(list(blocks)), check_ratios(list(ratios)), tuple(activations)
    if not activations:
        raise InputError("no activation given")
    for a in activations:
        resolve_activation(a)
    if networks < 1:
        raise InputError(f"networks must be >= 1, got {networks}")
    if workers is not None and workers < 1:
        raise InputError(f"workers must be >= 1, got {workers}")
    return checked


def _open_run_folder(run: Run, config: dict[str, Any]) -> tuple[dict[tuple[str, float], dict[str, Any]], Path]:
    """Resume ``run``'s folder: the points already logged under the same config (a different one is refused)."""
    out: Path = run.folder  # type: ignore[assignment]
    cfg_path, log_path = out / "config.json", out / "points.jsonl"
    if cfg_path.exists():
        old = read_config_json(out)
        if {k: v for k, v in old.items() if k != "torch"} != {k: v for k, v in config.items() if k != "torch"}:
            raise InputError(f"{out} holds a run with a different config; use a new --out folder")
    run.write_config(config)
    points = _load_points(log_path)
    acts, networks = set(config["activations"]), config["networks"]
    return {k: v for k, v in points.items() if set(v["stats"]) == acts and v["networks"] == networks}, log_path


def _compute_points(
    todo: Sequence[tuple[str, float]],
    activations: Sequence[str],
    networks: int,
    proto: Protocol,
    seed: int,
    workers: int,
    finish: Any,
) -> None:
    """Compute each (block, ratio) point, in this process or ``workers`` spawned ones; ``finish`` gets each record."""
    threads = torch.get_num_threads()
    try:
        if workers == 1 or len(todo) <= 1:
            for b, r in todo:
                finish(_compute_point(b, r, activations, networks, proto, seed))
            return
        pool = ProcessPoolExecutor(workers, mp_context=get_context("spawn"))
        try:
            futs = [pool.submit(_compute_point, b, r, activations, networks, proto, seed) for b, r in todo]
            for f in as_completed(futs):  # log each point as soon as it is done
                finish(f.result())
        except BaseException:  # Ctrl-C: keep what is logged, drop queued points
            pool.shutdown(wait=False, cancel_futures=True)
            raise
        pool.shutdown()
    finally:
        torch.set_num_threads(threads)


def _write_outputs(result: StudyResult, out: Path, proto: Protocol, plot: bool) -> None:
    write_study_csv(result.rows, out / "rank_study.csv")
    atomic_write(out / "summary.txt", result.summary() + "\n", what="rank study summary")
    if plot:
        from .paper import score_against_paper
        from .plotting import plot_study

        _, panels, _ = score_against_paper(result.values())
        networks = result.config["networks"]
        plot_study(
            result.rows,
            out / "rank_study.png",
            panel_notes={p.block: f"RMS to paper {p.rms:.3f}" for p in panels},
            title=f"rank study, protocol {preset_name(proto)} ({proto.input}/{proto.init}/{proto.norm}, "
            f"{proto.estimator}, t={_expansion(proto)}), {networks} nets/point; bars: paper's readings",
        )
