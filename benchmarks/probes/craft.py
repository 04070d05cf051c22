"""Crafted hostile inputs: IDX and CIFAR files, COCO folders, images, checkpoints, sidecars, FIFOs.

Every file is small on disk; the bombs only *declare* huge sizes (or decompress to at most 1 GB).
"""

from __future__ import annotations

import gzip
import io
import json
import os
import pickle
import shutil
import struct
import zlib
from pathlib import Path
from typing import Any

import numpy as np

IDX_STEMS = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")


# ---- IDX ------------------------------------------------------------------------------------------
def idx_bytes(arr: np.ndarray, code: int = 0x08, shape: tuple[int, ...] | None = None) -> bytes:
    """An IDX file holding ``arr`` with type ``code``; ``shape`` overrides the declared header."""
    shape = arr.shape if shape is None else shape
    head = bytes([0, 0, code, len(shape)]) + b"".join(struct.pack(">I", s % 2**32) for s in shape)
    dt = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}[code]
    return head + arr.astype(dt).tobytes()


def idx_folder(d: Path, n: int = 40, labels: np.ndarray | None = None, **replace: bytes) -> Path:
    """A valid tiny MNIST-layout folder ``d/idx`` (n train / 20 test), with files replaced by ``replace``.

    ``replace`` keys: train_images, train_labels, test_images, test_labels (bytes; a ``.gz``
    variant with key + ``_gz``).
    """
    root = d / "idx"
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    y = np.arange(n) % 10 if labels is None else labels
    files = {
        "train_images": idx_bytes(rng.integers(0, 255, (n, 28, 28))),
        "train_labels": idx_bytes(np.asarray(y)),
        "test_images": idx_bytes(rng.integers(0, 255, (20, 28, 28))),
        "test_labels": idx_bytes(np.arange(20) % 10),
    }
    keys = ("train_images", "train_labels", "test_images", "test_labels")
    for key, stem in zip(keys, IDX_STEMS):
        if key + "_gz" in replace:
            (root / (stem + ".gz")).write_bytes(replace[key + "_gz"])
        else:
            (root / stem).write_bytes(replace.get(key, files[key]))
    return root


def gzip_bomb(header: bytes, zeros: int) -> bytes:
    """gzip of ``header`` followed by ``zeros`` zero bytes (about 1 MB on disk per GB)."""
    buf = io.BytesIO()
    with gzip.GzipFile(fileobj=buf, mode="wb", compresslevel=9) as g:
        g.write(header)
        chunk = bytes(1 << 24)
        left = zeros
        while left > 0:
            g.write(chunk[: min(left, len(chunk))])
            left -= len(chunk)
    return buf.getvalue()


# ---- CIFAR ----------------------------------------------------------------------------------------
def cifar_folder(d: Path, labels: Any = None, data: Any = None, raw: dict[str, bytes] | None = None) -> Path:
    """A tiny CIFAR-10 python folder ``d/cifar`` (10 images per batch) with crafted fields."""
    root = d / "cifar" / "cifar-10-batches-py"
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        batch = {
            b"data": rng.integers(0, 255, (10, 3072)).astype(np.uint8) if data is None else data,
            b"labels": list(range(10)) if labels is None else labels,
        }
        (root / name).write_bytes(pickle.dumps(batch, protocol=2))
    (root / "batches.meta").write_bytes(pickle.dumps({b"label_names": [f"c{i}".encode() for i in range(10)]}))
    for name, content in (raw or {}).items():
        (root / name).write_bytes(content)
    return d / "cifar"


class _Evil:
    """Pickles to ``os.system(touch marker)``: reading it must never run it."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (os.system, (f"touch {self.marker}",))


def evil_pickle(marker: Path) -> bytes:
    """A pickle whose loading would create ``marker``."""
    return pickle.dumps({b"data": _Evil(str(marker)), b"labels": [0]}, protocol=2)


# ---- images ---------------------------------------------------------------------------------------
def png_bytes(width: int, height: int, mode: str = "RGB", seed: int = 0) -> bytes:
    """A PNG of random pixels (8-bit RGB/L/RGBA/P, or 16-bit grayscale ``I;16``)."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    if mode == "I;16":
        img = Image.fromarray(rng.integers(0, 65535, (height, width)).astype(np.uint16))
    else:
        img = Image.fromarray(rng.integers(0, 255, (height, width, 3)).astype(np.uint8)).convert(mode)
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def image_pair_16bit(d: Path, n: int = 4) -> None:
    """``a{i}.png`` 8-bit grayscale and ``b{i}.png`` the same pixels as 16-bit (v * 257); ``white.png``."""
    from PIL import Image

    Image.new("RGB", (32, 32), (255, 255, 255)).save(d / "white.png")
    rng = np.random.default_rng(1)
    for i in range(n):
        g = (rng.random((32, 32)) * 255).astype(np.uint8)
        g[8 * i : 8 * i + 8] = 255 - g[8 * i : 8 * i + 8]  # images differ in structure, not only noise
        Image.fromarray(g, mode="L").save(d / f"a{i}.png")
        Image.fromarray(g.astype(np.uint16) * 257).save(d / f"b{i}.png")


def image_modes(d: Path) -> None:
    """The same picture as RGB, RGBA (opaque) and palette (exact, 16 colours); ``white.png``."""
    from PIL import Image

    Image.new("RGB", (32, 32), (255, 255, 255)).save(d / "white.png")
    rng = np.random.default_rng(2)
    palette = rng.integers(0, 255, (16, 3)).astype(np.uint8)
    idx = rng.integers(0, 16, (32, 32))
    rgb = Image.fromarray(palette[idx])
    rgb.save(d / "rgb.png")
    rgb.convert("RGBA").save(d / "rgba.png")
    rgb.quantize(colors=16, method=Image.Quantize.FASTOCTREE, dither=Image.Dither.NONE).save(d / "pal.png")


