"""Pretrained weights through the huggingface_hub cache, offline: the tests build the cache folder themselves
(``models--org--name/snapshots/<rev>/...`` and ``refs/<name>``) and block every socket."""

import socket

import pytest
import torch

import rexnet
from rexnet.cli import main
from rexnet.errors import CheckpointError, InputError
from rexnet.weights import from_our_layout, write_safetensors
from rexnet.zoo import hub_cache_dir, hub_file, load_model

from ..conftest import randomize_bn

X = torch.randn(1, 3, 64, 64)
COMMIT = "0123456789abcdef0123456789abcdef01234567"


def _cache_folder(cache, repo_id, revision="main", commit=COMMIT):
    """The snapshot folder of ``repo_id`` in a hub cache laid out as huggingface_hub lays it out."""
    root = cache / f"models--{repo_id.replace('/', '--')}"
    (root / "refs").mkdir(parents=True, exist_ok=True)
    (root / "refs" / revision).write_text(commit)
    snap = root / "snapshots" / commit
    snap.mkdir(parents=True, exist_ok=True)
    return snap


@pytest.fixture
def no_network(monkeypatch):
    """Every attempt to resolve a host or open a connection is refused and recorded; the test fails if one
    was made (even when a library caught the refusal)."""
    attempts = []

    def refuse(*args, **kwargs):
        attempts.append(args)
        raise AssertionError(f"a test touched the network: {args}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    yield attempts
    assert not attempts, f"network touched: {attempts}"


@pytest.fixture
def cache(tmp_path, monkeypatch, no_network):  # noqa: ARG001 (requested for its socket block)
    """An empty hub cache under tmp, HF_HUB_OFFLINE=1, sockets blocked."""
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf_home"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return tmp_path / "hub"


@pytest.fixture(scope="module")
def reference():
    torch.manual_seed(0)
    return randomize_bn(rexnet.create_model("rexnet_100")).eval()


def _put_timm_file(cache, reference, repo_id="timm/rexnet_100.nav_in1k"):
    snap = _cache_folder(cache, repo_id)
    write_safetensors(from_our_layout(reference.state_dict(), reference.plan, "timm"), snap / "model.safetensors")
    return snap


def test_cache_dir_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.delenv("HUGGINGFACE_HUB_CACHE", raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "home"))
    assert hub_cache_dir() == tmp_path / "home" / "hub"
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "c"))
    assert hub_cache_dir() == tmp_path / "c"


def test_pretrained_true_reads_timms_file_from_the_cache_and_converts_it(cache, reference):
    _put_timm_file(cache, reference)
    model = rexnet.create_model("rexnet_100", pretrained=True).eval()
    tagged = rexnet.create_model("rexnet_100.nav_in1k", pretrained=True, num_classes=3)
    with torch.no_grad():
        torch.testing.assert_close(model(X), reference(X))
    assert tagged.num_classes == 3  # the hub head is dropped for fine-tuning, the backbone kept
    torch.testing.assert_close(tagged.final_conv.conv.weight, reference.final_conv.conv.weight)
    # a model name where a file goes (what `rexnet finetune --pretrained rexnet_100` passes) reads the same
    named = rexnet.create_model("rexnet_100", pretrained="rexnet_100.nav_in1k", num_classes=4)
    torch.testing.assert_close(named.stem.conv.weight, reference.stem.conv.weight)


def test_hf_hub_folder_with_a_revision(cache, tmp_path):
    source = randomize_bn(rexnet.create_model("rexnet_130", num_classes=2)).eval()
    snap = _cache_folder(cache, "someone/cats", revision="v1")
    source.save_pretrained(tmp_path / "out", label_names=["tabby", "tux"])
    for f in ("config.json", "model.safetensors"):
        (snap / f).write_bytes((tmp_path / "out" / f).read_bytes())
    model = rexnet.create_model("hf-hub:someone/cats@v1", pretrained=True).eval()
    assert model.pretrained_cfg["label_names"] == ["tabby", "tux"]
    with torch.no_grad():
        torch.testing.assert_close(model(X), source(X))
    shape_only = rexnet.create_model("hf-hub:someone/cats@v1")  # timm's rule: the config, random weights
    assert shape_only.num_classes == 2 and not torch.equal(shape_only.stem.conv.weight, source.stem.conv.weight)
    with pytest.raises(CheckpointError, match="someone/cats@v2"):  # no such revision in the cache
        rexnet.create_model("hf-hub:someone/cats@v2", pretrained=True)


def test_no_cache_names_the_repo_the_file_and_the_cache_path(cache):
    with pytest.raises(CheckpointError) as e:
        rexnet.create_model("rexnet_150", pretrained=True)
    msg = str(e.value)
    assert "timm/rexnet_150.nav_in1k" in msg and "model.safetensors" in msg and "HF_HUB_OFFLINE" in msg
    assert str(cache / "models--timm--rexnet_150.nav_in1k" / "snapshots") in msg
    with pytest.raises(CheckpointError, match="timm/rexnet_200.nav_in1k"):
        hub_file("timm/rexnet_200.nav_in1k")
    with pytest.raises(InputError, match="org/name"):
        hub_file("not-a-repo")
    with pytest.raises(InputError, match="rexnet_lite_100 has no published weights"):
        rexnet.create_model("rexnet_lite_100", pretrained=True)


def test_cli_pretrained_name_gives_the_hint(cache, tmp_path, capsys):
    code = main(["finetune", "--pretrained", "rexnet_100", "--out", str(tmp_path / "run"), "--epochs", "1"])
    err = capsys.readouterr().err
    assert code == 2
    assert "timm/rexnet_100.nav_in1k" in err and "model.safetensors" in err and str(cache) in err
    assert "checkpoint not found: rexnet_100" not in err


def test_load_model_of_a_hub_snapshot_folder(cache, tmp_path):
    source = rexnet.create_model("rexnet_100", num_classes=3).eval()
    snap = _cache_folder(cache, "me/three")
    source.save_pretrained(tmp_path / "o")
    for f in ("config.json", "model.safetensors"):
        (snap / f).write_bytes((tmp_path / "o" / f).read_bytes())
    model, meta = load_model(snap)
    assert meta.num_classes == 3 and meta.name == "rexnet_100"
