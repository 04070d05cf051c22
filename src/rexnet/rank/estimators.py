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

import torch

from ..errors import RexnetError

__all__ = ["ESTIMATORS", "parse_estimator", "singular_values", "rank_from_singular_values", "nuclear_norm"]

#: Estimator names and whether they take a parameter (``name:value``).
ESTIMATORS: dict[str, bool] = {"matrix_rank": False, "rtol": True, "energy": True, "erank": False, "stable": False}

_SVD_METHODS = ("svd", "gram")


def parse_estimator(spec: str) -> tuple[str, float | None]:
    """Split an estimator spec such as ``"rtol:1e-2"`` into ``("rtol", 0.01)``.

    Raises:
        RexnetError: An unknown name, a missing or extra parameter, or an out-of-range value.
    """
    name, _, arg = spec.partition(":")
    if name not in ESTIMATORS:
        raise RexnetError(
            f"unknown rank estimator {spec!r}; expected one of: matrix_rank, rtol:R, energy:Q, erank, stable"
        )
    if not ESTIMATORS[name]:
        if arg:
            raise RexnetError(f"estimator {name!r} takes no parameter, got {spec!r}")
        return name, None
    try:
        value = float(arg)
    except ValueError:
        raise RexnetError(f"estimator {name!r} needs a number, e.g. '{name}:0.01', got {spec!r}") from None
    if not 0.0 < value < 1.0 or (name == "energy" and value <= 0.0):
        raise RexnetError(f"estimator {name!r} parameter must be in (0, 1), got {value}")
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
    if method == "gram":
        a = matrices.double()
        if a.shape[-2] > a.shape[-1]:
            a = a.mT
        ev = torch.linalg.eigvalsh(a @ a.mT)
        return ev.clamp_min(0).sqrt().flip(-1).to(matrices.dtype)
    raise RexnetError(f"unknown SVD method {method!r}; expected one of: {', '.join(_SVD_METHODS)}")


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