def png_bomb(width: int = 50000, height: int = 50000) -> bytes:
    """A small PNG (tens of KB) whose header declares ``width`` x ``height`` grayscale pixels."""
    raw = zlib.compressobj(9)
    body = b""
    row = bytes(width + 1)
    for _ in range(min(height, 2000)):  # only the first rows; a decoder must refuse before reading them
        body += raw.compress(row)
    body += raw.flush()

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", body) + chunk(b"IEND", b"")


def fifo(path: Path) -> Path:
    """A named pipe at ``path`` (opening it for reading blocks until a writer comes: none will)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    os.mkfifo(path)
    return path


# ---- COCO -----------------------------------------------------------------------------------------
def coco_folder(d: Path, mutate: Any = None, n: int = 4, size: int = 64) -> Path:
    """A tiny COCO folder ``d/coco`` (``instances_{train,val}.json`` + images); ``mutate(js, root)`` crafts it."""
    root = d / "coco"
    for split in ("train", "val"):
        (root / split).mkdir(parents=True, exist_ok=True)
        images, anns = [], []
        for i in range(1, n + 1):
            name = f"{split}_{i}.png"
            (root / split / name).write_bytes(png_bytes(size, size, seed=i))
            images.append({"id": i, "file_name": name, "height": size, "width": size})
            anns.append(
                {
                    "id": i,
                    "image_id": i,
                    "category_id": 1 + i % 2,
                    "bbox": [4.0, 4.0, 20.0, 20.0],
                    "area": 400.0,
                    "iscrowd": 0,
                }
            )
        js: Any = {
            "images": images,
            "annotations": anns,
            "categories": [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}],
        }
        if mutate is not None:
            js = mutate(js, root)
        text = js if isinstance(js, str) else json.dumps(js)
        (root / f"instances_{split}.json").write_text(text)
    return root


# ---- checkpoints, weights, sidecars ------------------------------------------------------------------
def copy_tree(src: Path, dst: Path) -> Path:
    """Copy a fixture folder (a finished run) into the probe's folder."""
    shutil.copytree(src, dst, symlinks=True)
    return dst


def training_checkpoint(fx: Path, dst: Path, edit: Any) -> Path:
    """The fixture run's ``best.pt`` with ``edit(ck)`` applied (in place or returning a new object)."""
    import torch

    ck = torch.load(fx / "run" / "checkpoints" / "best.pt", map_location="cpu", weights_only=True)
    new = edit(ck)
    dst.parent.mkdir(parents=True, exist_ok=True)
    torch.save(ck if new is None else new, dst)
    return dst


def nan_weights(ck: dict[str, Any]) -> None:
    """Fill every floating tensor of a checkpoint's model with NaN."""
    for v in ck["model"].values():
        if v.is_floating_point():
            v.fill_(float("nan"))


def read_safetensors(path: Path) -> tuple[dict[str, Any], bytes]:
    """A safetensors file's header (parsed) and its data bytes."""
    raw = path.read_bytes()
    n = struct.unpack("<Q", raw[:8])[0]
    return json.loads(raw[8 : 8 + n]), raw[8 + n :]


def write_safetensors(path: Path, header: dict[str, Any] | bytes, data: bytes, declared: int | None = None) -> Path:
    """Write a safetensors file with a crafted header (``declared`` overrides its length field)."""
    head = header if isinstance(header, bytes) else json.dumps(header).encode()
    n = len(head) if declared is None else declared
    path.write_bytes(struct.pack("<Q", n) + head + data)
    return path


def edit_plan(fx: Path, dst: Path, edit: Any) -> Path:
    """The fixture weights with ``edit(plan_dict)`` applied to the metadata plan."""
    header, data = read_safetensors(fx / "w.safetensors")
    plan = json.loads(header["__metadata__"]["plan"])
    edit(plan)
    header["__metadata__"]["plan"] = json.dumps(plan)
    header["__metadata__"].pop("model", None)  # no registered name to fall back on: the plan must be used
    return write_safetensors(dst, header, data)


def retype_tensors(fx: Path, dst: Path, dtype: str) -> Path:
    """The fixture weights with every float tensor stored as ``dtype`` (``I8`` or ``BOOL``), 1 byte each."""
    header, data = read_safetensors(fx / "w.safetensors")
    out, parts, offset = {"__metadata__": header["__metadata__"]}, [], 0
    for name, t in header.items():
        if name == "__metadata__":
            continue
        count = int(np.prod(t["shape"])) if t["shape"] else 1
        if t["dtype"] in ("F32", "F16", "BF16"):
            blob, kind = (np.arange(count) % 3 - 1).astype(np.int8).tobytes(), dtype
            if dtype == "BOOL":
                blob = (np.arange(count) % 2).astype(np.uint8).tobytes()
        else:
            blob, kind = data[t["data_offsets"][0] : t["data_offsets"][1]], t["dtype"]
        out[name] = {"dtype": kind, "shape": t["shape"], "data_offsets": [offset, offset + len(blob)]}
        parts.append(blob)
        offset += len(blob)
    return write_safetensors(dst, out, b"".join(parts))


def sidecar(fx: Path, d: Path, edit: Any = None, text: str | None = None) -> Path:
    """``d/m.onnx`` (the fixture export) with its ``m.json`` sidecar crafted by ``edit`` or replaced by ``text``."""
    shutil.copy(fx / "model.onnx", d / "m.onnx")
    meta = json.loads((fx / "model.json").read_text())
    if edit is not None:
        meta = edit(meta) or meta
    (d / "m.json").write_text(text if text is not None else json.dumps(meta))
    return d / "m.onnx"
