"""The dataset and activation registries: one entry is all a new dataset or nonlinearity needs."""

from __future__ import annotations

import pytest
import torch

from rexnet.data import DATASETS, DatasetSource, build_datasets, data_help, resolve_data
from rexnet.data.build import _InMemory
from rexnet.errors import RexnetError


def _tiny(folder):
    images = torch.randint(0, 255, (40, 3, 8, 8), dtype=torch.uint8)
    labels = torch.arange(40) % 4
    return _InMemory("tiny", images, labels, list(range(30)), list(range(30, 40)), ["a", "b", "c", "d"])


def test_a_new_dataset_is_one_registry_entry(monkeypatch):
    monkeypatch.setitem(DATASETS, "tiny", DatasetSource("four random classes", _tiny))
    assert "tiny" in data_help()
    bundle = build_datasets("tiny", 16, model="rexnet_100")
    assert (len(bundle.train), len(bundle.val), bundle.num_classes) == (30, 10, 4)
    x, y = bundle.val[0]
    assert x.shape == (3, 16, 16) and 0 <= y < 4


@pytest.mark.parametrize(
    "data,expected",
    [
        ("digits", ("digits", None)),
        ("fashion-mnist", ("fashion-mnist", None)),
        ("mnist:/some/dir", ("mnist", "/some/dir")),
        ("cifar100:/c", ("cifar100", "/c")),
    ],
)
def test_resolve_data(data, expected):
    assert resolve_data(data) == expected


@pytest.mark.parametrize(
    "data,message",
    [
        ("digits:/x", "embedded and takes no folder"),
        ("cifar10", "needs a folder: cifar10:DIR"),
        ("/no/such/folder", "not a folder; expected one of: digits | shapes"),
    ],
)
def test_resolve_data_errors(data, message):
    with pytest.raises(RexnetError, match=message):
        resolve_data(data)


def test_bare_folder_is_an_image_folder(tmp_path):
    assert resolve_data(str(tmp_path)) == ("folder", str(tmp_path))


def test_every_activation_builds_its_module_and_rank_study_resolves_it():
    from rexnet.layers import make_activation
    from rexnet.plan import ACTIVATIONS
    from rexnet.rank import resolve_activation

    x = torch.linspace(-3, 3, 13)
    for name, act in ACTIVATIONS.items():
        module = make_activation(name)
        assert type(module).__name__ == act.module and act.label
        if name != "leaky_relu":  # the study passes its own slope
            assert torch.equal(resolve_activation(name)(x), module(x))
