"""Family ``data``: crafted IDX and CIFAR files and COCO folders."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from . import craft
from .common import DETECT, TRAIN, cli, marker, needs_warning, not_read
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

        return cli(f"cifar {name}", "data", run, setup=setup, check=marker, quick=quick)

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
        (root / split).mkdir(parents=True, exist_ok=True)
        (root / split / "bomb.png").write_bytes(craft.png_bomb())
    js["images"][0]["file_name"] = "bomb.png"
    js["images"][0]["height"] = js["images"][0]["width"] = 50000
    return js
