"""TrainConfig presets and strict overrides (file and CLI)."""

from __future__ import annotations

import json

import pytest

from rexnet.cli import build_parser
from rexnet.cli.train import config_from_args
from rexnet.errors import RexnetError
from rexnet.train import PRESETS, ConfigError, TrainConfig, load_config_file


def test_paper_preset_matches_recipe():
    c = TrainConfig.preset("paper")
    assert (c.epochs, c.batch_size, c.peak_lr(), c.weight_decay) == (400, 512, 0.5, 1e-5)
    assert (c.momentum, c.nesterov, c.label_smoothing, c.dropout, c.warmup_epochs) == (0.9, True, 0.1, 0.2, 5.0)
    assert (c.randaug_n, c.randaug_m, c.randaug_mstd, c.reprob, c.hflip) == (2, 9.0, 0.5, 0.2, 0.5)
    assert c.aug_scale == (0.08, 1.0) and c.amp == "auto"
    assert TrainConfig.preset("paper", batch_size=256).peak_lr() == 0.25  # linear scaling
    assert set(PRESETS) == {"quick", "paper", "fashion", "fashion-short"}


def test_overrides_are_strict():
    with pytest.raises(ConfigError, match="unknown config key 'epoch'"):
        TrainConfig().replace(epoch=3)
    with pytest.raises(ConfigError, match="bad value for epochs"):
        TrainConfig().replace(epochs="three")
    with pytest.raises(ConfigError, match="amp"):
        TrainConfig().replace(amp="fp8")
    with pytest.raises(ConfigError, match="unknown preset"):
        TrainConfig.preset("imagenet")
    assert issubclass(ConfigError, RexnetError)
    c = TrainConfig().replace(aug_scale="0.5,1", lr="0.1", num_classes="none", ema="true")
    assert c.aug_scale == (0.5, 1.0) and c.lr == 0.1 and c.num_classes is None and c.ema is True


def test_config_files(tmp_path):
    (tmp_path / "a.yaml").write_text("preset: paper\nepochs: 3\naug_scale: [0.2, 1.0]\n")
    assert load_config_file(tmp_path / "a.yaml") == {"preset": "paper", "epochs": 3, "aug_scale": [0.2, 1.0]}
    (tmp_path / "b.json").write_text(json.dumps({"epochs": 2, "bogus": 1}))
    with pytest.raises(ConfigError, match="bogus"):
        load_config_file(tmp_path / "b.json")
    with pytest.raises(ConfigError, match="not found"):
        load_config_file(tmp_path / "missing.yaml")


def test_cli_precedence(tmp_path):
    """preset < config file < flags."""
    (tmp_path / "c.yaml").write_text("preset: paper\nepochs: 3\nbatch_size: 128\n")
    args = build_parser().parse_args(["train", "--config", str(tmp_path / "c.yaml"), "-b", "64", "--no-nesterov"])
    cfg = config_from_args(args)
    assert (cfg.epochs, cfg.batch_size, cfg.nesterov, cfg.weight_decay) == (3, 64, False, 1e-5)
    args = build_parser().parse_args(["train", "--warmup-epochs", "2.5"])
    assert config_from_args(args).warmup_epochs == 2.5 and config_from_args(args).model == "rexnet_100"
