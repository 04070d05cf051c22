"""``SearchConfig``: every setting of a search worker, checked like :class:`~rexnet.train.TrainConfig`.

``rexnet search run`` generates one flag per field (``--budget-macs``, ``--val-samples``, ...);
:func:`rexnet.search.run` takes a config and/or the same fields as keywords.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from .._config import Config, ConfigError, parse_count
from .._env import THREAD_BOUNDS
from ..data.build import data_help
from ..errors import RexnetError
from .latency import DEFAULT_REFERENCES, parse_ms
from .space import SearchSpace
from .trainer import train_config

__all__ = ["DEFAULT_STUDY", "LATENCY_FRACTIONS", "SearchConfig", "Objectives", "Sampler"]

#: The study name workers share unless told otherwise.
DEFAULT_STUDY = "rexnet-search"

Sampler = Literal["random", "tpe", "nsga2"]
Objectives = Literal["accuracy", "accuracy-macs", "accuracy-latency"]
LatencyRuntime = Literal["openvino", "onnxruntime"]
LatencyPrecision = Literal["fp32", "int8"]
#: MAC targets (fractions of the MAC budget) sampled per candidate when only a latency budget is given:
#: the MAC budget is then a ceiling, and the search also picks the width that fits the latency.
LATENCY_FRACTIONS = (0.5, 0.625, 0.75, 0.875, 1.0)


def _count_field(help_: str, metavar: str, high: float | None = None) -> Any:
    """An optional positive count given as ``30M``, ``0.2M``, ``8G`` or ``3e7`` (``high``: its upper bound)."""
    bounds = {"gt": 0} | ({"max": high} if high is not None else {})
    return field(default=None, metadata={"parse": parse_count, "metavar": metavar, "help": help_, **bounds})


@dataclass
class SearchConfig(Config):
    """One search worker: the study it joins, the space it samples and how each candidate is trained.

    The fields that define the study (the space, ``epochs``, ``seeds``, ``objectives``, ``data``,
    ``max_samples``/``val_samples``) are stored in it; a worker that joins with other values is
    refused. The rest (``trials``, ``seed``, ``threads``, heartbeats, ...) may differ per worker.

    Example:
        >>> SearchConfig(budget_macs="7.5M", sampler="nsga2").objective
        'accuracy-macs'
        >>> SearchConfig(trials=0)
        Traceback (most recent call last):
        ...
        rexnet.errors.ConfigError: --trials: trials must be in [1, 100000], got 0
    """

    kind = "search option"

    # where the study lives
    storage: str | None = field(
        default=None,
        metadata={"help": "SQLAlchemy URL, e.g. postgresql://user@host/db (None: sqlite:///OUT/search.db)"},
    )
    study: str = field(default=DEFAULT_STUDY, metadata={"help": "study name shared by the workers"})
    # the space
    blocks: int = field(default=5, metadata={"help": "inverted bottlenecks d", "min": 1, "max": 64})
    # the upper bounds: 1000 GMACs (300x ReXNet-3.0) or 10 G parameters, beyond which no trial trains on one machine
    budget_macs: float | None = _count_field(
        "MAC budget at --image-size, e.g. 30M (None: the paper's, 30M/100M/300M for d=5/9/13, "
        "unless a parameter budget is given)",
        "COUNT",
        high=1e12,
    )
    budget_params: float | None = _count_field("parameter budget, e.g. 0.2M (None: none)", "COUNT", high=1e10)
    macs_fractions: tuple[float, ...] | None = field(
        default=None,
        metadata={
            "metavar": "F",
            "help": "sample each candidate's MAC target among these fractions of the MAC budget, e.g. 0.5,0.75,1 "
            f"(None: the budget itself, or {','.join(map(str, LATENCY_FRACTIONS))} of the paper's budget with "
            "--budget-latency and no --budget-macs/--budget-params)",
            "gt": 0,
            "max": 1,
        },
    )
    # latency: measured by each worker on its own CPU, before training (rexnet.latency)
    budget_latency: float | None = field(
        default=None,
        metadata={
            "parse": parse_ms,
            "metavar": "TIME",
            "help": "latency budget, e.g. 3ms, 0.003s or 3 (ms): candidates whose median latency on --runtime is "
            "above it are pruned before training (None: none)",
            "gt": 0,
            "max": 1e7,
        },
    )
    runtime: LatencyRuntime = field(default="openvino", metadata={"help": "latency runtime: openvino or onnxruntime"})
    precision: LatencyPrecision = field(
        default="int8", metadata={"help": "latency precision: int8 (random calibration) or fp32"}
    )
    latency_size: int | None = field(
        default=None, metadata={"help": "latency input size (None: --image-size)", "min": 8, "max": 4096}
    )
    latency_batch: int = field(default=1, metadata={"help": "latency batch size", "min": 1, "max": 4096})
    latency_threads: int | None = field(
        default=None, metadata={"help": "runtime threads when timing (None: all cores)", **THREAD_BOUNDS}
    )
    latency_repeats: int = field(
        default=50, metadata={"help": "timed calls per candidate (median and IQR)", "min": 3, "max": 100_000}
    )
    latency_cache: str | None = field(
        default=None,
        metadata={
            "metavar": "DIR",
            "help": "latency cache folder; off: no cache (None: $XDG_CACHE_HOME/rexnet/latency)",
        },
    )
    latency_references: tuple[str, ...] = field(
        default=DEFAULT_REFERENCES,
        metadata={"metavar": "NAME", "help": "models timed once per CPU for the Pareto figure ('none': none)"},
    )
    mixed_cpus: bool = field(
        default=False,
        metadata={"help": "let workers on another CPU model join a latency study (each times on its own CPU)"},
    )
    tolerance: float = field(
        default=0.03, metadata={"help": "plans use between 1-TOLERANCE and 1 of the budget", "gt": 0, "lt": 1}
    )
    image_size: int = field(default=32, metadata={"help": "proxy input size", "min": 8, "max": 4096})
    # the study
    trials: int = field(
        default=20,
        metadata={
            "help": "slots of the study (total finished trials wanted, not per worker; larger adds slots)",
            "min": 1,
            "max": 100_000,
        },
    )
    epochs: int = field(default=30, metadata={"help": "epochs per seed (paper: 30)", "min": 1, "max": 100_000})
    seeds: int = field(default=3, metadata={"help": "seeds averaged per candidate (paper: 3)", "min": 1, "max": 1000})
    data: str | None = field(
        default="digits", metadata={"help": f"{data_help()}; None: no data (only with a custom trainer)"}
    )
    sampler: Sampler = field(default="random", metadata={"help": "random, tpe or nsga2"})
    objectives: Objectives | None = field(
        default=None,
        metadata={
            "help": "accuracy; accuracy-macs: maximise accuracy, minimise MACs; accuracy-latency (the Pareto "
            "mode): maximise accuracy, minimise measured latency (None: for nsga2 accuracy-latency with "
            "--budget-latency, else accuracy-macs; accuracy otherwise)"
        },
    )
    prune: bool = field(default=False, metadata={"help": "median-prune hopeless trials (single objective only)"})
    seed: int | None = field(
        default=None,
        metadata={"help": "sampler seed; give each worker its own (None: random)", "min": 0, "max": 2**32 - 1},
    )
    max_samples: int | None = field(
        default=None,
        metadata={"help": "cut the training set to this many samples, for quick runs (None: all)", "min": 1},
    )
    val_samples: int | None = field(
        default=None,
        metadata={
            "help": "cut the validation split that ranks the candidates (None: a quarter of max_samples when that "
            "is given, else all)",
            "min": 1,
        },
    )
    # each trial
    threads: int | None = field(
        default=1,
        metadata={
            "help": "torch threads per trial; 1 suits one worker per core (None: torch's default)",
            **THREAD_BOUNDS,
        },
    )
    train_options: dict[str, Any] | None = field(
        default=None,
        metadata={
            "metavar": "JSON",
            "help": "extra TrainConfig fields as a JSON object, e.g. '{\"batch_size\": 64}' (None: none)",
        },
    )
    max_memory: float | None = _count_field(
        "bytes one candidate's training may take, checked before the study starts and before each "
        "candidate is built, e.g. 8G = 8e9 (None: 80% of the available memory)",
        "BYTES",
    )
    # the workers
    heartbeat_interval: int = field(
        default=10, metadata={"help": "seconds between a running trial's heartbeats", "min": 1, "max": 86_400}
    )
    grace_period: int | None = field(
        default=None,
        metadata={
            "help": "seconds of silence before a trial is declared dead and retried; must exceed the heartbeat "
            "interval (None: 3 heartbeats)",
            "min": 1,
        },
    )
    max_retry: int = field(
        default=3, metadata={"help": "retries per slot after a crash or a dead worker", "min": 0, "max": 1000}
    )
    wait: bool = field(
        default=True,
        metadata={"help": "wait for other workers' running trials (to take over their retries) before exiting"},
    )
    seed_rules: bool = field(
        default=True, metadata={"help": "put MobileNetV2's staircase and ReXNet's line into the first two slots"}
    )

    def validate(self) -> None:
        # types and the ranges in the fields' metadata are checked first (rexnet._config)
        if self.grace_period is not None and self.grace_period <= self.heartbeat_interval:
            # a live trial would be declared dead between two of its own beats, and its result lost
            raise ConfigError(
                f"--grace-period: grace_period must be longer than heartbeat_interval (--heartbeat-interval) "
                f"{self.heartbeat_interval} s, got {self.grace_period} s (give 3 heartbeats or more, or None)"
            )
        if self.prune and self.multi_objective:
            raise ConfigError(
                "prune=True needs a single objective (objectives='accuracy'); Optuna cannot prune "
                "multi-objective trials"
            )
        # "none" (or an empty name) switches the references off
        self.latency_references = tuple(n for n in self.latency_references if n.strip() and n.lower() != "none")
        if self.latency_references:
            from ..zoo import list_models

            unknown = [n for n in self.latency_references if n not in list_models()]
            if unknown:
                raise ConfigError(
                    f"--latency-references: unknown model(s) {', '.join(unknown)}; expected registered names, "
                    "e.g. rexnet_100, mobilenetv2_100 (rexnet models)"
                )
        if self.train_options:
            try:
                train_config(self.train_options)
            except RexnetError as e:  # train's own ConfigError: say where the key came from
                raise ConfigError(f"--train-options: {e}") from None

    @property
    def objective(self) -> str:
        """``objectives`` resolved: for ``nsga2`` ``accuracy-latency`` with a latency budget, else
        ``accuracy-macs``; ``accuracy`` for the other samplers."""
        if self.objectives:
            return self.objectives
        if self.sampler != "nsga2":
            return "accuracy"
        return "accuracy-latency" if self.budget_latency is not None else "accuracy-macs"

    @property
    def multi_objective(self) -> bool:
        """Whether the study minimises a cost (MACs or latency) besides maximising accuracy."""
        return self.objective in ("accuracy-macs", "accuracy-latency")

    @property
    def uses_latency(self) -> bool:
        """Whether candidates are timed (a latency budget, or latency as the second objective)."""
        return self.budget_latency is not None or self.objective == "accuracy-latency"

    def latency_settings(self) -> dict[str, Any] | None:
        """What defines the study's latency (stored; joining workers must match), ``None`` without latency."""
        if not self.uses_latency:
            return None
        return {
            "budget_ms": self.budget_latency,
            "runtime": self.runtime,
            "precision": self.precision,
            "image_size": self.latency_size or self.image_size,
            "batch": self.latency_batch,
        }

    def space(self, num_classes: int | None = None) -> SearchSpace:
        """The :class:`SearchSpace` these settings describe (``num_classes``: the data's)."""
        extra = {} if num_classes is None else {"num_classes": int(num_classes)}
        fractions = self.macs_fractions or ()
        if not fractions and self.budget_latency is not None and self.budget_macs is None and not self.budget_params:
            fractions = LATENCY_FRACTIONS  # a latency budget alone: the paper's MAC budget becomes a ceiling
        return SearchSpace(
            blocks=self.blocks,
            macs_fractions=tuple(sorted(set(fractions))),
            budget_macs=self.budget_macs,
            budget_params=self.budget_params,
            tolerance=self.tolerance,
            image_size=self.image_size,
            **extra,
        )

    def study_attrs(self, space: SearchSpace) -> dict[str, Any]:
        """What the study stores and every joining worker must match (the format of existing studies)."""
        attrs = {
            "space": space.to_dict(),
            "epochs": self.epochs,
            "seeds": self.seeds,
            "objectives": self.objective,
            "data": str(self.data),
            "sampler": self.sampler,
            "samples": {"train": self.max_samples, "val": self.val_samples},
        }
        latency = self.latency_settings()
        return attrs if latency is None else {**attrs, "latency": latency}

    def train_batch(self) -> int:
        """Training batch size of each candidate (``train_options`` or the training default)."""
        return int(train_config(self.train_options).batch_size)
