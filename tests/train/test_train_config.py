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
    a = c.aug
    assert (a.randaug_n, a.randaug_m, a.randaug_mstd, a.reprob, a.hflip) == (2, 9.0, 0.5, 0.2, 0.5)
    assert a.scale == (0.08, 1.0) and c.amp == "auto"
    assert TrainConfig.preset("paper", batch_size=256).peak_lr() == 0.25  # linear scaling
    assert set(PRESETS) == {"quick", "finetune", "paper", "fashion", "fashion-short", "fashion-long"}


def test_finetune_preset_is_a_short_fine_tuning_recipe_and_rexnet_finetune_defaults_to_it():
    c = TrainConfig.preset("finetune")
    assert (c.epochs, c.batch_size, c.peak_lr(), c.warmup_epochs, c.weight_decay) == (10, 64, 0.01, 1.0, 1e-5)
    assert (c.label_smoothing, c.dropout, c.ema, c.image_size) == (0.1, 0.2, False, 224)
    assert (c.aug.scale, c.aug.hflip, c.aug.randaug_n, c.aug.reprob) == ((0.08, 1.0), 0.5, 0, 0.0)
    assert c.peak_lr() < TrainConfig.preset("paper", batch_size=64).peak_lr() / 4  # well below from-scratch
    ft = config_from_args(build_parser().parse_args(["finetune", "--pretrained", "x.pt"]))
    assert (ft.epochs, ft.peak_lr(), ft.pretrained) == (10, 0.01, "x.pt")
    assert config_from_args(build_parser().parse_args(["finetune", "--preset", "quick"])).peak_lr() == 0.05
    assert config_from_args(build_parser().parse_args(["train"])).peak_lr() == TrainConfig().peak_lr()  # quick


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
    assert c.aug.scale == (0.5, 1.0) and c.lr == 0.1 and c.num_classes is None and c.ema is True


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


# ---- the augmentation is a nested AugmentConfig ------------------------------------------------------
def test_train_config_composes_augment_config():
    from rexnet.data import AugmentConfig
    from rexnet.train.run import augment_from_config

    c = TrainConfig.preset("fashion")
    assert isinstance(c.aug, AugmentConfig) and c.aug.hflip == 0.5 and c.aug.scale == (0.5, 1.0)
    assert augment_from_config(c) is c.aug
    # a mapping changes only the keys it names; dotted and old flat keys do the same
    d = c.replace(aug={"reprob": 0.1})
    assert (d.aug.reprob, d.aug.hflip) == (0.1, 0.5)
    assert c.replace(**{"aug.hflip": 0.25}).aug.hflip == 0.25 == c.replace(hflip=0.25).aug.hflip
    assert c.to_dict()["aug"]["scale"] == [0.5, 1.0] and "hflip" not in c.to_dict()
    assert c.flat_dict()["aug.hflip"] == 0.5
    assert TrainConfig.from_dict(json.loads(json.dumps(c.to_dict()))) == c  # config.json round trip
    # constructed from a partial mapping: the training defaults (not AugmentConfig's paper defaults) elsewhere
    assert TrainConfig(aug={"hflip": 0.5}).aug == TrainConfig().aug.replace(hflip=0.5)
    with pytest.raises(ConfigError, match=r"--aug: aug must be a mapping"):
        TrainConfig(aug=[0.5])


def test_old_flat_config_json_still_resumes(tmp_path):
    """A run folder written before ``aug`` was nested (flat aug_scale, hflip, ...) resumes with those values."""
    from rexnet.train.run import resume_changes, resume_config

    old = {k: v for k, v in TrainConfig().to_dict().items() if k != "aug"}
    old.update(aug_scale=[0.6, 1.0], aug_ratio=[0.8, 1.2], hflip=0.5, randaug_n=0, reprob=0.1, epochs=3)
    (tmp_path / "config.json").write_text(json.dumps(old))
    cfg = resume_config(tmp_path)
    assert (cfg.aug.scale, cfg.aug.ratio, cfg.aug.hflip, cfg.aug.reprob, cfg.epochs) == (
        (0.6, 1.0),
        (0.8, 1.2),
        0.5,
        0.1,
        3,
    )
    # --allow-change takes the old name, the dotted one or the whole group
    new = cfg.replace(hflip=0.0)
    for name in ("hflip", "aug.hflip", "aug"):
        assert resume_changes(cfg, new, [name]) == {"aug.hflip": {"from": 0.5, "to": 0.0}}
    with pytest.raises(ConfigError, match="aug.hflip"):
        resume_changes(cfg, new, ["epochs"])


def test_augment_flags_are_generated_with_a_prefix():
    args = build_parser().parse_args(["train", "--aug-scale", "0.4,1", "--hflip", "0.5", "--aug-reprob", "0.3"])
    a = config_from_args(args).aug
    assert (a.scale, a.hflip, a.reprob) == ((0.4, 1.0), 0.5, 0.3)
    help_ = build_parser().parse_args(["train"])  # the parser builds; help shows both presets' defaults
    assert help_.cfg_model is None


