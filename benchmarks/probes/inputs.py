"""Families ``data`` (crafted data files), ``image`` (bombs, FIFOs, odd formats), ``checkpoint`` (crafted
weights, sidecars, ONNX/XML), ``network`` (builders that could download) and ``api`` (the Python API)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from . import craft
from .common import DETECT, TRAIN, agree, api, cli, needs_warning, not_read
from .core import Probe

N = 40  # train images of the crafted IDX sets


def _idx(**replace: Any) -> Any:
    def setup(d: Path, fx: Path) -> None:
        craft.idx_folder(d, n=N, **{k: (v() if callable(v) else v) for k, v in replace.items()})

    return setup


def _labels(values: Any, code: int = 0x08) -> bytes:
    return craft.idx_bytes(np.asarray(values), code)


def idx_probes() -> list[Probe]:
    """MNIST-format files with crafted headers, sizes, types and labels."""
    run = [*TRAIN, "--data", "mnist:idx", "-b", "8", "--out", "r"]
    imgs = np.zeros((N, 28, 28), np.uint8)
    cases = {
        "header 1e9 images": dict(train_images=craft.idx_bytes(imgs, shape=(10**9, 28, 28))),
        "header wraps to 0": dict(train_images=craft.idx_bytes(np.zeros(0, np.uint8), shape=(65536, 65536, 1))),
        "gzip bomb 1GB declared": dict(
            train_images_gz=lambda: craft.gzip_bomb(
                bytes([0, 0, 8, 3]) + b"".join(int(s).to_bytes(4, "big") for s in (1_300_000, 28, 28)), 1_019_200_000
            )
        ),
        "gzip trailing 1GB": dict(train_images_gz=lambda: craft.gzip_bomb(craft.idx_bytes(imgs), 1_000_000_000)),
        "bad magic": dict(train_images=b"\x12\x34\x56\x78" + bytes(100)),
        "ndim 0": dict(train_images=bytes([0, 0, 8, 0])),
        "empty file": dict(train_images=b""),
        "truncated": dict(train_images=craft.idx_bytes(imgs)[:500]),
        "labels float nan": dict(train_labels=_labels(np.full(N, np.nan), 0x0D)),
        "labels float 1.5": dict(train_labels=_labels(np.full(N, 1.5), 0x0D)),
        "labels 255": dict(train_labels=_labels(np.full(N, 255))),
        "labels negative int8": dict(train_labels=_labels(np.full(N, -3), 0x09)),
        "labels count mismatch": dict(train_labels=_labels(np.arange(N + 7) % 10)),
        "images int32": dict(train_images=craft.idx_bytes(imgs.astype(np.int32) + 7, 0x0C)),
        "images 2-D": dict(train_images=craft.idx_bytes(np.zeros((N, 784), np.uint8))),
        "images 1x1 px": dict(train_images=craft.idx_bytes(np.zeros((N, 1, 1), np.uint8))),
        "labels 2-D": dict(train_labels=craft.idx_bytes(np.zeros((N, 2), np.uint8))),
    }
    ps = [cli(f"idx {k}", "data", run, setup=_idx(**v), timeout=120, quick=k in ("header 1e9 images",
              "gzip bomb 1GB declared")) for k, v in cases.items()]  # fmt: skip
    ps.append(cli("idx all labels one class", "data", run, setup=_idx(labels=np.zeros(N, np.int64)),
                  check=needs_warning("single class", "one class", "1 class"), expect="any",
                  note="must warn like the folder path"))  # fmt: skip
    ps.append(cli("idx eval test split header 1e9", "data", ["eval", "-c", "{fx}/run", "--data", "mnist:idx",
                  "--split", "test"], setup=_idx(test_images=craft.idx_bytes(imgs[:20], shape=(10**9, 28, 28))),
                  needs=("run",)))  # fmt: skip
    return ps


def cifar_probes() -> list[Probe]:
    """CIFAR-10 python batches with crafted labels, data and pickles."""
    run = [*TRAIN, "--data", "cifar10:cifar", "-b", "8", "--out", "r"]

    def case(name: str, quick: bool = False, **kw: Any) -> Probe:
        def setup(d: Path, fx: Path) -> None:
            raw = kw.get("raw")
            craft.cifar_folder(d, labels=kw.get("labels"), data=kw.get("data"), raw=raw(d) if raw else None)

        return cli(f"cifar {name}", "data", run, setup=setup, check=_marker, quick=quick)

    return [
        case("label 10", labels=[10] * 10, quick=True),
        case("label -1", labels=[-1] * 10),
        case("label 1e6", labels=[10**6] * 10),
        case("label float nan", labels=[float("nan")] * 10),
        case("label string", labels=["cat"] * 10),
        case("labels too few", labels=[0, 1]),
        case("data wrong size", data=np.zeros((10, 100), np.uint8)),
        case("data float", data=np.full((10, 3072), 0.5)),
        case("evil pickle", raw=lambda d: {"data_batch_1": craft.evil_pickle(d / "PWNED")}),
        case("not a dict", raw=lambda d: {"data_batch_1": __import__("pickle").dumps([1, 2, 3])}),
        case("meta 3 names", raw=lambda d: {"batches.meta": __import__("pickle").dumps({b"label_names": [b"a"] * 3})}),
        case("truncated batch", raw=lambda d: {"test_batch": b"\x80\x02}q\x00"}),
    ]


def _marker(d: Path, res: dict[str, Any]) -> tuple[str, str] | None:
    if (d / "PWNED").exists():
        return "wrong-result", "a crafted pickle ran code"
    return None


def _coco(mutate: Any, **kw: Any) -> Any:
    def setup(d: Path, fx: Path) -> None:
        (d / "outside.png").write_bytes(craft.png_bytes(64, 64, seed=9))
        craft.coco_folder(d, mutate, **kw)

    return setup


def _set(path: str, value: Any) -> Any:
    """A COCO mutation setting ``js[a][i][b] = value`` for the dotted ``path`` (``*`` = every item)."""

    def mutate(js: dict[str, Any], root: Path) -> dict[str, Any]:
        head, *rest = path.split(".")
        if not rest:
            js[head] = value(root) if callable(value) else value
            return js
        for item in js[head]:
            item[rest[0]] = value(root) if callable(value) else value
        return js

    return mutate


def coco_probes() -> list[Probe]:
    """COCO folders with escaping file names, bad boxes, unknown ids and missing lists."""
    run = [*DETECT, "--data", "coco", "--out", "det"]
    cases = {
        "file_name ../": (_set("images.file_name", "../../outside.png"), not_read("../")),
        "file_name absolute": (
            _set("images.file_name", lambda root: str(root.parent / "outside.png")),
            not_read("absolute path"),
        ),
        "string boxes": (_set("annotations.bbox", ["a", "b", "c", "d"]), None),
        "box nan": (_set("annotations.bbox", [float("nan"), 1, 2, 3]), None),
        "box negative size": (_set("annotations.bbox", [4, 4, -20, -20]), None),
        "box 3 numbers": (_set("annotations.bbox", [4, 4, 20]), None),
        "unknown category": (_set("annotations.category_id", 99), None),
        "unknown image id": (_set("annotations.image_id", 99), None),
        "no images": (_set("images", []), None),
        "no categories": (_set("categories", []), None),
        "missing images key": (lambda js, r: {k: v for k, v in js.items() if k != "images"}, None),
        "list not object": (lambda js, r: [js], None),
        "not json": (lambda js, r: "{not json", None),
        "image missing on disk": (_set("images.file_name", "nope.png"), None),
        "declared size wrong": (_set("images.height", 10**9), None),
        "category id string": (_set("categories.id", "x"), None),
    }
    ps = [cli(f"coco {k}", "data", run, setup=_coco(m), check=c, timeout=120, quick=k == "file_name ../")
          for k, (m, c) in cases.items()]  # fmt: skip
    ps.append(cli("coco image bomb", "data", run, setup=_coco(_bomb_in_coco), timeout=120))
    ps.append(
        cli(
            "coco eval file_name ../",
            "data",
            ["detect", "eval", "{fx}/det/checkpoints/best.pt", "--data", "coco"],
            setup=_coco(_set("images.file_name", "../../outside.png")),
            check=not_read("../"),
            needs=("det",),
        )
    )
    return ps


def _bomb_in_coco(js: dict[str, Any], root: Path) -> dict[str, Any]:
    for split in ("train", "val"):
        (root / split / "bomb.png").write_bytes(craft.png_bomb())
    js["images"][0]["file_name"] = "bomb.png"
    js["images"][0]["height"] = js["images"][0]["width"] = 50000
    return js


def _files(**files: Any) -> Any:
    """A setup writing ``name=bytes|callable(d, fx)``; names may hold ``/``; ``fifo`` values make pipes."""

    def setup(d: Path, fx: Path) -> None:
        for name, content in files.items():
            path = d / name.replace("__", "/")
            path.parent.mkdir(parents=True, exist_ok=True)
            if content == "fifo":
                craft.fifo(path)
            elif callable(content):
                content(path, fx)
            else:
                path.write_bytes(content)

    return setup


def _folder_set(extra: dict[str, Any]) -> Any:
    files = {f"imgs__{c}__{i}.png": craft.png_bytes(32, 32, seed=i) for c in ("a", "b") for i in range(4)}
    files.update(extra)
    return _files(**files)


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
            setup=_files(**{"bomb.png": bomb}),
            needs=("run",),
            quick=True,
        ),
        cli(
            "detect predict image bomb",
            "image",
            ["detect", "predict", "{fx}/det/checkpoints/best.pt", "bomb.png", "-o", "o"],
            setup=_files(**{"bomb.png": bomb}),
            needs=("det",),
            quick=True,
        ),
        cli(
            "eval folder with image bomb",
            "image",
            ["eval", "-c", "{fx}/run", "--data", "folder:imgs", "--strict"],
            setup=_folder_set({"imgs__a__bomb.png": bomb}),
            needs=("run",),
        ),
        cli(
            "train folder with image bomb", "image", [*fold, "--strict"], setup=_folder_set({"imgs__a__bomb.png": bomb})
        ),  # fmt: skip
        cli(
            "predict FIFO",
            "image",
            [*pred, "pipe.png"],
            setup=_files(**{"pipe.png": "fifo"}),
            needs=("run",),
            timeout=60,
            quick=True,
        ),
        cli(
            "detect predict FIFO",
            "image",
            ["detect", "predict", "{fx}/det/checkpoints/best.pt", "pipe.png", "-o", "o"],
            setup=_files(**{"pipe.png": "fifo"}),
            needs=("det",),
            timeout=60,
        ),
        cli(
            "train folder with FIFO image",
            "image",
            fold,
            setup=_folder_set({"imgs__a__pipe.png": "fifo"}),
            timeout=60,
            expect="any",
        ),
        cli(
            "eval folder with FIFO image",
            "image",
            ["eval", "-c", "{fx}/run", "--data", "folder:imgs"],
            setup=_folder_set({"imgs__b__pipe.png": "fifo"}),
            needs=("run",),
            timeout=60,
            expect="any",
        ),
        cli("predict /dev/zero", "image", [*pred, "/dev/zero"], needs=("run",), timeout=60),
        cli("predict folder", "image", [*pred, "."], needs=("run",)),
        cli("predict missing", "image", [*pred, "nope.png"], needs=("run",)),
        cli("predict text as png", "image", [*pred, "t.png"], setup=_files(**{"t.png": b"hello"}), needs=("run",)),
        cli("predict empty png", "image", [*pred, "e.png"], setup=_files(**{"e.png": b""}), needs=("run",)),
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
            setup=_files(**{f"imgs__a__{i}.png": craft.png_bytes(32, 32, seed=i) for i in range(6)}),
            check=needs_warning("single class", "one class", "only one class", "1 class"),
            expect="any",
        ),  # fmt: skip
        cli(
            "train --config FIFO",
            "image",
            [*TRAIN, "--config", "cfg.yaml", "--out", "r"],
            setup=_files(**{"cfg.yaml": "fifo"}),
            timeout=60,
            quick=True,
        ),
        cli(
            "finetune --pretrained FIFO",
            "image",
            ["finetune", *TRAIN[1:], "--pretrained", "w.pt", "--out", "r"],
            setup=_files(**{"w.pt": "fifo"}),
            timeout=60,
        ),
        cli(
            "eval -c FIFO",
            "image",
            ["eval", "-c", "ck.pt", "--data", "digits"],
            setup=_files(**{"ck.pt": "fifo"}),
            timeout=60,
        ),
        cli(
            "convert src FIFO",
            "image",
            ["convert", "src.pth", "dst.safetensors"],
            setup=_files(**{"src.pth": "fifo"}),
            timeout=60,
        ),
        cli(
            "rank profile --checkpoint FIFO",
            "image",
            ["rank", "profile", "rexnet_060", "--checkpoint", "ck.pt", "--out", "p"],
            setup=_files(**{"ck.pt": "fifo"}),
            timeout=60,
        ),
        cli(
            "detect eval COCO json FIFO",
            "image",
            ["detect", "eval", "{fx}/det/checkpoints/best.pt", "--data", "coco"],
            setup=_files(**{"coco__instances_val.json": "fifo", "coco__val__x.png": craft.png_bytes(8, 8)}),
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
            setup=_files(**{"ck.pt": "fifo"}),
            timeout=60,
        ),
    ]


def _ck(edit: Any) -> Any:
    return lambda path, fx: craft.training_checkpoint(fx, path, edit)


def _plan(edit: Any) -> Any:
    return lambda path, fx: craft.edit_plan(fx, path, edit)


def _side(edit: Any = None, text: str | None = None) -> Any:
    return lambda d, fx: craft.sidecar(fx, d, edit, text)


def _set_plan(key: str, value: Any) -> Any:
    def edit(plan: dict[str, Any]) -> None:
        if key.startswith("blocks."):
            for b in plan["blocks"]:
                b[key.split(".")[1]] = value
        else:
            plan[key] = value

    return edit


def _huge_plan(plan: dict[str, Any]) -> None:
    for b in plan["blocks"]:
        b["exp_channels"] = 30_000_000
    plan["final_conv"]["out_channels"] = 30_000_000


def checkpoint_probes() -> list[Probe]:
    """Crafted training checkpoints, safetensors weights, sidecars, ONNX and OpenVINO files."""
    ev = ["eval", "--data", "digits", "-c"]
    pr = ["predict", "x.png", "-c"]
    px = {"x.png": craft.png_bytes(32, 32)}
    nan = _ck(craft.nan_weights)
    ps = [
        cli(
            "eval NaN checkpoint",
            "checkpoint",
            [*ev, "nan.pt"],
            setup=_files(**{"nan.pt": nan}),
            needs=("run",),
            quick=True,
        ),
        cli(
            "predict NaN checkpoint",
            "checkpoint",
            [*pr, "nan.pt"],
            setup=_files(**{"nan.pt": nan}, **px),
            needs=("run",),
        ),
        cli(
            "export NaN checkpoint",
            "checkpoint",
            ["export", "rexnet_060", "--checkpoint", "nan.pt", "--out", "m.onnx"],
            setup=_files(**{"nan.pt": nan}),
            needs=("run",),
        ),
        cli(
            "finetune from NaN checkpoint",
            "checkpoint",
            ["finetune", *TRAIN[1:], "--pretrained", "nan.pt", "--out", "r"],
            setup=_files(**{"nan.pt": nan}),
            needs=("run",),
        ),
        cli(
            "eval checkpoint is a tensor",
            "checkpoint",
            [*ev, "t.pt"],
            needs=("run",),
            setup=_files(**{"t.pt": _ck(lambda ck: ck["model"]["stem.conv.weight"])}),
        ),
        cli(
            "eval checkpoint pickle runs code",
            "checkpoint",
            [*ev, "evil.pt"],
            check=_marker,
            setup=lambda d, fx: (d / "evil.pt").write_bytes(craft.evil_pickle(d / "PWNED")),
        ),
        cli(
            "eval truncated checkpoint",
            "checkpoint",
            [*ev, "half.pt"],
            needs=("run",),
            setup=_files(
                **{"half.pt": lambda p, fx: p.write_bytes((fx / "run/checkpoints/best.pt").read_bytes()[:20000])}
            ),
        ),
        cli("eval empty checkpoint", "checkpoint", [*ev, "e.pt"], setup=_files(**{"e.pt": b""})),
        cli("eval text checkpoint", "checkpoint", [*ev, "t.pth"], setup=_files(**{"t.pth": b"not a checkpoint"})),
        cli(
            "eval checkpoint plan stride 0",
            "checkpoint",
            [*ev, "s.pt"],
            needs=("run",),
            setup=_files(**{"s.pt": _ck(lambda ck: [b.update(stride=0) for b in ck["plan"]["blocks"]])}),
        ),
        cli(
            "eval checkpoint plan unknown key",
            "checkpoint",
            [*ev, "u.pt"],
            needs=("run",),
            setup=_files(**{"u.pt": _ck(lambda ck: ck["plan"].update(bogus=1))}),
        ),
        cli(
            "eval checkpoint plan huge",
            "checkpoint",
            [*ev, "h.pt"],
            needs=("run",),
            quick=True,
            setup=_files(**{"h.pt": _ck(lambda ck: _huge_plan(ck["plan"]))}),
        ),
        cli(
            "eval checkpoint 2 class names",
            "checkpoint",
            [*ev, "c.pt"],
            needs=("run",),
            setup=_files(**{"c.pt": _ck(lambda ck: ck.update(class_names=["a", "b"]))}),
        ),
        cli(
            "eval checkpoint image_size abc",
            "checkpoint",
            [*ev, "i.pt"],
            needs=("run",),
            setup=_files(**{"i.pt": _ck(lambda ck: ck["config"].update(image_size="abc"))}),
        ),
        cli(
            "eval checkpoint config list",
            "checkpoint",
            [*ev, "l.pt"],
            needs=("run",),
            setup=_files(**{"l.pt": _ck(lambda ck: ck.update(config=[1, 2]))}),
        ),
        cli(
            "eval checkpoint num_classes -1",
            "checkpoint",
            [*ev, "n.pt"],
            needs=("run",),
            setup=_files(**{"n.pt": _ck(lambda ck: ck.update(num_classes=-1))}),
        ),
        cli(
            "predict checkpoint model_name unknown",
            "checkpoint",
            [*pr, "m.pt"],
            needs=("run",),
            setup=_files(**{"m.pt": _ck(lambda ck: ck.update(model_name="rexnet_999")), **px}),
        ),
        cli(
            "eval safetensors huge plan",
            "checkpoint",
            [*ev, "h.safetensors"],
            needs=("st",),
            quick=True,
            setup=_files(**{"h.safetensors": _plan(_huge_plan)}),
        ),
        cli(
            "eval safetensors plan stride 0",
            "checkpoint",
            [*ev, "s.safetensors"],
            needs=("st",),
            setup=_files(**{"s.safetensors": _plan(_set_plan("blocks.stride", 0))}),
        ),
        cli(
            "eval safetensors plan unknown key",
            "checkpoint",
            [*ev, "u.safetensors"],
            needs=("st",),
            setup=_files(**{"u.safetensors": _plan(_set_plan("bogus", 1))}),
        ),
        cli(
            "eval safetensors plan not json",
            "checkpoint",
            [*ev, "j.safetensors"],
            needs=("st",),
            setup=_files(**{"j.safetensors": lambda p, fx: _meta(fx, p, plan="{not json")}),
        ),
        cli(
            "eval safetensors header 2^60",
            "checkpoint",
            [*ev, "b.safetensors"],
            needs=("st",),
            setup=_files(**{"b.safetensors": lambda p, fx: craft.write_safetensors(p, b"{}", b"", 2**60)}),
        ),
        cli(
            "eval safetensors header garbage",
            "checkpoint",
            [*ev, "g.safetensors"],
            setup=_files(**{"g.safetensors": lambda p, fx: craft.write_safetensors(p, b"\xff\xfe{", b"")}),
        ),
        cli(
            "eval safetensors offsets out of range",
            "checkpoint",
            [*ev, "o.safetensors"],
            needs=("st",),
            setup=_files(**{"o.safetensors": _offsets}),
        ),
        cli(
            "eval safetensors int8 tensors",
            "checkpoint",
            [*ev, "i8.safetensors"],
            needs=("st",),
            setup=_files(**{"i8.safetensors": lambda p, fx: craft.retype_tensors(fx, p, "I8")}),
        ),
        cli(
            "eval safetensors bool tensors",
            "checkpoint",
            [*ev, "b.safetensors"],
            needs=("st",),
            setup=_files(**{"b.safetensors": lambda p, fx: craft.retype_tensors(fx, p, "BOOL")}),
        ),
        cli(
            "convert safetensors int8",
            "checkpoint",
            ["convert", "i8.safetensors", "o.safetensors"],
            needs=("st",),
            setup=_files(**{"i8.safetensors": lambda p, fx: craft.retype_tensors(fx, p, "I8")}),
        ),
        cli(
            "convert text file", "checkpoint", ["convert", "t.pth", "o.safetensors"], setup=_files(**{"t.pth": b"text"})
        ),
        cli(
            "convert huge plan",
            "checkpoint",
            ["convert", "h.safetensors", "o.safetensors"],
            needs=("st",),
            setup=_files(**{"h.safetensors": _plan(_huge_plan)}),
        ),
        cli("detect eval classification checkpoint", "checkpoint", ["detect", "eval", "{fx}/run"], needs=("run",)),
        cli(
            "detect predict text checkpoint",
            "checkpoint",
            ["detect", "predict", "t.pt", "x.png", "-o", "o"],
            setup=_files(**{"t.pt": b"text", **px}),
        ),
        cli(
            "detect export classification checkpoint",
            "checkpoint",
            ["detect", "export", "{fx}/run", "-o", "d.onnx"],
            needs=("run",),
        ),
        cli("eval detection checkpoint", "checkpoint", [*ev, "{fx}/det/checkpoints/best.pt"], needs=("det",)),
    ]
    return ps + _export_file_probes()


def _meta(fx: Path, path: Path, **kv: str) -> None:
    header, data = craft.read_safetensors(fx / "w.safetensors")
    header["__metadata__"].update(kv)
    craft.write_safetensors(path, header, data)


def _offsets(path: Path, fx: Path) -> None:
    header, data = craft.read_safetensors(fx / "w.safetensors")
    first = next(k for k in header if k != "__metadata__")
    header[first]["data_offsets"] = [0, 10**12]
    craft.write_safetensors(path, header, data)


def _export_file_probes() -> list[Probe]:
    """ONNX and OpenVINO files and their sidecars, crafted."""
    ev = ["eval", "--data", "digits", "-c", "m.onnx"]
    return [
        cli(
            "onnx without sidecar",
            "checkpoint",
            ev,
            needs=("onnx",),
            check=needs_warning("sidecar", "224"),
            setup=lambda d, fx: (d / "m.onnx").write_bytes((fx / "model.onnx").read_bytes()),
            quick=True,
        ),
        cli("onnx sidecar not json", "checkpoint", ev, needs=("onnx",), setup=_side(text="{oops")),
        cli("onnx sidecar list", "checkpoint", ev, needs=("onnx",), setup=_side(text="[1, 2]")),
        cli(
            "onnx sidecar image_size abc",
            "checkpoint",
            ev,
            needs=("onnx",),
            setup=_side(lambda m: m.update(image_size="abc")),
        ),
        cli(
            "onnx sidecar image_size 0",
            "checkpoint",
            ev,
            needs=("onnx",),
            setup=_side(lambda m: m.update(image_size=0)),
        ),
        cli(
            "onnx sidecar 2 class names for 10",
            "checkpoint",
            ev,
            needs=("onnx",),
            setup=_side(lambda m: m.update(class_names=["a", "b"])),
        ),
        cli("onnx sidecar std 0", "checkpoint", ev, needs=("onnx",), setup=_side(lambda m: m.update(std=[0, 0, 0]))),
        cli(
            "onnx sidecar mean of 2",
            "checkpoint",
            ev,
            needs=("onnx",),
            setup=_side(lambda m: m.update(mean=[0.5, 0.5])),
        ),
        cli("onnx empty", "checkpoint", ev, setup=_files(**{"m.onnx": b""})),
        cli("onnx text", "checkpoint", ev, setup=_files(**{"m.onnx": b"this is not onnx"})),
        cli(
            "onnx truncated",
            "checkpoint",
            ev,
            needs=("onnx",),
            setup=lambda d, fx: (d / "m.onnx").write_bytes((fx / "model.onnx").read_bytes()[:4096]),
        ),  # fmt: skip
        cli("onnx two inputs", "checkpoint", ev, setup=lambda d, fx: _odd_onnx(d / "m.onnx", "two")),
        cli("onnx fixed 17px input", "checkpoint", ev, setup=lambda d, fx: _odd_onnx(d / "m.onnx", "fixed")),
        cli(
            "predict onnx text",
            "checkpoint",
            ["predict", "x.png", "-c", "m.onnx"],
            setup=_files(**{"m.onnx": b"nope", "x.png": craft.png_bytes(32, 32)}),
        ),
        cli(
            "xml without bin",
            "checkpoint",
            ["eval", "--data", "digits", "-c", "ov/rexnet_060.xml"],
            needs=("ov",),
            setup=lambda d, fx: (craft.copy_tree(fx / "ov", d / "ov"), (d / "ov/rexnet_060.bin").unlink()),
        ),
        cli(
            "xml garbage",
            "checkpoint",
            ["eval", "--data", "digits", "-c", "m.xml"],
            setup=_files(**{"m.xml": b"<net><oops", "m.bin": b"\0" * 16}),
        ),
        cli(
            "xml bin truncated",
            "checkpoint",
            ["eval", "--data", "digits", "-c", "ov/rexnet_060.xml"],
            needs=("ov",),
            setup=lambda d, fx: (
                craft.copy_tree(fx / "ov", d / "ov"),
                (d / "ov/rexnet_060.bin").write_bytes(b"\0" * 64),
            ),
        ),  # fmt: skip
    ]


def _odd_onnx(path: Path, kind: str) -> None:
    """A tiny ONNX model with two inputs, or one fixed 17x17 input (both unusable as a classifier)."""
    import onnx
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, 17, 17] if kind == "fixed" else None)
    y = helper.make_tensor_value_info("logits", TensorProto.FLOAT, None)
    if kind == "two":
        x2 = helper.make_tensor_value_info("input2", TensorProto.FLOAT, None)
        graph = helper.make_graph([helper.make_node("Add", ["input", "input2"], ["logits"])], "g", [x, x2], [y])
    else:
        graph = helper.make_graph([helper.make_node("GlobalAveragePool", ["input"], ["p"]),
                                   helper.make_node("Flatten", ["p"], ["logits"])], "g", [x], [y])  # fmt: skip
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    path.with_suffix(".json").write_text(json.dumps({"model": "rexnet_060", "num_classes": 10, "image_size": 32}))


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
    setup = _api_files
    return [
        api(f"api {k}", "api", v, setup=setup, timeout=90, needs=("run", "st", "rank"), check=_marker,
            protect=["rank/*", "run/checkpoints/*", "keep.bin"], quick=k in ("TrainConfig lr nan", "load_weights int8"))
        for k, v in cases.items()
    ]  # fmt: skip


def _api_files(d: Path, fx: Path) -> None:
    craft.retype_tensors(fx, d / "int8.safetensors", "I8")
    craft.edit_plan(fx, d / "h.safetensors", _huge_plan)
    craft.training_checkpoint(fx, d / "nan.pt", craft.nan_weights)
    craft.copy_tree(fx / "rank", d / "rank")
    craft.copy_tree(fx / "run", d / "run")
    (d / "w.safetensors").write_bytes((fx / "w.safetensors").read_bytes())
    (d / "keep.bin").write_text("another program's file")
    craft.idx_folder(d, train_images=craft.idx_bytes(np.zeros((4, 28, 28), np.uint8), shape=(10**9, 28, 28)))
    craft.cifar_folder(d, labels=[10] * 10)
