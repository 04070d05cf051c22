"""Nothing downloads: with the network blocked, every builder and reader rexnet calls works offline.

The probe's example: ``rank profile tv:deeplabv3_mobilenet_v3_large`` fetched ImageNet backbone weights
into the torch hub cache (``weights=None`` does not cover ``weights_backbone``); offline it was a URLError.
"""

from __future__ import annotations

import json
import socket
import urllib.request

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision.models._api import WeightsEnum

from rexnet.errors import InputError


class NetworkUsed(AssertionError):
    pass


@pytest.fixture
def offline(monkeypatch):
    """Every way out blocked: sockets, urllib and torch.hub's downloader; the attempts are recorded."""
    attempts: list[str] = []

    def refuse(what):
        def fn(*a, **k):
            attempts.append(what)
            raise NetworkUsed(f"network access through {what}")

        return fn

    monkeypatch.setattr(socket.socket, "connect", refuse("socket.connect"))
    monkeypatch.setattr(socket, "create_connection", refuse("socket.create_connection"))
    monkeypatch.setattr(urllib.request, "urlopen", refuse("urllib.request.urlopen"))
    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", refuse("torch.hub.load_state_dict_from_url"))
    monkeypatch.setattr(torch.hub, "download_url_to_file", refuse("torch.hub.download_url_to_file"))
    # torchvision's weights enum reads from the hub cache without the network when the file is already there
    monkeypatch.setattr(WeightsEnum, "get_state_dict", refuse("torchvision WeightsEnum.get_state_dict"))
    yield attempts
    assert attempts == []


@pytest.mark.parametrize(
    "name",
    [
        "tv:deeplabv3_mobilenet_v3_large",  # the probe's example: weights_backbone defaulted to ImageNet
        "tv:lraspp_mobilenet_v3_large",
        "tv:ssdlite320_mobilenet_v3_large",
        "tv:fasterrcnn_mobilenet_v3_large_320_fpn",
        "tv:mobilenet_v2",
        "tv:quantized_mobilenet_v2",  # variant: the quantization builders take quantize/weights
        "rexnet_100",
    ],
)
def test_profile_builders_download_nothing(offline, name):
    from rexnet.rank.profiler import build_model

    model = build_model(name)
    assert not model.training and sum(p.numel() for p in model.parameters()) > 0


@pytest.mark.parametrize("name", ["tv:r3d_18", "tv:mvit_v2_s", "tv:raft_small"])
def test_video_and_optical_flow_models_are_a_clear_error(offline, name):
    from rexnet.rank.profiler import build_model

    with pytest.raises(InputError, match=r"(video|optical-flow) model: it takes clips or image pairs"):
        build_model(name)


def test_cli_rank_profile_of_a_video_model_exits_2(offline, tmp_path, capsys):
    from rexnet.cli import main

    assert main(["rank-profile", "tv:r3d_18", "--out", str(tmp_path / "p")]) == 2
    assert "video model" in capsys.readouterr().err


def test_entry_points_of_data_weights_and_detection_download_nothing(offline, tmp_path):
    from rexnet.data import build_datasets
    from rexnet.data.evaluation import predict_images
    from rexnet.detection.data import load_detection_data, make_demo_detection, write_coco
    from rexnet.detection.models import DETECTORS, create_detector
    from rexnet.weights import save_weights
    from rexnet.zoo import create_model, load_model

    assert build_datasets("digits", 32).num_classes == 10
    model = create_model("rexnet_060", num_classes=3)
    save_weights(model, tmp_path / "w.safetensors", name="rexnet_060")
    loaded, meta = load_model(tmp_path / "w.safetensors")
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "x.png")
    out = predict_images(loaded, [tmp_path / "x.png"], lambda im: torch.zeros(3, 32, 32))
    assert len(out[0]["top"]) == 3
    write_coco(make_demo_detection("val", image_size=64, num_images=2), tmp_path / "coco", "val")
    ds = load_detection_data(str(tmp_path / "coco"), "val")
    assert json.loads((tmp_path / "coco" / "instances_val.json").read_text())["images"] and ds[0][0].shape[0] == 3
    for arch in DETECTORS:  # every detector builder: torchvision classes with our backbone, never its weights
        assert sum(p.numel() for p in create_detector(arch, "rexnet_060", num_classes=11).parameters()) > 0
