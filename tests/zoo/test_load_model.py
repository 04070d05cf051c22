"""rexnet.zoo.load_model: one loader for names, weights files and training runs; the layering it stands for."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import timm
import torch

import rexnet
from rexnet import CheckpointError, UnknownModelError
from rexnet.plan import rexnet_plan
from rexnet.weights import save_training_checkpoint
from rexnet.zoo import get_plan, load_model

from ..conftest import randomize_bn

SRC = Path(rexnet.__file__).parent
X = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))


def _training_checkpoint(path: Path, model: torch.nn.Module, name: str, **extra) -> Path:
    state = dict(
        model=model.state_dict(),
        optimizer={},
        scheduler={},
        epoch=1,
        step_in_epoch=0,
        history=[],
        config={"image_size": 48},
        model_name=name,
        num_classes=model.num_classes,
        **extra,
    )
    return save_training_checkpoint(state, path)


def _logits(model: torch.nn.Module) -> torch.Tensor:
    with torch.no_grad():
        return model.eval()(X)


@pytest.mark.parametrize("name", ["rexnet_130", "rexnet_lite_100", "mobilenetv2_100"])
def test_a_name_gives_its_architecture_with_random_weights(name):
    model, meta = load_model(name)
    assert model.plan == get_plan(name) == meta.plan and not model.training
    assert (meta.name, meta.num_classes, meta.checkpoint, meta.source) == (name, 1000, None, "name")
    assert meta.image_size == 224 and len(meta.class_names) == 1000
    assert load_model(name, num_classes=7)[1].num_classes == 7


def test_a_searched_plan_and_ema_weights_come_from_the_training_checkpoint(tmp_path):
    plan = rexnet_plan(width_mult=0.7, depth_mult=0.5)  # registered under no name
    model = randomize_bn(rexnet.RexNet(plan, num_classes=4))
    ema = randomize_bn(rexnet.RexNet(plan, num_classes=4))
    run = tmp_path / "run"
    _training_checkpoint(
        run / "checkpoints" / "last.pt",
        model,
        "trial-7",
        plan=plan.to_dict(),
        ema=ema.state_dict(),
        class_names=["a", "b", "c", "d"],
    )
    loaded, meta = load_model(run)
    assert loaded.plan == plan and meta.name == "trial-7" and meta.class_names == ("a", "b", "c", "d")
    assert meta.image_size == 48 and meta.checkpoint.endswith("last.pt")  # no best.pt: the last
    torch.testing.assert_close(_logits(loaded), _logits(model), rtol=0, atol=0)
    torch.testing.assert_close(_logits(load_model(run, ema=True)[0]), _logits(ema), rtol=0, atol=0)


def test_a_weights_file_names_or_fits_its_variant(tmp_path):
    ours = randomize_bn(rexnet.create_model("rexnet_060", num_classes=5))
    path = rexnet.save_weights(ours, tmp_path / "w.safetensors", name="rexnet_060")
    model, meta = load_model(path)
    assert (meta.name, meta.num_classes, meta.source) == ("rexnet_060", 5, "weights")
    torch.testing.assert_close(_logits(model), _logits(ours), rtol=0, atol=0)
    ref = randomize_bn(timm.create_model("rexnet_150")).eval()
    torch.save(ref.state_dict(), tmp_path / "timm.pth")  # records no name: the shapes tell rexnet_150
    model, meta = load_model(tmp_path / "timm.pth")
    assert meta.name == "rexnet_150" and meta.num_classes == 1000
    torch.testing.assert_close(_logits(model), _logits(ref), rtol=0, atol=1e-5)


def test_loader_errors_name_the_problem(tmp_path):
    with pytest.raises(UnknownModelError, match="rexnet_999.*rexnet_100.*run folder"):
        load_model("rexnet_999")
    (tmp_path / "empty").mkdir()
    with pytest.raises(CheckpointError, match="without a checkpoint; expected one of: checkpoints/best.pt"):
        load_model(tmp_path / "empty")
    with pytest.raises(CheckpointError, match="not found"):
        load_model("rexnet_060", checkpoint=tmp_path / "nope.pt")
    path = rexnet.save_weights(rexnet.create_model("rexnet_060"), tmp_path / "w.safetensors")
    with pytest.raises(CheckpointError, match="no EMA weights"):
        load_model(path, ema=True)
    with pytest.raises(CheckpointError, match=r"(?s)expected shape \(27, 96, 1, 1\).*looks like: rexnet_060"):
        load_model("rexnet_100", checkpoint=path)
    torch.save({"x.weight": torch.zeros(3)}, tmp_path / "odd.pth")
    with pytest.raises(CheckpointError, match="odd.pth: unrecognised checkpoint layout"):
        load_model(tmp_path / "odd.pth")


def _imports(path: Path) -> set[str]:
    """Absolute names of the rexnet modules ``path`` imports (relative imports resolved)."""
    parts = ("rexnet", *path.relative_to(SRC).with_suffix("").parts)
    package = parts[:-1]  # the package a relative import starts from (also for __init__.py)
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level:
            base = package[: len(package) - node.level + 1]
            out.add(".".join((*base, node.module)) if node.module else ".".join(base))
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("rexnet"):
            out.add(node.module)
    return out


def test_weights_import_only_the_plan_and_base_modules():
    allowed = ("rexnet.weights", "rexnet.plan", "rexnet.errors", "rexnet._")
    for path in (SRC / "weights").glob("*.py"):
        bad = [m for m in _imports(path) if not m.startswith(allowed)]
        assert not bad, f"{path.name} imports {bad}"


def test_deploy_does_not_import_train():
    for path in (SRC / "deploy").glob("*.py"):
        bad = [m for m in _imports(path) if m.startswith("rexnet.train")]
        assert not bad, f"deploy/{path.name} imports {bad}"


def _calls_torch_load(path: Path) -> bool:
    return any(
        isinstance(n, ast.Call)
        and isinstance(n.func, ast.Attribute)
        and n.func.attr == "load"
        and isinstance(n.func.value, ast.Name)
        and n.func.value.id == "torch"
        for n in ast.walk(ast.parse(path.read_text()))
    )


def test_torch_load_is_called_only_by_the_safe_reader():
    calls = [str(p.relative_to(SRC)) for p in SRC.rglob("*.py") if _calls_torch_load(p)]
    assert calls == ["weights/io.py"]
