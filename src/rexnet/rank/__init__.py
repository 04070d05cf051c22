"""Rank study (CVPR'21 Sec. 3): random-layer study of Fig. 1 and rank profiler (Table 2: rexnet.experiments.table2).

Example:
    >>> from rexnet.rank import run_rank_study
    >>> res = run_rank_study(blocks=["conv1x1"], activations=["identity", "silu"], ratios=[0.1],
    ...                      networks=10, progress=False)
    >>> res.value("conv1x1", "silu", 0.1) > res.value("conv1x1", "identity", 0.1)
    True
"""

from .blocks import BLOCK_KINDS, BLOCKS, BlockKind, get_block_kind
from .estimators import ESTIMATORS, nuclear_norm, parse_estimator, rank_from_singular_values, singular_values
from .findings import Finding, check_findings, format_findings
from .protocols import PAPER_ACTIVATIONS, PRESETS, Protocol, get_protocol, resolve_activation
from .study import CSV_COLUMNS, DEFAULT_RATIOS, StudyResult, StudyRow, read_study_csv, run_rank_study

__all__ = [
    "BLOCKS",
    "BLOCK_KINDS",
    "BlockKind",
    "get_block_kind",
    "CSV_COLUMNS",
    "DEFAULT_RATIOS",
    "ESTIMATORS",
    "Finding",
    "PAPER_ACTIVATIONS",
    "PRESETS",
    "Protocol",
    "StudyResult",
    "StudyRow",
    "check_findings",
    "format_findings",
    "get_protocol",
    "nuclear_norm",
    "parse_estimator",
    "rank_from_singular_values",
    "read_study_csv",
    "resolve_activation",
    "run_rank_study",
    "singular_values",
]
