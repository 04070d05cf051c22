"""``SearchConfig``: strict keys and values, CLI flags generated from the fields, stored-study compatibility."""

from __future__ import annotations

import dataclasses
import re
import shlex

import pytest

from rexnet import search
from rexnet._config import ConfigError, flag_overrides
from rexnet.cli import build_parser
from rexnet.search import SearchConfig

# the search of benchmarks/fmnist_all.sh, whose study (benchmarks/results/fmnist/search/search.db) must keep resuming
FMNIST = (
    "search run --out OUT --data fashion-mnist --image-size 16 --budget-macs 7.5M --trials 70 --seeds 3 "
    "--epochs 4 --max-samples 6000 --val-samples 5000 --seed 1 --threads 1 --train-options "
    """'{"batch_size":128,"hflip":0.5,"aug_scale":[0.85,1.0],"aug_ratio":[0.9,1.11],"warmup_epochs":0.5}'"""
)
# what that study stores (read from its database): a worker must bring exactly these to join it
FMNIST_STORED = {
    "space": {
        "blocks": 5,
        "budget_macs": 7500000.0,
        "budget_params": None,
        "tolerance": 0.03,
        "image_size": 16,
        "num_classes": 10,
        "min_channels": 8,
        "max_channels": 4096,
        "stem_stride": 1,
    },
    "epochs": 4,
    "seeds": 3,
    "objectives": "accuracy",
    "data": "fashion-mnist",
    "sampler": "random",
    "samples": {"train": 6000, "val": 5000},
}


def _parse(cmd: str) -> SearchConfig:
    return SearchConfig(**flag_overrides(build_parser().parse_args(shlex.split(cmd))))


def test_existing_command_line_builds_the_stored_study_config() -> None:
    cfg = _parse(FMNIST)
    assert cfg.train_options == {
        "batch_size": 128,
        "hflip": 0.5,
        "aug_scale": [0.85, 1.0],
        "aug_ratio": [0.9, 1.11],
        "warmup_epochs": 0.5,
    }
    assert cfg.study_attrs(cfg.space(num_classes=10)) == FMNIST_STORED
    assert cfg.train_batch() == 128


def test_every_field_is_a_flag_and_old_flag_names_still_work() -> None:
    parser = build_parser()
    args = parser.parse_args(["search", "run", "--out", "x"])
    assert set(flag_overrides(args)) == set()  # nothing given: the config's defaults apply
    dests = {a.dest for sp in _subparsers(parser, "search", "run") for a in sp._actions}
    assert {f"cfg_{f.name}" for f in dataclasses.fields(SearchConfig)} <= dests
    cfg = _parse(
        "search run --out x --heartbeat 2 --grace 7 --no-wait --no-seed-rules --prune --sampler tpe "
        "--budget-params 0.2M --threads none"
    )
    assert (cfg.heartbeat_interval, cfg.grace_period, cfg.wait, cfg.seed_rules, cfg.prune) == (2, 7, False, False, True)
    assert cfg.sampler == "tpe" and cfg.budget_params == pytest.approx(2e5) and cfg.threads is None


def test_help_gives_the_configs_defaults(capsys) -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(["search", "run", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert re.search(rf"--trials TRIALS slots of the study [^-]*\(default: {SearchConfig().trials}\) --epochs", text)
    assert "--sampler {random,tpe,nsga2}" in text
    assert "(default: sqlite:///OUT/search.db)" in text  # a None default is explained, not printed as None


def _subparsers(parser, *path):
    for name in path:
        action = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
        parser = action.choices[name]
    return [parser]


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"trails": 5}, r"unknown search option 'trails'; expected one of: .*trials"),
        ({"trials": "many"}, r"--trials: bad value for trials: 'many'"),
        ({"epochs": 1.5}, r"--epochs: bad value for epochs: 1\.5"),
        ({"prune": "maybe"}, r"--prune: bad value for prune: 'maybe'"),
        ({"sampler": "grid"}, r"--sampler: bad value for sampler: 'grid'; expected one of: random, tpe, nsga2"),
        ({"objectives": "speed"}, r"expected one of: accuracy, accuracy-macs"),
        ({"budget_macs": "lots"}, r"--budget-macs: bad value for budget_macs: expected a count like 30M"),
        ({"trials": 0}, r"--trials: trials must be in \[1, 100000\], got 0"),
        ({"max_samples": 0}, r"--max-samples: max_samples must be >= 1, got 0"),
        ({"tolerance": 1.5}, r"--tolerance: tolerance must be in \(0, 1\), got 1\.5"),
        ({"budget_macs": -1}, r"--budget-macs: budget_macs must be in \(0, 1000000000000\]"),
        ({"budget_macs": 1e30}, r"--budget-macs: budget_macs must be in \(0, 1000000000000\]"),
        ({"blocks": None}, r"--blocks: blocks cannot be None"),
        ({"train_options": "[1]"}, r"--train-options: train_options must be a mapping .*list"),
        ({"train_options": "{oops"}, r"--train-options: train_options must be a JSON object"),
        ({"train_options": {"lr": "fast"}}, r"--train-options: --lr: bad value for lr"),
        ({"sampler": "nsga2", "prune": True}, r"single objective"),
        ({"tolerance": float("nan")}, r"--tolerance: bad value for tolerance: nan .*NaN and inf are refused"),
        ({"threads": 100_000}, r"--threads: threads must be in \[1, \d+\] \(the cores this process may use\)"),
        ({"seed": 10**23}, r"--seed: seed must be in \[0, 4294967295\]"),
        ({"heartbeat_interval": 0}, r"--heartbeat-interval: heartbeat_interval must be in \[1,"),
        # a grace period at or below the heartbeat lets a second worker fail a live trial (issue 23 item 8)
        ({"heartbeat_interval": 10, "grace_period": 10}, r"--grace-period: grace_period must be longer"),
        (
            {"heartbeat_interval": 10, "grace_period": 5},
            r"--grace-period: grace_period must be longer .* 10 s, got 5 s",
        ),
    ],
)
def test_bad_keys_and_values_are_refused_with_the_key_named(kwargs, match) -> None:
    with pytest.raises(ConfigError, match=match):
        SearchConfig().replace(**kwargs)


def test_run_refuses_an_unknown_keyword_before_doing_anything(tmp_path) -> None:
    with pytest.raises(ConfigError, match="unknown search option 'trails'"):
        search.run(tmp_path / "s", trails=5, data=None, trainer=lambda *a, **k: 0.0)
    assert not (tmp_path / "s").exists()


def test_strings_are_coerced_and_config_and_keywords_combine() -> None:
    cfg = SearchConfig(trials="4", budget_macs="30M", prune="false", seed="none", data="none")
    assert (cfg.trials, cfg.budget_macs, cfg.prune, cfg.seed, cfg.data) == (4, 30e6, False, None, None)
    assert cfg.replace(epochs=2).epochs == 2 and cfg.epochs == 30  # replace copies
    assert SearchConfig(sampler="nsga2").multi_objective and not SearchConfig(sampler="tpe").multi_objective
    assert SearchConfig.from_dict(cfg.to_dict()) == cfg
