"""Rank estimators on batched singular values.

Every estimator here works on the singular values of a stack of ``(rows, cols)`` matrices, so
one SVD serves all estimators. Exact numerical rank makes every nonlinearity full rank; what
the random-layer study measures is therefore decided by the estimator, which is why it is a
documented option (:class:`rexnet.rank.protocols.Protocol.estimator`).

Estimator specs are short strings:

* ``matrix_rank``: ``s > s_max * max(m, n) * eps(dtype)``: ``torch.linalg.matrix_rank``'s
  default tolerance in the protocol's dtype (fp32 by default).
* ``rtol:1e-2``: ``s > rtol * s_max``.
* ``energy:0.99``: the fewest singular values holding that share of ``sum(s**2)``.
* ``erank``: entropy effective rank, ``exp(H(s / sum(s)))`` (Roy & Vetterli 2007).
* ``stable``: stable rank ``sum(s**2) / s_max**2``.

Example:
    >>> import torch
    >>> s = singular_values(torch.eye(4)[None].repeat(2, 1, 1))
    >>> rank_from_singular_values(s, (4, 4), "matrix_rank").tolist()
    [4.0, 4.0]
"""

from __future__ import annotations

import numpy as np
import torch

from ..errors import InputError

__all__ = [
    "ESTIMATORS",
    "parse_estimator",
    "singular_values",
    "rank_from_singular_values",
    "threshold_ranks",
    "nuclear_norm",
    "feature_stats",
]

#: Estimator names and whether they take a parameter (``name:value``).
ESTIMATORS: dict[str, bool] = {"matrix_rank": False, "rtol": True, "energy": True, "erank": False, "stable": False}

_SVD_METHODS = ("svd", "gram", "inertia")


def parse_estimator(spec: str) -> tuple[str, float | None]:
    """Split an estimator spec such as ``"rtol:1e-2"`` into ``("rtol", 0.01)``.

    Raises:
        InputError: An unknown name, a missing or extra parameter, or an out-of-range value.
    """
    name, _, arg = spec.partition(":")
    if name not in ESTIMATORS:
        raise InputError(
            f"unknown rank estimator {spec!r}; expected one of: matrix_rank, rtol:R, energy:Q, erank, stable"
        )
    if not ESTIMATORS[name]:
        if arg:
            raise InputError(f"estimator {name!r} takes no parameter, got {spec!r}")
        return name, None
    try:
        value = float(arg)
    except ValueError:
        raise InputError(f"estimator {name!r} needs a number, e.g. '{name}:0.01', got {spec!r}") from None
    if not 0.0 < value < 1.0 or (name == "energy" and value <= 0.0):
        raise InputError(f"estimator {name!r} parameter must be in (0, 1), got {value}")
    return name, value


def singular_values(matrices: torch.Tensor, method: str = "svd") -> torch.Tensor:
    """Singular values of a stack of matrices, largest first.

    Args:
        matrices: ``(..., m, n)`` tensor.
        method: ``"svd"`` runs ``torch.linalg.svdvals`` in the tensor's dtype (the semantics of
            ``torch.linalg.matrix_rank``); ``"gram"`` takes the eigenvalues of ``A A^T`` in fp64,
            which resolves singular values down to ~1e-8 * s_max, so it agrees with fp32 ``svd``
            for every fp32 threshold used here, and is faster when ``n > m``.

    Returns:
        ``(..., min(m, n))`` tensor in the input dtype.
    """
    if method == "svd":
        return torch.linalg.svdvals(matrices)
    if method in ("gram", "inertia"):  # inertia only counts; spectra come from the Gram path
        ev = torch.linalg.eigvalsh(_gram(matrices))
        return ev.clamp_min(0).sqrt().flip(-1).to(matrices.dtype)
    raise InputError(f"unknown SVD method {method!r}; expected one of: {', '.join(_SVD_METHODS)}")


def _gram(matrices: torch.Tensor) -> torch.Tensor:
    """``A A^T`` in fp64 over the shorter side, shape ``(..., k, k)`` with ``k = min(m, n)``."""
    a = matrices.double()
    if a.shape[-2] > a.shape[-1]:
        a = a.mT
    return a @ a.mT


