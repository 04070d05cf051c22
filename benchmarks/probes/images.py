"""Family ``image``: image bombs, FIFOs and other special files as inputs, odd image formats."""

from __future__ import annotations

from typing import Any

from . import craft
from .common import TRAIN, agree, cli, files, needs_warning
from .core import Probe


def _folder_set(extra: dict[str, Any]) -> Any:
    """``imgs/{train,val}/<class>/`` with ten classes (as many as the fixture run's model has) and ``extra``;
    the crafted file goes into the split the command reads (val for eval, train for train)."""
    made = {
        f"imgs__{split}__{c}__{i}.png": craft.png_bytes(32, 32, seed=i)
        for split in ("train", "val")
        for c in "abcdefghij"
        for i in range(2)
    }
    made.update(extra)
    return files(**made)


def image_probes() -> list[Probe]:
    """Image bombs, FIFOs, odd files and decodings that must agree across formats."""
    bomb = craft.png_bomb()
    fold = [*TRAIN, "--data", "folder:imgs", "-b", "4", "--out", "r"]
    pred = ["predict", "-c", "{fx}/run"]
    return [
        cli(
            "predict image bomb",
            "image",
            [*pred, "bomb.png"],
            setup=files(**{"bomb.png": bomb}),
            needs=("run",),
            quick=True,
        ),
        cli(
            "detect predict image bomb",
            "image",
            ["detect", "predict", "{fx}/det/checkpoints/best.pt", "bomb.png", "-o", "o"],
            setup=files(**{"bomb.png": bomb}),
            needs=("det",),
            quick=True,
        ),
        cli(
            "eval folder with image bomb",
            "image",
            ["eval", "-c", "{fx}/run", "--data", "folder:imgs", "--strict"],
            setup=_folder_set({"imgs__val__a__bomb.png": bomb}),
            needs=("run",),
        ),
        cli(
            "train folder with image bomb",
            "image",
            [*fold, "--strict"],
            setup=_folder_set({"imgs__train__a__bomb.png": bomb}),
        ),  # fmt: skip
        cli(
            "predict FIFO",
            "image",
            [*pred, "pipe.png"],
            setup=files(**{"pipe.png": "fifo"}),
            needs=("run",),
            timeout=60,
            quick=True,
        ),
        cli(
            "detect predict FIFO",
            "image",
            ["detect", "predict", "{fx}/det/checkpoints/best.pt", "pipe.png", "-o", "o"],
            setup=files(**{"pipe.png": "fifo"}),
            needs=("det",),
            timeout=60,
        ),
        cli(
            "train folder with FIFO image",
            "image",
            fold,
            setup=_folder_set({"imgs__train__a__pipe.png": "fifo"}),
            timeout=60,
            expect="any",
        ),
        cli(
            "eval folder with FIFO image",
            "image",
            ["eval", "-c", "{fx}/run", "--data", "folder:imgs"],
            setup=_folder_set({"imgs__val__b__pipe.png": "fifo"}),
            needs=("run",),
            timeout=60,
            expect="any",
        ),
        cli("predict /dev/zero", "image", [*pred, "/dev/zero"], needs=("run",), timeout=60),
        cli("predict folder", "image", [*pred, "."], needs=("run",)),
        cli("predict missing", "image", [*pred, "nope.png"], needs=("run",)),
        cli("predict text as png", "image", [*pred, "t.png"], setup=files(**{"t.png": b"hello"}), needs=("run",)),
        cli("predict empty png", "image", [*pred, "e.png"], setup=files(**{"e.png": b""}), needs=("run",)),
        cli(
            "predict 16-bit PNG",
            "image",
            [
                "predict",
                "-c",
                "{fx}/rnd.safetensors",
                "--json",
                "-k",
                "10",
                *[f"{c}{i}.png" for c in "ab" for i in range(4)],
                "white.png",
            ],
            setup=lambda d, fx: craft.image_pair_16bit(d),
            needs=("rnd",),
            expect="ok",
            quick=True,
            check=agree([(f"a{i}.png", f"b{i}.png") for i in range(4)], ("a0.png", "white.png")),
        ),
        cli(
            "predict RGBA/palette",
            "image",
            [
                "predict",
                "-c",
                "{fx}/rnd.safetensors",
                "--json",
                "-k",
                "10",
                "rgb.png",
                "rgba.png",
                "pal.png",
                "white.png",
            ],
            setup=lambda d, fx: craft.image_modes(d),
            needs=("rnd",),
            expect="ok",
            check=agree([("rgb.png", "rgba.png"), ("rgb.png", "pal.png")], ("rgb.png", "white.png")),
        ),
        cli(
            "train folder one class",
            "image",
            fold,
            setup=files(**{f"imgs__a__{i}.png": craft.png_bytes(32, 32, seed=i) for i in range(6)}),
            check=needs_warning("single class", "one class", "only one class", "1 class"),
            expect="any",
        ),  # fmt: skip
        cli(
            "train --config FIFO",
            "image",
            [*TRAIN, "--config", "cfg.yaml", "--out", "r"],
            setup=files(**{"cfg.yaml": "fifo"}),
            timeout=60,
            quick=True,
        ),
        cli(
            "finetune --pretrained FIFO",
            "image",
            ["finetune", *TRAIN[1:], "--pretrained", "w.pt", "--out", "r"],
            setup=files(**{"w.pt": "fifo"}),
            timeout=60,
        ),
        cli(
            "eval -c FIFO",
            "image",
            ["eval", "-c", "ck.pt", "--data", "digits"],
            setup=files(**{"ck.pt": "fifo"}),
            timeout=60,
        ),
        cli(
            "convert src FIFO",
            "image",
            ["convert", "src.pth", "dst.safetensors"],
            setup=files(**{"src.pth": "fifo"}),
            timeout=60,
        ),
        cli(
            "rank profile --checkpoint FIFO",
            "image",
            ["rank", "profile", "rexnet_060", "--checkpoint", "ck.pt", "--out", "p"],
            setup=files(**{"ck.pt": "fifo"}),
            timeout=60,
        ),
        cli(
            "detect eval COCO json FIFO",
            "image",
            ["detect", "eval", "{fx}/det/checkpoints/best.pt", "--data", "coco"],
            setup=files(**{"coco__instances_val.json": "fifo", "coco__val__x.png": craft.png_bytes(8, 8)}),
            needs=("det",),
            timeout=60,
        ),
        cli(
            "cifar batch FIFO",
            "image",
            [*TRAIN, "--data", "cifar10:cifar", "-b", "8", "--out", "r"],
            setup=lambda d, fx: (
                craft.cifar_folder(d),
                (d / "cifar/cifar-10-batches-py/data_batch_2").unlink(),
                craft.fifo(d / "cifar/cifar-10-batches-py/data_batch_2"),
            ),
            timeout=60,
        ),
        cli(
            "idx file FIFO",
            "image",
            [*TRAIN, "--data", "mnist:idx", "-b", "8", "--out", "r"],
            setup=lambda d, fx: (
                craft.idx_folder(d),
                (d / "idx/train-labels-idx1-ubyte").unlink(),
                craft.fifo(d / "idx/train-labels-idx1-ubyte"),
            ),
            timeout=60,
        ),
        cli(
            "export --checkpoint FIFO",
            "image",
            ["export", "rexnet_060", "--checkpoint", "ck.pt", "--out", "m.onnx"],
            setup=files(**{"ck.pt": "fifo"}),
            timeout=60,
        ),
    ]