# ---- one validation layer: every numeric field refuses NaN, inf and out-of-range values, naming its flag -----
@pytest.mark.parametrize(
    "flag, value, message",
    [
        ("--warmup-epochs", "nan", r"--warmup-epochs: bad value for warmup_epochs: 'nan' .*NaN"),
        ("--seed", "1e23", r"--seed: bad value for seed: '1e23'"),
        ("--seed", str(10**23), r"--seed: seed must be in \[0, 4294967295\]"),
        ("--val-limit", "0", r"--val-limit: val_limit must be >= 1"),
        ("--lr", "1e309", r"--lr: bad value for lr: '1e309' .*NaN and inf are refused"),
        ("--lr", "0", r"--lr: lr must be in \(0"),
        ("--weight-decay", "nan", r"--weight-decay: bad value for weight_decay: 'nan'"),
        ("--threads", "100000", r"--threads: threads must be in \[1, \d+\] \(the cores this process may use\)"),
        ("--epochs", "0", r"--epochs: epochs must be in \[1,"),
        ("--momentum", "1", r"--momentum: momentum must be in \[0, 1\)"),
        ("--aug-hflip", "inf", r"--aug-hflip: bad value for hflip: 'inf'"),
        ("--aug-scale", "0.5,2", r"--aug-scale: scale must be in \(0, 1\]"),
        ("--aug-scale", "0.9,0.5", r"low <= high"),
        ("--workers", "-1", r"--workers: workers must be in \[0,"),
        ("--image-size", "100000", r"--image-size: image_size must be in \[8, 16384\]"),
    ],
)
def test_bad_numbers_are_refused_with_the_flag_name(flag, value, message):
    args = build_parser().parse_args(["train", flag, value])
    with pytest.raises(ConfigError, match=message):
        config_from_args(args)


def test_threads_are_capped_at_the_available_cores(monkeypatch):
    import os

    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2}, raising=False)
    assert TrainConfig(threads=3).threads == 3
    with pytest.raises(ConfigError, match=r"must be in \[1, 3\]"):
        TrainConfig(threads=4)


def test_cli_exit_code_for_bad_numbers(capsys):
    from rexnet.cli import main

    assert main(["train", "--warmup-epochs", "nan"]) == 2
    assert "--warmup-epochs" in capsys.readouterr().err


# ---- the environment variables rexnet reads are parsed in one place (rexnet._env) ----------------------------
@pytest.mark.parametrize(
    "env, message",
    [
        ({"WORLD_SIZE": "abc"}, r"environment variable WORLD_SIZE must be an integer, got 'abc'"),
        ({"WORLD_SIZE": "0"}, r"WORLD_SIZE must be in \[1, "),
        ({"WORLD_SIZE": "2", "RANK": "2"}, r"need RANK < WORLD_SIZE; found WORLD_SIZE='2', RANK='2'"),
        ({"WORLD_SIZE": "2", "RANK": "0", "LOCAL_RANK": "-1"}, r"LOCAL_RANK must be >= 0, got -1"),
        ({"WORLD_SIZE": "4", "LOCAL_WORLD_SIZE": "8"}, r"LOCAL_WORLD_SIZE must be in \[1, 4\], got 8"),
    ],
)
def test_bad_torchrun_variables_are_config_errors_naming_them(monkeypatch, env, message):
    from rexnet._env import dist_env
    from rexnet.train.distributed import init_distributed

    for k in ("WORLD_SIZE", "RANK", "LOCAL_RANK", "LOCAL_WORLD_SIZE"):
        monkeypatch.delenv(k, raising=False)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    with pytest.raises(ConfigError, match=message):
        dist_env()
    with pytest.raises(ConfigError, match=message):
        init_distributed("cpu")  # before any process group is joined


def test_good_torchrun_variables_and_none(monkeypatch):
    from rexnet._env import dist_env

    for k in ("WORLD_SIZE", "RANK", "LOCAL_RANK", "LOCAL_WORLD_SIZE"):
        monkeypatch.delenv(k, raising=False)
    assert not dist_env().distributed and dist_env().world_size == 1
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("LOCAL_RANK", "1")
    e = dist_env()
    assert e.distributed and (e.world_size, e.rank, e.local_rank) == (2, 1, 1)


def test_cli_world_size_abc_is_exit_2(monkeypatch, capsys, tmp_path):
    from rexnet.cli import main

    monkeypatch.setenv("WORLD_SIZE", "abc")
    assert main(["train", "--epochs", "1", "--train-limit", "16", "-o", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert "WORLD_SIZE" in err and "'abc'" in err and "Traceback" not in err


def test_a_run_started_with_more_threads_than_here_still_resumes(tmp_path, monkeypatch):
    import os

    from rexnet.train.run import resume_config

    (tmp_path / "config.json").write_text(json.dumps({**TrainConfig().to_dict(), "threads": 64}))
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1}, raising=False)
    assert resume_config(tmp_path).threads is None  # the cores of this machine, not a refusal
