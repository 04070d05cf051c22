"""Families ``network`` (builders that could download) and ``api`` (the Python API, hostile arguments)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from . import craft
from .common import DETECT, api, cli, huge_plan, marker
from .core import Probe

TV = [
    "deeplabv3_mobilenet_v3_large", "lraspp_mobilenet_v3_large", "fcn_resnet50", "fasterrcnn_mobilenet_v3_large_fpn",
    "maskrcnn_resnet50_fpn", "keypointrcnn_resnet50_fpn", "retinanet_resnet50_fpn", "ssdlite320_mobilenet_v3_large",
    "ssd300_vgg16", "raft_small", "r3d_18", "mvit_v1_b", "mobilenet_v2", "quantized_mobilenet_v2",
]  # fmt: skip


def network_probes() -> list[Probe]:
    """Builders that download weights by default: every entry point must pass weights=None."""
    ps = [
        cli(
            f"rank profile tv:{m}",
            "network",
            ["rank", "profile", f"tv:{m}", "-b", "2", "--image-size", "64", "--out", "p"],
            expect="any",
            timeout=150,
            quick=m == "deeplabv3_mobilenet_v3_large",
        )
        for m in TV
    ]
    ps += [
        cli(
            "rank profile --compare tv:fcn_resnet50",
            "network",
            [
                "rank",
                "profile",
                "rexnet_060",
                "--compare",
                "tv:fcn_resnet50",
                "-b",
                "2",
                "--image-size",
                "64",
                "--out",
                "p",
            ],
            expect="any",
            timeout=150,
        ),
        cli(
            "bench tiny with torchvision peers",
            "network",
            [
                "bench",
                "--tiny",
                "--torchvision",
                "--no-timm",
                "--no-int8",
                "--no-bf16",
                "--no-onnx",
                "--no-openvino",
                "--no-train",
                "--out",
                "b",
            ],
            expect="any",
            timeout=240,
        ),
        cli(
            "detect fasterrcnn_fpn builds offline",
            "network",
            [*DETECT, "--arch", "fasterrcnn_fpn", "--epochs", "1", "--out", "det"],
            expect="any",
            timeout=240,
        ),
        api(
            "api detection builders offline",
            "network",
            """
            from rexnet.detection import fasterrcnn_rexnet_fpn, maskrcnn_rexnet_fpn, ssdlite_rexnet
            for f in (fasterrcnn_rexnet_fpn, maskrcnn_rexnet_fpn, ssdlite_rexnet):
                f("rexnet_060", num_classes=3)
            print("built")
            """,
            expect="ok",
            timeout=150,
        ),
    ]
    return ps


def api_probes() -> list[Probe]:
    """The Python API with hostile arguments (each in a fresh interpreter)."""
    cases = {
        "create_model unknown": "import rexnet; rexnet.create_model('rexnet_999')",
        "create_model num_classes 0": "import rexnet; rexnet.create_model('rexnet_060', num_classes=0)",
        "create_model num_classes -1": "import rexnet; rexnet.create_model('rexnet_060', num_classes=-1)",
        "create_model in_chans 0": "import rexnet; rexnet.create_model('rexnet_060', in_chans=0)",
        "create_model drop_rate nan": "import rexnet; rexnet.create_model('rexnet_060', drop_rate=float('nan'))",
        "create_model pretrained FIFO": "import os, rexnet; os.mkfifo('p.pth'); rexnet.create_model('rexnet_060', "
        "pretrained='p.pth')",
        "create_model pretrained missing": "import rexnet; rexnet.create_model('rexnet_060', pretrained='nope.pth')",
        "create_model pretrained int8": "import rexnet; rexnet.create_model('rexnet_060', "
        "pretrained='int8.safetensors')",
        "load_weights int8": "import rexnet; m = rexnet.create_model('rexnet_060'); "
        "rexnet.load_weights(m, 'int8.safetensors')",
        "load_model huge plan": "import rexnet; rexnet.load_model('h.safetensors')",
        "load_model NaN checkpoint": "import rexnet; rexnet.load_model('nan.pt')",
        "load_model FIFO": "import os, rexnet; os.mkfifo('p.pt'); rexnet.load_model('p.pt')",
        "rexnet_plan width nan": "from rexnet.plan import rexnet_plan; rexnet_plan(width_mult=float('nan'))",
        "rexnet_plan width -1": "from rexnet.plan import rexnet_plan; rexnet_plan(width_mult=-1.0)",
        "rexnet_plan width 1e6": "from rexnet.plan import rexnet_plan; rexnet_plan(width_mult=1e6)",
        "solve_for_budget nan": "from rexnet.plan import rexnet_plan, solve_for_budget; "
        "solve_for_budget(rexnet_plan, macs=float('nan'))",
        "solve_for_budget -1": "from rexnet.plan import rexnet_plan, solve_for_budget; "
        "solve_for_budget(rexnet_plan, macs=-1)",
        "solve_for_budget 1e30": "from rexnet.plan import rexnet_plan, solve_for_budget; "
        "solve_for_budget(rexnet_plan, macs=1e30)",
        "count_macs image 0": "import rexnet; rexnet.count_macs(rexnet.get_plan('rexnet_100'), 0)",
        "count_macs image nan": "import rexnet; rexnet.count_macs(rexnet.get_plan('rexnet_100'), float('nan'))",
        "transforms image 0": "import rexnet; rexnet.transforms('rexnet_100', image_size=0)",
        "TrainConfig lr nan": "from rexnet.train import TrainConfig; TrainConfig(lr=float('nan'))",
        "TrainConfig epochs True": "from rexnet.train import TrainConfig; TrainConfig(epochs=True)",
        "TrainConfig threads 100000": "from rexnet.train import TrainConfig; TrainConfig(threads=100000)",
        "DetectConfig lr inf": "from rexnet.detection.engine import DetectConfig; DetectConfig(lr=float('inf'))",
        "train out onto rank study": "from rexnet.train import TrainConfig, train; train(TrainConfig(model="
        "'rexnet_060', epochs=1, train_limit=64, val_limit=64, progress=False, tensorboard=False, out='rank'))",
        "export_onnx onto checkpoint": "import rexnet; from rexnet.deploy import export_onnx; export_onnx("
        "rexnet.create_model('rexnet_060'), 'run/checkpoints/best.pt', image_size=32)",
        "read_idx 1e9 header": "from rexnet.data.idx import read_idx; read_idx('idx/train-images-idx3-ubyte')",
        "load_cifar label 10": "from rexnet.data.cifar import load_cifar; load_cifar('cifar')",
        "get_plan unknown": "import rexnet; rexnet.get_plan('nope')",
        "convert_checkpoint onto existing": "import rexnet; rexnet.convert_checkpoint('w.safetensors', 'keep.bin')",
    }
    # the snippets that read files get them (and the fixtures they are made from); the rest start bare
    with_files = ("pretrained", "load_", "train out", "export_onnx", "read_idx", "load_cifar", "convert_checkpoint")
    return [
        api(f"api {k}", "api", v, timeout=90, check=marker, quick=k in ("TrainConfig lr nan", "load_weights int8"),
            **(dict(setup=api_files, needs=("run", "st", "rank"), protect=["rank/*", "run/checkpoints/*", "keep.bin"])
               if any(w in k for w in with_files) else {}))
        for k, v in cases.items()
    ]  # fmt: skip


def api_files(d: Path, fx: Path) -> None:
    craft.retype_tensors(fx, d / "int8.safetensors", "I8")
    craft.edit_plan(fx, d / "h.safetensors", huge_plan)
    craft.training_checkpoint(fx, d / "nan.pt", craft.nan_weights)
    craft.copy_tree(fx / "rank", d / "rank")
    craft.copy_tree(fx / "run", d / "run")
    (d / "w.safetensors").write_bytes((fx / "w.safetensors").read_bytes())
    (d / "keep.bin").write_text("another program's file")
    craft.idx_folder(d, train_images=craft.idx_bytes(np.zeros((4, 28, 28), np.uint8), shape=(10**9, 28, 28)))
    craft.cifar_folder(d, labels=[10] * 10)
