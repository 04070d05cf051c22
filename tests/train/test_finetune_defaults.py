"""Fine-tuning takes the model, image size and preprocessing from its weights unless the user set them
(issue 22): a weights file's metadata, a Hugging Face folder, a hub repo, a run, a registered name."""

from __future__ import annotations

import json
import logging

import pytest
import torch

import rexnet
from rexnet.cli import main
from rexnet.train import TrainConfig, finetune, finetune_defaults
from rexnet.train.run import build_model
from rexnet.train.weights_source import pretrained_source
from rexnet.weights import read_state_dict
from rexnet.zoo import IMAGENET_MEAN

from .helpers import make_folder

MEAN = (0.5, 0.4, 0.3)
STD = (0.2, 0.25, 0.3)


@pytest.fixture(scope="module")
def weights_64(tmp_path_factory):
    """rexnet_060 weights whose pretrained_cfg says 64 px, bilinear, crop 0.9, their own mean/std."""
    model = rexnet.create_model("rexnet_060", num_classes=5)
    model.pretrained_cfg.update(input_size=(3, 64, 64), interpolation="bilinear", crop_pct=0.9, mean=MEAN, std=STD)
    return rexnet.save_weights(model, tmp_path_factory.mktemp("w") / "w64.safetensors")


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    """A 3-class ImageNet-layout folder of 20 px JPEGs (4 train and 2 val images per class)."""
    root = tmp_path_factory.mktemp("photos")
    make_folder(root, classes=("a", "b", "c"), per_class=4, corrupt=False)
    return root


def _run(args, out):
    """``rexnet finetune`` for one tiny epoch."""
    tiny = ["-b", "6", "-e", "1", "--threads", "1", "--no-progress", "--no-tensorboard", "-o", str(out)]
    return main(["finetune", *args, *tiny])


def test_save_weights_records_the_preprocessing(weights_64):
    meta = read_state_dict(weights_64)[1]
    cfg = json.loads(meta["pretrained_cfg"])
    assert (cfg["input_size"], cfg["interpolation"], cfg["crop_pct"]) == ([3, 64, 64], "bilinear", 0.9)
    assert tuple(cfg["mean"]) == MEAN and meta["model"] == "rexnet_060"


def test_cli_finetune_takes_the_weights_size_and_says_why(weights_64, photos, tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="rexnet.train")
    assert _run(["--pretrained", str(weights_64), "--data", str(photos)], tmp_path / "ft") == 0
    saved = json.loads((tmp_path / "ft" / "config.json").read_text())
    # no -m: the architecture the file names; no --image-size: the file's 64 px, not the preset's 224
    assert (saved["model"], saved["image_size"], saved["interpolation"], saved["crop_pct"]) == (
        "rexnet_060",
        64,
        "bilinear",
        0.9,
    )
    assert (tuple(saved["mean"]), tuple(saved["std"])) == (MEAN, STD)
    assert saved["epochs"] == 1 and saved["weight_decay"] == 1e-5  # the finetune preset, -e on top
    text = caplog.text
    assert "image_size 64 from w64.safetensors's pretrained_cfg (set --image-size to override)" in text
    assert "model rexnet_060 from w64.safetensors's pretrained_cfg" in text
    assert "mean (0.5, 0.4, 0.3)" in text and "interpolation bilinear" in text


def test_cli_image_size_flag_wins_and_the_log_names_both(weights_64, photos, tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="rexnet.train")
    args = ["--pretrained", str(weights_64), "--data", str(photos), "--image-size", "32", "--mean", "0.1,0.1,0.1"]
    assert _run(args, tmp_path / "ft") == 0
    saved = json.loads((tmp_path / "ft" / "config.json").read_text())
    assert (saved["image_size"], saved["mean"], saved["crop_pct"]) == (32, [0.1, 0.1, 0.1], 0.9)
    assert "image_size 32, mean (0.1, 0.1, 0.1) as set (w64.safetensors's pretrained_cfg: image_size 64" in caplog.text
    assert "image_size 64 from" not in caplog.text


def test_a_config_file_key_counts_as_set_a_preset_value_does_not(weights_64, photos, tmp_path):
    (tmp_path / "c.yaml").write_text("preset: paper\nimage_size: 48\n")
    args = ["--pretrained", str(weights_64), "--data", str(photos), "--config", str(tmp_path / "c.yaml")]
    assert _run([*args, "--workers", "0", "--amp", "none"], tmp_path / "a") == 0
    assert json.loads((tmp_path / "a" / "config.json").read_text())["image_size"] == 48
    cfg = finetune_defaults(TrainConfig.preset("paper", pretrained=str(weights_64)), [])
    assert cfg.image_size == 64  # the paper preset's 224 is no user setting


