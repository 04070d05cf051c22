"""evaluate(): hand-checked top-1/top-5 on fixed tiny sets; eval/predict/finetune from the CLI."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset

import rexnet
from rexnet.cli import main
from rexnet.data import build_datasets
from rexnet.train import evaluate, load_checkpoint


def test_hand_checked_top1_top5_linear():
    # logits = inputs (identity weights); 6 classes, so top-5 can miss
    x = torch.tensor(
        [
            [6, 5, 4, 3, 2, 1],  # label 0: top-1 hit
            [6, 5, 4, 3, 2, 1],  # label 5: ranked 6th -> top-1 and top-5 miss
            [1, 2, 3, 4, 5, 6],  # label 5: top-1 hit
            [1, 2, 3, 4, 5, 6],  # label 1: ranked 5th -> top-5 hit only
            [2, 3, 9, 4, 5, 1],  # label 3: ranked 3rd -> top-5 hit only
            [3, 1, 2, 6, 4, 5],
        ],  # label 3: top-1 hit
        dtype=torch.float32,
    )
    y = torch.tensor([0, 5, 5, 1, 3, 3])
    model = nn.Linear(6, 6, bias=False)
    with torch.no_grad():
        model.weight.copy_(torch.eye(6))
    res = evaluate(model, TensorDataset(x, y), batch_size=4, num_classes=6, device="cpu")
    assert res["top1"] == 50.0 and res["top5"] == pytest.approx(500 / 6) and res["count"] == 6
    assert res["per_class"] == {"0": 100.0, "1": 0.0, "2": None, "3": 50.0, "4": None, "5": 50.0}
    assert res["confusion"][5] == [1, 0, 0, 0, 0, 1] and res["confusion"][3] == [0, 0, 1, 1, 0, 0]
    assert res["loss"] == pytest.approx(nn.functional.cross_entropy(x, y).item(), rel=1e-6)


def _constant_rexnet():
    """rexnet_060 whose logits are a fixed bias for every image: class 1 first, then 2, 6, 8, 9."""
    m = rexnet.create_model("rexnet_060", num_classes=10)
    with torch.no_grad():
        m.classifier.weight.zero_()
        m.classifier.bias.copy_(torch.tensor([0, 9, 8, 1, 2, 3, 7, 4, 6, 5], dtype=torch.float32))
    return m


def test_hand_checked_rexnet_and_cli_eval(tmp_path, capsys):
    labels = build_datasets("digits", 32, train=False).val.labels
    n = len(labels)
    top1 = 100.0 * int((labels == 1).sum()) / n
    top5 = 100.0 * int(sum((labels == c).sum() for c in (1, 2, 6, 8, 9))) / n
    rexnet.save_weights(_constant_rexnet(), tmp_path / "const.safetensors", name="rexnet_060")
    out = tmp_path / "eval.json"
    assert (
        main(
            [
                "eval",
                "-m",
                "rexnet_060",
                "-c",
                str(tmp_path / "const.safetensors"),
                "--data",
                "digits",
                "--image-size",
                "32",
                "-o",
                str(out),
            ]
        )
        == 0
    )
    res = json.loads(out.read_text())
    assert (res["top1"], res["top5"], res["count"]) == (top1, top5, n)
    assert (tmp_path / "eval.png").exists()
    assert f"top-1 {top1:.2f}%" in capsys.readouterr().out


def test_finetune_then_predict_from_cli(tmp_path, capsys):
    src = tmp_path / "src.safetensors"
    rexnet.save_weights(rexnet.create_model("rexnet_060", num_classes=10), src, name="rexnet_060")
    out = tmp_path / "ft"
    common = [
        "-m",
        "rexnet_060",
        "--image-size",  # the weights record rexnet_060's 224 px; this test trains at 32
        "32",
        "--data",
        "shapes",
        "--train-limit",
        "32",
        "--val-limit",
        "16",
        "-b",
        "16",
        "-e",
        "1",
        "--threads",
        "1",
        "--no-progress",
        "--no-tensorboard",
        "-o",
        str(out),
    ]
    assert main(["finetune", *common]) == 2  # --pretrained is required
    assert main(["finetune", *common, "--pretrained", str(src), "--freeze-backbone"]) == 0
    ck = load_checkpoint(out / "checkpoints" / "last.pt")
    ref = rexnet.create_model("rexnet_060", pretrained=src, num_classes=10, drop_head=True).state_dict()
    assert torch.equal(ck["model"]["blocks.3.expand.conv.weight"], ref["blocks.3.expand.conv.weight"])  # frozen
    assert torch.equal(ck["model"]["final_conv.bn.running_mean"], ref["final_conv.bn.running_mean"])  # BN frozen
    assert not torch.equal(ck["model"]["classifier.weight"], ref["classifier.weight"])  # new head trained
    assert ck["class_names"][0] == "circle"
    img = tmp_path / "a.png"
    from PIL import Image

    Image.fromarray(build_datasets("shapes", 32, train=False).val.images[0].permute(1, 2, 0).numpy()).save(img)
    capsys.readouterr()
    assert main(["predict", "-c", str(out / "checkpoints" / "best.pt"), "-k", "3", str(img)]) == 0
    line = capsys.readouterr().out
    assert line.startswith(f"{img}: ") and line.count("%") == 3


def test_load_model_on_a_run_folder_returns_the_trained_weights(tmp_path):
    from rexnet.train import fit
    from rexnet.zoo import load_model

    from .helpers import tiny_cfg

    bundle = build_datasets("digits", 32, model="rexnet_060", train_limit=32, val_limit=16)
    torch.manual_seed(0)
    trained = rexnet.create_model("rexnet_060", num_classes=10)
    fit(trained, bundle.train, bundle.val, tiny_cfg(epochs=1), out_dir=tmp_path / "run", class_names=bundle.class_names)
    model, meta = load_model(tmp_path / "run")
    assert not model.training and meta.source == "training" and meta.name == "rexnet_060"
    assert meta.checkpoint.endswith("best.pt") and meta.image_size == 32 and meta.num_classes == 10
    assert list(meta.class_names) == bundle.class_names
    x = torch.randn(3, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    torch.manual_seed(0)
    untrained = rexnet.create_model("rexnet_060", num_classes=10).eval()
    with torch.no_grad():
        want = trained.eval()(x)
        torch.testing.assert_close(model(x), want, rtol=0, atol=1e-6)
        assert (untrained(x) - want).abs().max() > 1e-3  # training changed the weights: ignoring them would fail
    # a name plus the run's checkpoint gives the same weights on that architecture
    again, meta2 = load_model("rexnet_060", checkpoint=tmp_path / "run" / "checkpoints" / "last.pt")
    with torch.no_grad():
        torch.testing.assert_close(again(x), want, rtol=0, atol=1e-6)
    assert meta2.checkpoint.endswith("last.pt")
