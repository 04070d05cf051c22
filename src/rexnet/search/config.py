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
from .space import SearchSpace
from .trainer import train_config

__all__ = ["DEFAULT_STUDY", "SearchConfig", "Objectives", "Sampler"]

#: The study name workers share unless told otherwise.
DEFAULT_STUDY = "rexnet-search"

Sampler = Literal["random", "tpe", "nsga2"]
Objectives = Literal["accuracy", "accuracy-macs"]


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
            "help": "accuracy, or accuracy-macs: maximise accuracy, minimise MACs (None: accuracy-macs for nsga2, "
            "accuracy otherwise)"
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
        if self.train_options:
            try:
                train_config(self.train_options)
            except RexnetError as e:  # train's own ConfigError: say where the key came from
                raise ConfigError(f"--train-options: {e}") from None

    @property
    def objective(self) -> str:
        """``objectives`` resolved: ``accuracy-macs`` for ``nsga2`` when not given, else ``accuracy``."""
        return self.objectives or ("accuracy-macs" if self.sampler == "nsga2" else "accuracy")

    @property
    def multi_objective(self) -> bool:
        """Whether the study minimises MACs besides maximising accuracy."""
        return self.objective == "accuracy-macs"

    def space(self, num_classes: int | None = None) -> SearchSpace:
        """The :class:`SearchSpace` these settings describe (``num_classes``: the data's)."""
        extra = {} if num_classes is None else {"num_classes": int(num_classes)}
        return SearchSpace(
            blocks=self.blocks,
            budget_macs=self.budget_macs,
            budget_params=self.budget_params,
            tolerance=self.tolerance,
            image_size=self.image_size,
            **extra,
        )

    def study_attrs(self, space: SearchSpace) -> dict[str, Any]:
        """What the study stores and every joining worker must match (the format of existing studies)."""
        return {
            "space": space.to_dict(),
            "epochs": self.epochs,
            "seeds": self.seeds,
            "objectives": self.objective,
            "data": str(self.data),
            "sampler": self.sampler,
            "samples": {"train": self.max_samples, "val": self.val_samples},
        }

    def train_batch(self) -> int:
        """Training batch size of each candidate (``train_options`` or the training default)."""
        return int(train_config(self.train_options).batch_size)