def test_python_finetune_behaves_as_the_cli(weights_64, photos, tmp_path):
    common = dict(epochs=1, batch_size=6, threads=1, progress=False, tensorboard=False)
    res = finetune(weights_64, str(photos), out=str(tmp_path / "a"), **common)
    saved = json.loads((res.out_dir / "config.json").read_text())
    assert (saved["model"], saved["image_size"], saved["interpolation"]) == ("rexnet_060", 64, "bilinear")
    res = finetune(weights_64, str(photos), out=str(tmp_path / "b"), image_size=40, interpolation="bicubic", **common)
    saved = json.loads((res.out_dir / "config.json").read_text())
    assert (saved["image_size"], saved["interpolation"], saved["crop_pct"]) == (40, "bicubic", 0.9)
    # resume keeps what the run chose, and may extend it on purpose
    res = finetune(weights_64, str(photos), out=str(tmp_path / "a"), resume=True, allow_change=["epochs"], epochs=2)
    saved = json.loads((res.out_dir / "config.json").read_text())
    assert (res.status, res.metrics["epochs_completed"], saved["image_size"]) == ("completed", 2, 64)


def test_plain_train_with_a_full_config_keeps_its_size_but_says_so(weights_64, caplog):
    """``train(cfg)`` gets a finished config: its values are the user's; unset preprocessing follows the weights."""
    caplog.set_level(logging.INFO, logger="rexnet.train")
    cfg = finetune_defaults(TrainConfig(model="rexnet_060", pretrained=str(weights_64)))
    assert (cfg.image_size, cfg.mean, cfg.interpolation) == (32, MEAN, "bilinear")
    assert "image_size 32 as set (w64.safetensors's pretrained_cfg: image_size 64)" in caplog.text


def test_a_registered_name_a_file_without_metadata_and_no_weights(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="rexnet.train")
    cfg = finetune_defaults(TrainConfig(pretrained="rexnet_130.nav_in1k"), [])  # no download: the registry's cfg
    assert (cfg.model, cfg.image_size, cfg.crop_pct, cfg.mean) == ("rexnet_130", 224, 0.875, IMAGENET_MEAN)
    assert "image_size 224 from rexnet_130.nav_in1k's pretrained_cfg" in caplog.text
    bare = tmp_path / "timm.pth"
    torch.save(rexnet.create_model("rexnet_060").state_dict(), bare)
    cfg = finetune_defaults(TrainConfig(model="rexnet_060", pretrained=str(bare)), ["model"])
    assert (cfg.image_size, cfg.interpolation) == (224, "bicubic")  # what the architecture's registry entry says
    assert "image_size 224 from rexnet_060's registry entry since timm.pth's pretrained_cfg has none" in caplog.text
    plain = finetune_defaults(TrainConfig(model="rexnet_060"), [])  # no weights: the registry, size untouched
    assert (plain.image_size, plain.crop_pct) == (32, 0.875)


def test_a_hugging_face_folder_and_a_run_folder(weights_64, photos, tmp_path):
    model = rexnet.create_model("rexnet_060", num_classes=3)
    model.pretrained_cfg.update(input_size=(3, 48, 48), crop_pct=1.0)
    rexnet.save_pretrained(model, tmp_path / "hf")
    for spelling in (f"local-dir:{tmp_path / 'hf'}", str(tmp_path / "hf")):
        cfg = finetune_defaults(TrainConfig(pretrained=spelling), [])
        assert (cfg.model, cfg.image_size, cfg.crop_pct) == ("rexnet_060", 48, 1.0)
        assert pretrained_source(spelling).weights == str(tmp_path / "hf" / "model.safetensors")
    run = tmp_path / "run"
    assert _run(["--pretrained", str(weights_64), "--data", str(photos), "--image-size", "40"], run) == 0
    cfg = finetune_defaults(TrainConfig(pretrained=str(run), num_classes=7), [])
    assert (cfg.model, cfg.image_size, cfg.mean) == ("rexnet_060", 40, MEAN)  # what the run trained with
    built = build_model(cfg, 7)  # the run's checkpoint, a new 7-class head
    trained = torch.load(run / "checkpoints" / "best.pt", weights_only=True)["model"]
    assert torch.equal(built.stem.conv.weight, trained["stem.conv.weight"]) and built.num_classes == 7
    assert built.pretrained_cfg["input_size"] == (3, 40, 40) and built.pretrained_cfg["mean"] == MEAN


def test_a_hub_repo_in_an_offline_cache(tmp_path, monkeypatch):
    cache = tmp_path / "hub"
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    commit = "0123456789abcdef0123456789abcdef01234567"
    root = cache / "models--me--cats"
    (root / "refs").mkdir(parents=True)
    (root / "refs" / "main").write_text(commit)
    model = rexnet.create_model("rexnet_100", num_classes=2)
    model.pretrained_cfg.update(input_size=(3, 160, 160), interpolation="bilinear")
    rexnet.save_pretrained(model, root / "snapshots" / commit)
    cfg = finetune_defaults(TrainConfig(pretrained="hf-hub:me/cats"), ["model"])
    assert (cfg.image_size, cfg.interpolation) == (160, "bilinear")
