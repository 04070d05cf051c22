"""Loading a detection checkpoint trusts none of its metadata (issue 23): fields checked, network costed."""

from __future__ import annotations

import pytest
import torch

from rexnet.cli import main
from rexnet.detection.checkpoint import load_detector
from rexnet.errors import CheckpointError, ResourceError

_CFG = dict(arch="ssdlite", backbone="rexnet_060", image_size=64)


@pytest.fixture
def good(tiny_checkpoint):
    return tiny_checkpoint


def _save(tmp_path, ck, **changes):
    path = tmp_path / "bad.pt"
    torch.save({**ck, **changes}, path)
    return path


def test_a_valid_checkpoint_loads(good):
    model, meta = load_detector(good[1])
    assert meta["class_names"] == ["a", "b", "c"] and not model.training


@pytest.mark.parametrize(
    "changes, words",
    [
        (dict(num_classes="4"), "field 'num_classes' is '4'"),
        (dict(num_classes=0), "field 'num_classes' is 0"),
        (dict(class_names=["a", "b"]), "field 'class_names' holds 2 entries, expected 3"),
        (dict(class_names=[1, 2, 3]), "field 'class_names'"),
        (dict(cat_ids=["1", "2", "3"]), "field 'cat_ids'"),
        (dict(epoch=-1), "field 'epoch' is -1"),
        (dict(config=["not", "a", "dict"]), "field 'config' is a list"),
        (dict(config={**_CFG, "image_size": "abc"}), "bad config"),
        (dict(config={**_CFG, "backbone": "rexnet_999"}), "config.backbone"),
        (dict(model=[1, 2]), "field 'model' is not a state dict"),
    ],
)
def test_bad_metadata_fields_are_named(good, tmp_path, changes, words):
    with pytest.raises(CheckpointError, match="bad.pt") as e:
        load_detector(_save(tmp_path, good[0], **changes))
    assert words in str(e.value)


def test_the_network_is_costed_before_it_is_built(good, tmp_path, monkeypatch):
    import rexnet.detection.checkpoint as mod

    def boom(*a, **k):
        raise AssertionError("built before the cost check")

    monkeypatch.setattr(mod, "build_detector", boom)
    cfg = {**good[0]["config"], "image_size": 200_000}  # a 200000 x 200000 input: terabytes of activations
    with pytest.raises(ResourceError, match="refusing to build it"):
        load_detector(_save(tmp_path, good[0], config=cfg))
    k = 1_000_000_000  # a billion classes: refused as a field before any costing
    names = ["x"] * 3
    with pytest.raises(CheckpointError, match="num_classes"):
        load_detector(_save(tmp_path, good[0], num_classes=k, class_names=names))


@pytest.mark.parametrize("dtype", [torch.int8, torch.bool])
def test_integer_or_bool_tensors_are_refused_not_cast(good, tmp_path, dtype):
    sd = dict(good[0]["model"])
    key = next(k for k, v in sd.items() if v.is_floating_point() and v.dim() == 4)
    sd[key] = sd[key].to(dtype)
    with pytest.raises(CheckpointError, match=f"integers or booleans.*{key}"):
        load_detector(_save(tmp_path, good[0], model=sd))


def test_nan_weights_and_misshapen_tensors_are_refused(good, tmp_path, capsys):
    sd = dict(good[0]["model"])
    key = next(k for k, v in sd.items() if v.is_floating_point())
    sd[key] = torch.full_like(sd[key], float("nan"))
    path = _save(tmp_path, good[0], model=sd)
    with pytest.raises(CheckpointError, match="non-finite weights"):
        load_detector(path)
    assert main(["detect", "predict", str(path), str(path), "-o", str(tmp_path)]) == 2
    assert "non-finite weights" in capsys.readouterr().err
    sd = dict(good[0]["model"])
    sd[key] = torch.zeros(3)
    with pytest.raises(CheckpointError, match="do not fit"):
        load_detector(_save(tmp_path, good[0], model=sd))
