"""User models: a registry file of named plans that the zoo reads (written by ``rexnet search register``)."""

from __future__ import annotations

import json

import pytest

from rexnet.errors import InputError
from rexnet.plan import ib_plan
from rexnet.zoo import (
    create_model,
    list_models,
    load_user_models,
    read_user_models,
    save_user_model,
    unregister_model,
    user_model_record,
)

PLAN = ib_plan([16, 24, 32], (1, 2, 2), family="search")


@pytest.fixture
def registry(tmp_path):
    names: list[str] = []
    yield tmp_path / "models.json", names
    for n in names:
        unregister_model(n)


def test_saved_model_is_built_by_name_and_survives_a_reload(registry) -> None:
    path, names = registry
    names.append("rexnet_lat_test")
    save_user_model("rexnet_lat_test", PLAN, {"image_size": 32, "latency": {"median_ms": 1.5}}, path=path)
    assert "rexnet_lat_test" in list_models()
    assert create_model("rexnet_lat_test", num_classes=10).plan.out_channels == (16, 24, 32)
    assert user_model_record("rexnet_lat_test", path)["latency"]["median_ms"] == 1.5
    unregister_model("rexnet_lat_test")
    assert "rexnet_lat_test" not in list_models()
    assert load_user_models(path) == ["rexnet_lat_test"]  # what `import rexnet` does with the default file
    assert create_model("rexnet_lat_test").pretrained_cfg["input_size"] == (3, 32, 32)


def test_names_are_checked(registry) -> None:
    path, names = registry
    with pytest.raises(InputError, match="built-in|already registered"):
        save_user_model("rexnet_100", PLAN, {}, path=path)
    with pytest.raises(InputError, match="must match"):
        save_user_model("Bad.Name", PLAN, {}, path=path)
    names.append("rexnet_lat_twice")
    save_user_model("rexnet_lat_twice", PLAN, {}, path=path)
    with pytest.raises(InputError, match="already exists"):
        save_user_model("rexnet_lat_twice", PLAN, {}, path=path)
    save_user_model("rexnet_lat_twice", ib_plan([8, 8, 8], (1, 2, 2)), {}, path=path, overwrite=True)
    assert create_model("rexnet_lat_twice").plan.out_channels == (8, 8, 8)
    assert not path.with_name("models.json.tmp").exists() and list(read_user_models(path)) == ["rexnet_lat_twice"]


def test_a_broken_registry_file_is_a_warning_not_a_crash(tmp_path, caplog) -> None:
    bad = tmp_path / "models.json"
    bad.write_text("{oops")
    assert load_user_models(bad) == [] and "unreadable" in caplog.text
    bad.write_text(json.dumps({"format": 1, "models": {"rexnet_lat_bad": {"plan": {"stem": 3}}}}))
    assert load_user_models(bad) == [] and "rexnet_lat_bad" in caplog.text
    assert load_user_models(tmp_path / "missing.json") == []
    with pytest.raises(InputError, match="not a rexnet registry"):
        bad.write_text("[]")
        read_user_models(bad)
