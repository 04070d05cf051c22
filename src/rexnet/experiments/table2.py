"""Table-2 verification (CVPR'21) as a runnable recipe on a small proxy.

The paper trains a two-IB network on CIFAR-100 in four cumulative variants and reports FLOPs,
top-1 and the nuclear norm of the final features. The proxy here (our choice; the paper's
exact network is not published):

``stem 3x3/2 (relu6) -> IB1 (stride 1) -> IB2 (stride 2) -> 1x1 conv (relu6) -> pool -> FC``,
expansion 6, depthwise activation ReLU6, with ``c2 = 64`` channels out of IB2 and

* "DR of 1x1" = c2 / c_final: 1/20 (c_final = 1280) or 1/6 (c_final = 384);
* "IB DR" = in/out of each IB: IB2 has ``c1 = round(c2 * dr)`` inputs and IB1 ``round(c1 * dr)``
  (the stem's width), so 0.22 gives 3 -> 14 -> 64 and 0.8 gives 41 -> 51 -> 64;
* the first activation of each IB (after the expansion): ReLU6 or SiLU.

Columns: MACs (:func:`rexnet.plan.count_macs`), and for the pooled final features (C x B over
the validation images, eval mode): numerical rank, rank/min(C, B), effective rank, nuclear
norm (raw, as the paper, and divided by the largest singular value, which is scale-free), plus
``val_top1`` after ``train_epochs`` of :func:`rexnet.train.fit` on the embedded digits data
(0 epochs: the rank columns are measured at random init, with batch-statistics BN, and accuracy
is left empty).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from .._files import write_csv
from .._table import format_table
from ..errors import InputError
from ..plan import count_macs, count_params, ib_plan
from ..rank.estimators import nuclear_norm, rank_from_singular_values, singular_values
from ..run import RunLock

__all__ = ["VARIANTS", "VerificationRow", "VerificationReport", "proxy_plan", "run_verification"]

log = logging.getLogger(__name__)

#: The four cumulative variants of Table 2: (name, DR of the 1x1 conv, IB DR, first IB activation).
VARIANTS: tuple[tuple[str, float, float, str], ...] = (
    ("baseline (1x1 DR 1/20, IB DR 0.22, ReLU6)", 1 / 20, 0.22, "relu6"),
    ("+ 1x1 DR 1/20 -> 1/6", 1 / 6, 0.22, "relu6"),
    ("+ IB DR 0.22 -> 0.8", 1 / 6, 0.8, "relu6"),
    ("+ ReLU6 -> SiLU (first act in each IB)", 1 / 6, 0.8, "silu"),
)
PAPER_TABLE2 = ((103, 48.0, 5997.5), (99, 52.1, 6655.9), (105, 53.8, 6703.2), (105, 54.6, 6895.9))
CSV_COLUMNS = (
    "variant",
    "macs",
    "params",
    "rank",
    "rank_ratio",
    "effective_rank",
    "nuclear_norm",
    "nuclear_norm_normalized",
    "val_top1",
    "paper_flops_m",
    "paper_top1",
    "paper_nuclear_norm",
)


def proxy_plan(dr_1x1: float, ib_dr: float, act_exp: str, c2: int = 64) -> Any:
    """The two-IB proxy network's plan (see the module docstring)."""
    if not 0 < dr_1x1 <= 1 or not 0 < ib_dr <= 1:
        raise InputError(f"dimension ratios must be in (0, 1], got 1x1 {dr_1x1} and IB {ib_dr}")
    c1 = max(1, round(c2 * ib_dr))
    c0 = max(1, round(c1 * ib_dr))
    return ib_plan(
        [c1, c2],
        [1, 2],
        stem_channels=c0,
        stem_act="relu6",
        act_exp=act_exp,
        act_dw="relu6",
        final_channels=round(c2 / dr_1x1),
        final_act="relu6",
        family="table2_proxy",
    )


@dataclass(frozen=True)
class VerificationRow:
    """One Table-2 variant, averaged over seeds (``val_top1`` is ``None`` without training)."""

    variant: str
    macs: int
    params: int
    rank: float
    rank_ratio: float
    effective_rank: float
    nuclear_norm: float
    nuclear_norm_normalized: float
    val_top1: float | None


@dataclass
class VerificationReport:
    rows: list[VerificationRow]
    image_size: int
    train_epochs: int

    def table(self) -> str:
        """The rows beside the paper's Table 2."""
        body = [
            (
                r.variant,
                f"{r.macs / 1e6:.2f}M",
                f"{r.rank:.1f}",
                f"{r.rank_ratio:.3f}",
                f"{r.effective_rank:.1f}",
                f"{r.nuclear_norm:.4g}",
                f"{r.nuclear_norm_normalized:.1f}",
                "-" if r.val_top1 is None else f"{r.val_top1:.1f}",
                f"{p[0]}M / {p[1]} / {p[2]}",
            )
            for r, p in zip(self.rows, PAPER_TABLE2)
        ]
        return format_table(
            (
                "variant",
                "MACs",
                "rank",
                "rank/min(C,B)",
                "erank",
                "nuc.norm",
                "nuc/s_max",
                "top1 %",
                "paper FLOPs/top1/nuc",
            ),
            body,
        )


