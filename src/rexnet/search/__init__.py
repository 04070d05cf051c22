"""Channel-configuration search (Han et al., CVPR 2021, Sec. 4) on Optuna.

Sample monotone channel curves ``c_i = a*f(i) + b`` (``f`` piecewise linear) for a fixed stack
of inverted bottlenecks, rescale each to a MAC/parameter budget with the plan arithmetic, train
it on a proxy for a few epochs with several seeds, and report the paper's Table 3 and Figure 2.

Example:
    >>> from rexnet import search
    >>> res = search.run("runs/s5", blocks=5, budget_macs=30e6, trials=4, epochs=1, seeds=1)  # doctest: +SKIP
    >>> cfg = search.SearchConfig(budget_macs="30M", trials=4, epochs=1, seeds=1)
    >>> res = search.run("runs/s5", cfg)  # doctest: +SKIP
    >>> paths = search.report("runs/s5")  # doctest: +SKIP

Latency-aware: ``search.run("runs/lat", budget_latency="3ms", runtime="openvino", precision="int8")``
prunes candidates slower than 3 ms (measured in the worker before training); ``sampler="nsga2"``
with a latency budget searches the accuracy/latency Pareto front, and :func:`register` names the pick.
"""

from .api import SearchResult, run
from .config import SearchConfig
from .latency import DEFAULT_REFERENCES, parse_ms
from .objective import Objective
from .pareto import pareto_front
from .register import register, select_trial
from .report import report, spearman, split_groups
from .shapes import linear_r2, shape_class
from .space import (
    MAX_RISE,
    PAPER_BUDGETS,
    OutOfToleranceError,
    SearchSpace,
    Shape,
    linear_params,
    plan_for_budget,
    search_strides,
    shape_from_params,
    staircase_params,
    suggest_shape,
    trial_plan,
)
from .study import DEFAULT_STUDY, SAMPLERS, StudyMismatchError, default_storage, open_storage, open_study
from .trainer import Trainer, fit_trainer, load_data
from .worker import work

__all__ = [
    "DEFAULT_REFERENCES",
    "DEFAULT_STUDY",
    "MAX_RISE",
    "PAPER_BUDGETS",
    "SAMPLERS",
    "Objective",
    "OutOfToleranceError",
    "SearchConfig",
    "SearchResult",
    "SearchSpace",
    "Shape",
    "StudyMismatchError",
    "Trainer",
    "default_storage",
    "fit_trainer",
    "linear_params",
    "linear_r2",
    "load_data",
    "open_storage",
    "open_study",
    "pareto_front",
    "parse_ms",
    "plan_for_budget",
    "register",
    "report",
    "run",
    "search_strides",
    "select_trial",
    "shape_class",
    "shape_from_params",
    "spearman",
    "split_groups",
    "staircase_params",
    "suggest_shape",
    "trial_plan",
    "work",
]
