"""``rexnet rank profile`` as a function: profile one model (and optionally a second), write CSV, JSON and PNG."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from .._files import atomic_write, dumps_json, write_csv
from .._memory import check_model_inference
from .._table import format_table
from ..errors import InputError
from ..run import RunLock
from .profiler import RankProfile, build_model, profile_rank

__all__ = ["PROFILE_COLUMNS", "ProfileReport", "run_rank_profile"]

PROFILE_COLUMNS = ("layer", "channels", "rank", "rank_ratio", "nuclear_norm")


@dataclass
class ProfileReport:
    """Profiles by model label (the first is MODEL, the second the ``compare`` model)."""

    profiles: dict[str, RankProfile]

    def table(self) -> str:
        """Per-layer tables plus, per model, the last layer's spectrum summary."""
        parts = []
        for label, prof in self.profiles.items():
            rows = [
                (
                    r.layer,
                    r.channels,
                    r.samples,
                    int(r.rank),
                    f"{r.rank_ratio:.3f}",
                    f"{r.nuclear_norm:.4g}",
                    f"{r.effective_rank:.1f}",
                )
                for r in prof.rows
            ]
            parts.append(
                f"{label}:\n"
                + format_table(("layer", "channels", "samples", "rank", "rank_ratio", "nuclear_norm", "erank"), rows)
            )
            last = prof.rows[-1].layer
            s = prof.normalized_spectrum(last)
            parts.append(
                f"{label} {last}: median normalized singular value {float(s.median()):.4f}, "
                f"share below 0.02: {float((s < 0.02).double().mean()):.2f}"
            )
        return "\n".join(parts)


def _write_csv(prof: RankProfile, path: Path) -> None:
    body = [[r.layer, r.channels, int(r.rank), f"{r.rank_ratio:.6f}", f"{r.nuclear_norm:.6g}"] for r in prof.rows]
    write_csv([PROFILE_COLUMNS, *body], path, what="rank profile table")


def run_rank_profile(
    model: str,
    out_dir: str | os.PathLike,
    *,
    compare: str | None = None,
    checkpoint: str | os.PathLike | None = None,
    batch_size: int = 32,
    image_size: int = 224,
    layers: Sequence[str] | None = None,
    estimator: str = "matrix_rank",
    flatten: str = "spatial",
    seed: int = 0,
    bn: str = "auto",
) -> ProfileReport:
    """Profile ``model`` (and ``compare``) on one random batch; write ``rank_profile.csv/.json/.png``.

    ``rank_profile.csv`` has :data:`PROFILE_COLUMNS` for ``model``; with ``compare``,
    ``rank_profile_compare.csv`` holds the second model. ``rank_profile.json`` adds samples,
    effective rank and each layer's normalized singular values.

    Args:
        model: ``NAME`` (rexnet registry) or ``tv:NAME`` (torchvision), see
            :func:`rexnet.rank.profiler.build_model`.
        out_dir: Output folder.
        compare: A second model, e.g. ``tv:mobilenet_v2`` (the paper's extended comparison).
        checkpoint: Weights for ``model`` (default: random init, seeded).
        batch_size: Images in the batch (N(0,1) pixels, seeded).
        image_size: Input side.
        layers: Module names/patterns (default: every block output and the final features).
        estimator: Rank estimator spec.
        flatten: ``spatial`` or ``pool``.
        seed: Seed of the inits and the batch.
        bn: ``train`` (batch statistics), ``eval`` (running statistics) or ``auto``: train for a
            random init (eval-mode BN at init is the identity, and the features then shrink layer
            by layer until every smooth activation is linear), eval with a checkpoint.

    Returns:
        The :class:`ProfileReport`.
    """
    if bn not in ("auto", "train", "eval"):
        raise InputError(f"unknown bn mode {bn!r}; expected one of: auto, train, eval")
    for name, value in (("batch size", batch_size), ("image size", image_size)):
        if value < 1:
            raise InputError(f"{name} must be >= 1, got {value}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    profiles: dict[str, RankProfile] = {}
    modes: dict[str, str] = {}
    for i, spec in enumerate([model] + ([compare] if compare else [])):
        torch.manual_seed(seed)
        m = build_model(spec, checkpoint if i == 0 else None)
        check_model_inference(m, image_size, batch_size, what=spec)
        train_mode = bn == "train" or (bn == "auto" and (checkpoint is None or i > 0))
        m.train(train_mode)
        modes[spec] = "train" if train_mode else "eval"
        gen = torch.Generator().manual_seed(seed + 1)
        batch = torch.randn(batch_size, 3, image_size, image_size, generator=gen)
        profiles[spec] = profile_rank(m, batch, layers, estimator, flatten)
    with RunLock(out):  # the outputs are written atomically, one profile at a time per folder
        _write_outputs(
            out,
            profiles,
            dict(
                batch_size=batch_size,
                image_size=image_size,
                estimator=estimator,
                flatten=flatten,
                seed=seed,
                bn_mode=modes,
                checkpoint=str(checkpoint) if checkpoint else None,
            ),
        )
    return ProfileReport(profiles)


def _write_outputs(out: Path, profiles: dict[str, RankProfile], meta: dict[str, Any]) -> None:
    """``rank_profile.csv`` (and ``_compare.csv``), ``.json`` (strict JSON) and ``.png``, each atomically."""
    labels = list(profiles)
    _write_csv(profiles[labels[0]], out / "rank_profile.csv")
    if len(labels) > 1:
        _write_csv(profiles[labels[1]], out / "rank_profile_compare.csv")
    dump = {
        label: [dict(vars(r), normalized_spectrum=[float(v) for v in p.normalized_spectrum(r.layer)]) for r in p.rows]
        for label, p in profiles.items()
    }
    text = dumps_json({"config": meta, "profiles": dump}, indent=None)
    atomic_write(out / "rank_profile.json", text, what="rank profile")
    from .plotting import plot_profile

    plot_profile(
        {k: p.rows for k, p in profiles.items()},
        out / "rank_profile.png",
        spectra={k: p.spectra[p.rows[-1].layer] for k, p in profiles.items()},
    )
