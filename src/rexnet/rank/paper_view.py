"""The composite "paper view" of Figure 1: (a)/(b) under one protocol, (c)/(d) under another.

No single protocol we tried fits all four panels of the paper's Figure 1 (docs/rank_study.md):
the default protocol fits the plain-conv panels (a)/(b), and the inverted-bottleneck presets fit
(c)/(d) but not (a)/(b). This view draws each pair with the protocol that fits it, says so in
every panel title, and gives each panel's RMS residual to the paper's readings. It is the
closest honest reproduction of the figure, not a claim that one protocol produces it.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .._files import write_csv, write_json
from ..errors import InputError
from ..run import RunLock
from .paper import score_against_paper
from .protocols import PAPER_ACTIVATIONS, Protocol, get_protocol, preset_name
from .study import DEFAULT_RATIOS, StudyRow, read_study_csv, run_rank_study

__all__ = ["AB_BLOCKS", "CD_BLOCKS", "BEST_IB_PRESET", "PaperView", "run_paper_view"]

AB_BLOCKS = ("conv1x1", "conv3x3")
CD_BLOCKS = ("ib_conv", "ib_dw")
#: The IB preset with the smallest mean RMS over panels (c) and (d) in our full runs
#: (docs/rank_study.md, "Inverted-bottleneck presets").
BEST_IB_PRESET = "ib_loose"


@dataclass
class PaperView:
    """What :func:`run_paper_view` returns: the rows drawn, each panel's protocol and RMS residual."""

    rows: list[StudyRow]
    protocols: dict[str, str]
    rms: dict[str, float]
    out_dir: Path | None = None

    def table(self) -> str:
        lines = [f"{'panel':<10} {'protocol':<12} {'RMS to paper':>12}"]
        lines += [f"{b:<10} {self.protocols[b]:<12} {self.rms[b]:12.3f}" for b in (*AB_BLOCKS, *CD_BLOCKS)]
        return "\n".join(lines)


def _rows_from(folder: Path, blocks: tuple[str, ...]) -> tuple[list[StudyRow], Protocol]:
    csv_path, cfg_path = folder / "rank_study.csv", folder / "config.json"
    if not csv_path.exists() or not cfg_path.exists():
        raise InputError(f"{folder} holds no finished rank study (rank_study.csv and config.json)")
    rows = [r for r in read_study_csv(csv_path) if r.block in blocks]
    missing = sorted(set(blocks) - {r.block for r in rows})
    if missing:
        raise InputError(f"{folder} has no rows for block(s) {', '.join(missing)}")
    return rows, get_protocol(json.loads(cfg_path.read_text())["protocol"])


def run_paper_view(
    out_dir: str | os.PathLike,
    *,
    ab_protocol: str | Protocol = "default",
    cd_protocol: str | Protocol = BEST_IB_PRESET,
    networks: int = 1000,
    ratios: tuple[float, ...] | list[float] = DEFAULT_RATIOS,
    seed: int = 0,
    workers: int | None = None,
    ab_run: str | os.PathLike | None = None,
    cd_run: str | os.PathLike | None = None,
    progress: bool = True,
) -> PaperView:
    """Compute (or reuse) the two half-studies and draw ``paper_view.png``.

    Args:
        out_dir: Output folder: ``paper_view.png``, ``paper_view.csv``, ``paper_view.json``, and
            the two study folders ``ab_<protocol>`` and ``cd_<protocol>`` (resumable).
        ab_protocol: Protocol of panels (a)/(b) (default: the library default).
        cd_protocol: Protocol of panels (c)/(d) (default: :data:`BEST_IB_PRESET`).
        networks, ratios, seed, workers: As in :func:`rexnet.rank.run_rank_study`.
        ab_run, cd_run: Finished study folders to read instead of computing (their own protocol
            is used and named in the figure).
        progress: Show progress bars.

    Raises:
        InputError: Unknown presets, or a reused folder without the needed blocks.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    parts: dict[tuple[str, ...], tuple[list[StudyRow], Protocol]] = {}
    for blocks, proto, reuse, tag in ((AB_BLOCKS, ab_protocol, ab_run, "ab"), (CD_BLOCKS, cd_protocol, cd_run, "cd")):
        if reuse is not None:
            parts[blocks] = _rows_from(Path(reuse), blocks)
            continue
        p = get_protocol(proto)
        res = run_rank_study(
            out / f"{tag}_{preset_name(p)}",
            blocks=blocks,
            activations=PAPER_ACTIVATIONS,
            ratios=ratios,
            networks=networks,
            seed=seed,
            protocol=p,
            workers=workers,
            progress=progress,
            plot=False,
        )
        parts[blocks] = (res.rows, p)
    rows = [r for blocks in (AB_BLOCKS, CD_BLOCKS) for r in parts[blocks][0]]
    names = {b: preset_name(parts[blocks][1]) for blocks in parts for b in blocks}
    _, panels, _ = score_against_paper({(r.block, r.activation, r.ratio): r.rank_ratio_mean for r in rows})
    rms = {p.block: p.rms for p in panels}
    view = PaperView(rows, names, rms, out)
    with RunLock(out):  # the three outputs written atomically, one writer per folder
        _write(view, out, {"ab": parts[AB_BLOCKS][1], "cd": parts[CD_BLOCKS][1]})
    return view


def _write(view: PaperView, out: Path, protos: dict[str, Protocol]) -> None:
    from .plotting import plot_study

    notes = {b: f"protocol {view.protocols[b]}, RMS to paper {view.rms[b]:.3f}" for b in view.rms}
    ab, cd = view.protocols[AB_BLOCKS[0]], view.protocols[CD_BLOCKS[0]]
    plot_study(
        view.rows,
        out / "paper_view.png",
        panel_notes=notes,
        title=f"Figure 1, composite: (a)/(b) protocol {ab}, (c)/(d) protocol {cd} - no single protocol fits "
        "all four panels; bars: paper's readings",
    )
    head = ["block", "protocol", "activation", "ratio", "rank_ratio_mean", "rank_ratio_std", "networks"]
    body = [
        [
            r.block,
            view.protocols[r.block],
            r.activation,
            f"{r.ratio:g}",
            f"{r.rank_ratio_mean:.6f}",
            f"{r.rank_ratio_std:.6f}",
            r.networks,
        ]
        for r in view.rows
    ]
    write_csv([head, *body], out / "paper_view.csv", what="paper view table")
    info: dict[str, Any] = {
        "panels": {b: {"protocol": view.protocols[b], "rms": round(view.rms[b], 4)} for b in view.rms},
        "protocols": {k: p.to_dict() for k, p in protos.items()},
    }
    write_json(info, out / "paper_view.json", what="paper view")