def _features(model: torch.nn.Module, images: torch.Tensor, trained: bool) -> torch.Tensor:
    # eval-mode BN at init is the identity and the features shrink to where every activation is
    # linear; an untrained model is therefore measured with batch statistics (train-mode BN)
    model.train(not trained)
    model.dropout.eval()
    with torch.no_grad():
        return model.forward_head(model.forward_features(images), pre_logits=True)


def run_verification(
    out_dir: str | os.PathLike | None = None,
    *,
    train_epochs: int = 0,
    image_size: int = 32,
    seeds: int = 3,
    batch_size: int = 256,
    progress: bool = True,
    data: str = "digits",
    train_limit: int | None = None,
) -> VerificationReport:
    """Run the Table-2 recipe: four proxy variants, MACs, final-feature rank and nuclear norm [, accuracy].

    Args:
        out_dir: Folder for ``verification.csv`` (``None``: nothing written).
        train_epochs: Epochs of :func:`rexnet.train.fit` on the embedded digits data per model;
            0 measures the random-init features and leaves ``val_top1`` empty.
        image_size: Input side.
        seeds: Models per variant, averaged (paper: 3).
        batch_size: Validation images used for the feature matrix (C x B).
        progress: Show training progress bars.
        data: Training data (:func:`rexnet.data.build_datasets` names, e.g. ``fashion-mnist``); the
            feature matrix uses its validation images. ``val_top1`` is measured on its validation split.
        train_limit: Train on a fixed subset of this many images.

    Training uses the ``quick`` preset's augmentation (random-resized crop 0.35-1, batched in memory:
    the fast path of ``rexnet train``).

    Returns:
        The :class:`VerificationReport`.
    """
    from ..data import build_datasets
    from ..train.config import TrainConfig
    from ..train.run import augment_from_config

    if train_epochs < 0 or seeds < 1 or batch_size < 2:
        raise InputError(
            f"need train_epochs >= 0, seeds >= 1, batch_size >= 2; got {train_epochs}, {seeds}, {batch_size}"
        )
    data = build_datasets(
        data, image_size=image_size, model=None, train_limit=train_limit, augment=augment_from_config(TrainConfig())
    )
    n = min(batch_size, len(data.val))
    images = torch.stack([data.val[i][0] for i in range(n)])
    rows = []
    for name, dr1, drib, act in VARIANTS:
        plan = proxy_plan(dr1, drib, act)
        stats = [_one_model(plan, data, images, seed, train_epochs, progress, name) for seed in range(seeds)]
        mean = [sum(x[i] for x in stats) / len(stats) for i in range(6)]
        macs, params = count_macs(plan, image_size, data.num_classes), count_params(plan, data.num_classes)
        rows.append(VerificationRow(name, macs, params, *mean[:5], mean[5] if train_epochs else None))
    report = VerificationReport(rows, image_size, train_epochs)
    if out_dir is not None:
        _write_csv(rows, Path(out_dir))
    return report


def _one_model(
    plan: Any, data: Any, images: torch.Tensor, seed: int, train_epochs: int, progress: bool, name: str
) -> tuple[float, ...]:
    """(rank, rank ratio, effective rank, nuclear norm, normalised nuclear norm, top-1 or NaN) of one seed."""
    from ..model import RexNet
    from ..train import TrainConfig, fit

    torch.manual_seed(seed)
    model = RexNet(plan, num_classes=data.num_classes)
    top1 = None
    if train_epochs:
        cfg = TrainConfig(
            epochs=train_epochs,
            batch_size=64,
            seed=seed,
            progress=progress,
            device="cpu",
            tensorboard=False,
            warmup_epochs=min(1.0, train_epochs / 4),
            threads=1,
        )
        res = fit(model, data.train, data.val, cfg)
        if res.get("status") == "interrupted":  # fit caught SIGINT/SIGTERM: stop the recipe too
            raise KeyboardInterrupt
        top1 = float(res["val_top1"])
    f = _features(model, images, trained=bool(train_epochs)).T.double()  # C x B
    s = singular_values(f, "svd")
    c, b = f.shape
    rank = float(rank_from_singular_values(s, (c, b), "matrix_rank", torch.float32))
    nuclear = float(nuclear_norm(s))
    log.info("%s seed %d: rank %.0f nuclear norm %.4g top1 %s", name, seed, rank, nuclear, top1)
    return (
        rank,
        rank / min(c, b),
        float(rank_from_singular_values(s, (c, b), "erank")),
        nuclear,
        float(nuclear_norm(s) / s[0].clamp_min(1e-30)),
        top1 if top1 is not None else float("nan"),
    )


def _write_csv(rows: list[VerificationRow], out: Path) -> None:
    body = []
    for r, paper in zip(rows, PAPER_TABLE2):
        top1 = "" if r.val_top1 is None else f"{r.val_top1:.2f}"
        body.append(
            [r.variant, r.macs, r.params, f"{r.rank:.2f}", f"{r.rank_ratio:.4f}", f"{r.effective_rank:.2f}"]
            + [f"{r.nuclear_norm:.6g}", f"{r.nuclear_norm_normalized:.4f}", top1, *paper]
        )
    with RunLock(out):  # one writer per folder; the table is written atomically
        write_csv([CSV_COLUMNS, *body], out / "verification.csv", what="verification table")