def _lambda_max(g: torch.Tensor, max_iter: int, rtol: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Largest eigenvalue of each PSD ``g`` by power iteration, and whether it converged.

    Converged means the residual ``||g x - rho x||`` is at most ``rtol * rho``, so an eigenvalue lies
    within ``rtol`` (relative) of ``rho``; from a positive start vector that is the top one.
    """
    x = torch.full(g.shape[:-1], g.shape[-1] ** -0.5, dtype=torch.float64)
    rho = torch.zeros(g.shape[:-2], dtype=torch.float64)
    ok = torch.zeros(g.shape[:-2], dtype=torch.bool)
    for _ in range(max_iter):
        y = (g @ x.unsqueeze(-1)).squeeze(-1)
        rho = (x * y).sum(-1)
        ok = (y - rho.unsqueeze(-1) * x).norm(dim=-1) <= rtol * rho
        if bool(ok.all()):
            break
        x = y / y.norm(dim=-1, keepdim=True).clamp_min(1e-300)
    return rho, ok


def _count_above(g: torch.Tensor, tau: torch.Tensor) -> torch.Tensor:
    """Eigenvalues of each symmetric ``g`` above ``tau``: the positive inertia of ``g - tau I``.

    Sylvester's law of inertia: a Bunch-Kaufman ``L D L^T`` of ``g - tau I`` has as many positive
    eigenvalues in its block-diagonal ``D`` (1x1 and 2x2 blocks) as ``g`` has above ``tau``.
    """
    n = g.shape[-1]
    ld, piv, _ = torch.linalg.ldl_factor_ex(g - tau[:, None, None] * torch.eye(n, dtype=g.dtype))
    ld_np, piv_np = ld.numpy(), piv.numpy()
    neg = piv_np < 0  # a 2x2 block spans two consecutive negative pivots (LAPACK sytrf, lower)
    c = np.cumsum(neg, axis=1)
    run = c - np.maximum.accumulate(np.where(~neg, c, 0), axis=1)  # 1-based place in a run of negatives
    diag = np.diagonal(ld_np, axis1=1, axis2=2)
    pos = ((~neg) & (diag > 0)).sum(1)
    bi, ki = np.nonzero(neg & (run % 2 == 1))  # first row of each 2x2 block
    a, d, b = diag[bi, ki], diag[bi, ki + 1], ld_np[bi, ki + 1, ki]
    det = a * d - b * b
    pos2 = np.where(det < 0, 1, np.where(a + d > 0, np.where(det > 0, 2, 1), 0))
    return torch.from_numpy(pos + np.bincount(bi, weights=pos2, minlength=len(pos)).astype(np.int64)).double()


def threshold_ranks(
    matrices: torch.Tensor,
    estimators: list[str] | tuple[str, ...],
    dtype: torch.dtype = torch.float32,
    max_iter: int = 30,
    min_size: int = 160,
) -> dict[str, torch.Tensor]:
    """Threshold ranks (``matrix_rank``, ``rtol:R``) of a stack of matrices without a full spectrum.

    ``s > tol * s_max`` is ``lambda > tol**2 * lambda_max`` for the eigenvalues of the fp64 Gram
    matrix; ``lambda_max`` comes from power iteration and the count from the inertia of a
    Bunch-Kaufman LDL^T (``ldl_factor`` is about 3-4x cheaper than ``eigvalsh`` at d = 200-256;
    with the Gram matrix and the power iteration the rank step is about 1.3-1.5x faster there,
    and no faster below d = 160). Matrices whose power iteration has not converged after
    ``max_iter`` steps (nearly equal top eigenvalues, e.g. centred Gaussian data) are ranked by
    ``eigvalsh`` instead. Same ranks as ``"gram"`` (tested).

    Args:
        matrices: ``(b, m, n)`` tensor.
        estimators: Threshold estimator specs.
        dtype: The dtype whose epsilon sets the ``matrix_rank`` tolerance.
        max_iter: Power-iteration steps before falling back to ``eigvalsh``.
        min_size: Below this ``min(m, n)`` every matrix goes the ``eigvalsh`` way (it is as fast).

    Returns:
        ``{estimator: (b,) ranks}``.
    """
    g = _gram(matrices)
    if min(matrices.shape[-2:]) >= min_size:
        lam, ok = _lambda_max(g, max_iter, 1e-11)
    else:
        lam, ok = torch.zeros(g.shape[0], dtype=torch.float64), torch.zeros(g.shape[0], dtype=torch.bool)
    ok &= lam > 0  # an all-zero matrix goes the eigvalsh way (rank 0)
    fast, rest = ok.nonzero().squeeze(1), (~ok).nonzero().squeeze(1)
    s_rest = torch.linalg.eigvalsh(g[rest]).clamp_min(0).sqrt().flip(-1) if rest.numel() else None
    shape = (int(matrices.shape[-2]), int(matrices.shape[-1]))
    out = {}
    for e in estimators:
        name, arg = parse_estimator(e)
        if name not in ("matrix_rank", "rtol"):
            raise InputError(f"threshold_ranks needs matrix_rank or rtol:R, got {e!r}")
        tol = max(shape) * torch.finfo(dtype).eps if name == "matrix_rank" else float(arg)  # type: ignore[arg-type]
        r = torch.zeros(g.shape[0], dtype=torch.float64)
        if fast.numel():
            r[fast] = _count_above(g[fast], tol * tol * lam[fast])
        if s_rest is not None:
            r[rest] = rank_from_singular_values(s_rest, shape, e, dtype)
        out[e] = r
    return out


def rank_from_singular_values(
    s: torch.Tensor, shape: tuple[int, int], estimator: str = "matrix_rank", dtype: torch.dtype = torch.float32
) -> torch.Tensor:
    """Rank estimate of each matrix from its singular values.

    Args:
        s: ``(..., k)`` singular values, largest first (zero padding allowed).
        shape: ``(m, n)`` of the original matrices, for the ``matrix_rank`` tolerance.
        estimator: An estimator spec (see the module docstring).
        dtype: The dtype whose machine epsilon sets the ``matrix_rank`` tolerance.

    Returns:
        ``(...,)`` float tensor (integer-valued for the threshold estimators).
    """
    name, arg = parse_estimator(estimator)
    s = s.double()
    smax = s[..., :1]
    if name in ("matrix_rank", "rtol"):
        tol = max(shape) * torch.finfo(dtype).eps if name == "matrix_rank" else float(arg)  # type: ignore[arg-type]
        return ((s > tol * smax) & (s > 0)).sum(-1).double()
    if name == "energy":
        e = s.square()
        total = e.sum(-1, keepdim=True).clamp_min(1e-300)
        cum = e.cumsum(-1) / total
        return (cum < float(arg) - 1e-12).sum(-1).double() + 1.0  # type: ignore[arg-type]
    if name == "erank":
        p = s / s.sum(-1, keepdim=True).clamp_min(1e-300)
        h = -(p * p.clamp_min(1e-300).log()).sum(-1)
        return h.exp()
    return s.square().sum(-1) / smax.squeeze(-1).square().clamp_min(1e-300)  # stable rank


def nuclear_norm(s: torch.Tensor) -> torch.Tensor:
    """Sum of singular values (the paper's Table-2 proxy of rank)."""
    return s.double().sum(-1)


def feature_stats(features: torch.Tensor) -> dict[str, float]:
    """Rank statistics of a ``C x B`` matrix of final features (channels x images).

    The paper measures a trained network's expressiveness by the nuclear norm of its final
    features (Table 2, and the scatter against accuracy over its searched models). The raw
    norm grows with the features' scale, so the norm divided by the largest singular value is
    given too, with the numerical rank and the effective rank (entropy of the spectrum).

    Example:
        >>> stats = feature_stats(torch.eye(4, 8, dtype=torch.float64))
        >>> stats["rank"], stats["nuclear_norm"], stats["nuclear_norm_normalized"]
        (4.0, 4.0, 4.0)
    """
    if features.dim() != 2 or 0 in features.shape:
        raise InputError(f"feature_stats needs a non-empty C x B matrix, got shape {tuple(features.shape)}")
    f = features.double()
    s = singular_values(f, "svd")
    nuc = float(nuclear_norm(s))
    return dict(
        rank=float(rank_from_singular_values(s, tuple(f.shape), "matrix_rank", torch.float32)),
        effective_rank=float(rank_from_singular_values(s, tuple(f.shape), "erank")),
        nuclear_norm=nuc,
        nuclear_norm_normalized=nuc / max(float(s[0]), 1e-300),
    )
