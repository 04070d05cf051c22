"""load_model on crafted files: plans and fields from metadata are checked and costed before a model is built."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from rexnet import model as model_module
from rexnet.errors import CheckpointError, ResourceError
from rexnet.plan import rexnet_plan
from rexnet.weights import save_training_checkpoint
from rexnet.zoo import create_model, get_plan, load_model

SMALL = rexnet_plan(0.6)


@pytest.fixture(scope="module")
def state() -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in create_model("rexnet_060", num_classes=10).state_dict().items()}


@pytest.fixture
def no_build(monkeypatch):
    """Fail the test if a model is built: the refusal must come first."""

    def refuse(*a, **k):
        raise AssertionError("a model was built from a plan that should have been refused")

    monkeypatch.setattr(model_module.RexNet, "__init__", refuse)


def _huge_plan(channels: int = 30_000_000) -> dict:
    d = SMALL.to_dict()
    d["final_conv"]["out_channels"] = channels
    return d


def _weights(path: Path, sd: dict, **meta) -> Path:
    save_file(sd, str(path), metadata={k: v if isinstance(v, str) else json.dumps(v) for k, v in meta.items()})
    return path


def test_30m_channel_plan_in_safetensors_metadata_is_refused_before_building(tmp_path, state, no_build):
    """The probe's example: the model (22 GB) was built before the tensor shapes were compared."""
    path = _weights(tmp_path / "w.safetensors", state, format="rexnet", plan=_huge_plan())
    t0 = time.perf_counter()
    with pytest.raises(ResourceError, match=r"parameters.*GiB") as e:
        load_model(path)
    assert time.perf_counter() - t0 < 5 and str(path) in str(e.value)


def test_a_plan_that_fits_in_memory_but_not_the_tensors_is_refused_before_building(tmp_path, state, no_build):
    """Variant: a modest plan that is not the tensors' plan (a tampered file) is a CheckpointError."""
    path = _weights(tmp_path / "w.safetensors", state, format="rexnet", plan=rexnet_plan(1.0).to_dict())
    with pytest.raises(CheckpointError, match="do not fit the plan its metadata records"):
        load_model(path)


@pytest.mark.parametrize(
    "plan, match",
    [
        ("{not json", r"metadata 'plan' is not JSON"),
        ("[1, 2]", r"metadata 'plan' is a list, expected an object"),
        ({**SMALL.to_dict(), "surprise": 1}, r"metadata 'plan' has unknown key\(s\) surprise"),
        ({**SMALL.to_dict(), "stem": {**SMALL.to_dict()["stem"], "x": 1}}, r"not a valid plan.*'x'"),  # variant
        ({"stem": SMALL.to_dict()["stem"]}, r"field 'plan.blocks' is None, expected a non-empty list"),
        ({**SMALL.to_dict(), "stem": {**SMALL.to_dict()["stem"], "stride": 0}}, r"plan.stem.stride' is 0"),
        ({**SMALL.to_dict(), "stem": {**SMALL.to_dict()["stem"], "out_channels": "abc"}}, r"stem.out_channels"),
    ],
)
def test_crafted_plan_metadata_names_the_file_and_field(tmp_path, state, no_build, plan, match):
    path = _weights(tmp_path / "w.safetensors", state, format="rexnet", plan=plan)
    with pytest.raises(CheckpointError, match=match) as e:
        load_model(path)
    assert str(path) in str(e.value)


def test_a_recorded_plan_of_our_own_still_loads(tmp_path, state):
    """The checks let a genuine searched-plan file through (no name, its plan in the metadata)."""
    path = _weights(tmp_path / "w.safetensors", state, format="rexnet", plan=SMALL.to_dict())
    model, meta = load_model(path)
    assert model.plan == SMALL and meta.num_classes == 10


@pytest.mark.parametrize("dtype", [torch.int8, torch.bool, torch.int32])
def test_integer_and_bool_tensors_are_refused_not_cast(tmp_path, state, dtype):
    """The probe's example: int8 or bool tensors were cast to float and loaded (the run then went NaN)."""
    sd = dict(state)
    key = next(k for k in sd if k.endswith("conv.weight") or k.endswith(".weight"))
    sd[key] = sd[key].to(dtype)
    path = _weights(tmp_path / "w.safetensors", sd, format="rexnet", model="rexnet_060")
    with pytest.raises(CheckpointError, match=rf"{key} \({dtype}\).*does not cast them"):
        load_model(path)
    with pytest.raises(CheckpointError, match="integers or booleans"):  # the fine-tuning path too
        create_model("rexnet_060", pretrained=path, num_classes=10)


def _training(path: Path, sd: dict, **fields) -> Path:
    state = dict(
        model=sd,
        optimizer={},
        scheduler={},
        epoch=1,
        step_in_epoch=0,
        history=[],
        config={"image_size": 48},
        model_name="rexnet_060",
        num_classes=10,
    )
    state.update(fields)
    return save_training_checkpoint(state, path)


@pytest.mark.parametrize(
    "fields, error, match",
    [
        ({"plan": _huge_plan()}, ResourceError, r"parameters"),
        ({"num_classes": 10**12}, CheckpointError, r"field 'num_classes' is 1000000000000"),  # variant
        ({"num_classes": "abc"}, CheckpointError, r"field 'num_classes' is 'abc', expected an integer"),
        ({"class_names": ["a", "b"]}, CheckpointError, r"'class_names' holds 2 names for 10 classes"),
        ({"config": {"image_size": "abc"}}, CheckpointError, r"field 'config.image_size' is 'abc'"),
        ({"config": [1, 2]}, CheckpointError, r"field 'config' is a list"),
        ({"model_name": "rexnet_999"}, CheckpointError, r"field 'model_name' names 'rexnet_999'"),
        ({"model_name": 5}, CheckpointError, r"field 'model_name' is int"),
        ({"plan": "[1]"}, CheckpointError, r"metadata 'plan' is a list"),
    ],
)
def test_crafted_training_checkpoint_fields(tmp_path, state, fields, error, match):
    path = _training(tmp_path / "best.pt", state, **fields)
    with pytest.raises(error, match=match) as e:
        load_model(path)
    assert str(path) in str(e.value)


def test_a_genuine_training_checkpoint_still_loads(tmp_path, state):
    path = _training(tmp_path / "best.pt", state, plan=get_plan("rexnet_060").to_dict(), class_names=list("abcdefghij"))
    model, meta = load_model(path)
    assert meta.class_names[2] == "c" and meta.image_size == 48 and model.plan == get_plan("rexnet_060")
