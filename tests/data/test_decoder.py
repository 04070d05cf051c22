"""The one image decoder (rexnet._images): every image kind gives the same pixels on every reading path
(folder loader, predict, detection COCO data, detect predict), one pixel limit before decoding, FIFOs refused."""

from __future__ import annotations

import json
import os
import struct
import threading
import time
import zlib

import numpy as np
import pytest
import torch
from PIL import Image

from rexnet import _images
from rexnet._images import read_image, read_image_tensor
from rexnet.data import SafeImageFolder, SkippedImage
from rexnet.data.evaluation import predict_images
from rexnet.detection.data import CocoFolder
from rexnet.detection.inference import predict_image
from rexnet.errors import CorruptImageError, InputError, ResourceError

RNG = np.random.default_rng(0)
GREY = RNG.integers(0, 256, (6, 5), dtype=np.uint8)
COLOUR = RNG.integers(0, 256, (6, 5, 3), dtype=np.uint8)


def _kinds() -> dict[str, tuple[Image.Image, np.ndarray]]:
    """name -> (image to save, the RGB pixels every path must return)."""
    grey16 = (GREY.astype(np.uint16) * 257).astype(np.uint16)  # 8-bit value v -> 16-bit v * 257, back to v
    palette = Image.fromarray(COLOUR).quantize(colors=16)
    pal_rgb = np.asarray(palette.convert("RGB"))
    pal_t = palette.copy()
    pal_t.info["transparency"] = 0
    rgba = np.dstack([COLOUR, np.full((6, 5), 7, np.uint8)])
    cmyk = Image.fromarray(COLOUR).convert("CMYK")
    return {
        "rgb": (Image.fromarray(COLOUR), COLOUR),
        "grey": (Image.fromarray(GREY), np.repeat(GREY[..., None], 3, 2)),
        "grey16": (Image.fromarray(grey16), np.repeat(GREY[..., None], 3, 2)),
        "palette": (palette, pal_rgb),
        "palette_transparent": (pal_t, pal_rgb),
        "rgba": (Image.fromarray(rgba, "RGBA"), COLOUR),  # alpha dropped, colour kept
        "grey_alpha": (Image.fromarray(np.dstack([GREY, GREY]), "LA"), np.repeat(GREY[..., None], 3, 2)),
        "cmyk": (cmyk, np.asarray(cmyk.convert("RGB"))),
    }


def _save(img: Image.Image, path) -> None:
    if img.mode == "P" and "transparency" in img.info:
        img.save(path, transparency=img.info["transparency"])
    else:
        img.save(path)


def _four_paths(path, root) -> dict[str, np.ndarray]:
    """The pixels each reader hands on for the image at ``path`` (inside ``root/c/``)."""
    out = {"read_image": np.asarray(read_image(path))}
    folder = SafeImageFolder(root)
    out["folder"] = np.asarray(folder[folder.samples.index((str(path), 0))][0])
    seen = []

    def capture(img):
        seen.append(np.asarray(img))
        return torch.zeros(3, 2, 2)

    res = predict_images(lambda x: torch.zeros(len(x), 2), [path], capture)
    assert "top" in res[0]
    out["predict"] = seen[0]
    coco = {
        "images": [{"id": 1, "file_name": f"c/{os.path.basename(path)}"}],
        "annotations": [],
        "categories": [{"id": 1, "name": "x"}],
    }
    (root.parent / "ann.json").write_text(json.dumps(coco))
    out["coco"] = CocoFolder(root, root.parent / "ann.json").load_image(1).permute(1, 2, 0).numpy()
    out["detect_predict"] = _detect_predict_input(path)
    return out


class _Recorder(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.images: list[torch.Tensor] = []

    def forward(self, images):
        self.images += images
        return [dict(boxes=torch.zeros(0, 4), scores=torch.zeros(0), labels=torch.zeros(0, dtype=torch.int64))]


def _detect_predict_input(path) -> np.ndarray:
    rec = _Recorder()
    assert predict_image(rec, path, None, ["x"]) == []
    return (rec.images[0] * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()


@pytest.mark.parametrize("kind", list(_kinds()))
@pytest.mark.parametrize("fmt", ["png", "tiff"])
def test_every_kind_gives_the_same_pixels_on_every_path(tmp_path, kind, fmt):
    img, expected = _kinds()[kind]
    if fmt == "png" and img.mode == "CMYK":
        fmt = "jpg"  # PNG has no CMYK; JPEG is lossy, so compare the paths with each other only
    root = tmp_path / "data"
    (root / "c").mkdir(parents=True)
    path = root / "c" / f"{kind}.{fmt}"
    _save(img, path)
    got = _four_paths(path, root)
    first = got["read_image"]
    assert first.dtype == np.uint8 and first.shape == (6, 5, 3)
    for name, pixels in got.items():
        assert np.array_equal(pixels, first), f"{name} differs from read_image for {kind}.{fmt}"
    if fmt != "jpg":
        assert np.array_equal(first, expected)


def test_16bit_png_is_rescaled_not_saturated(tmp_path):
    """The probe's example: predict saturated 16-bit PNGs to white; now every path rescales them."""
    a = np.array([[0, 257, 32896, 65535]], np.uint16)
    Image.fromarray(a).save(tmp_path / "g.png")
    assert Image.open(tmp_path / "g.png").mode.startswith("I;16")
    assert np.asarray(read_image(tmp_path / "g.png"))[0, :, 0].tolist() == [0, 1, 128, 255]
    # variant: a 32-bit integer image holding 16-bit data (what PGM and older Pillow PNG readers give)
    Image.fromarray(a.astype(np.int32), "I").save(tmp_path / "g32.tiff")
    assert np.asarray(read_image(tmp_path / "g32.tiff"))[0, :, 0].tolist() == [0, 1, 128, 255]
    # variant: 16-bit colour and colour + alpha PNGs (PIL cannot write them: built by hand)
    for colour_type, channels in ((2, 3), (6, 4), (4, 2)):
        rows = np.repeat(a[0][:, None], channels, 1).astype(">u2")
        (tmp_path / "c16.png").write_bytes(_png(4, 1, b"\0" + rows.tobytes(), bit_depth=16, colour_type=colour_type))
        assert np.asarray(read_image(tmp_path / "c16.png"))[0].tolist() == [[v] * 3 for v in (0, 1, 128, 255)]


def _png(width: int, height: int, raw: bytes, bit_depth: int = 8, colour_type: int = 2) -> bytes:
    """A PNG built by hand: its header says ``width x height``, whatever ``raw`` (filtered rows) holds."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, colour_type, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b"")


def _png_declaring(width: int, height: int) -> bytes:
    """A tiny PNG whose header declares ``width x height`` 8-bit RGB pixels (a few KB of zeros follow)."""
    return _png(width, height, b"\0" * 200_000)


@pytest.fixture
def bomb(tmp_path):
    root = tmp_path / "data"
    (root / "c").mkdir(parents=True)
    Image.fromarray(COLOUR).save(root / "c" / "ok.png")
    path = root / "c" / "bomb.png"
    path.write_bytes(_png_declaring(50000, 50000))
    assert path.stat().st_size < 30_000
    return path


def test_pixel_bomb_is_refused_before_decoding_on_every_path(bomb, monkeypatch):
    """The probe's example: a 29 KB PNG declaring 50000x50000 px made detect predict allocate 7.5 GB."""

    def no_decode(self, *a, **k):
        raise AssertionError("decoded an image over the pixel limit")

    monkeypatch.setattr(Image.Image, "load", no_decode)
    root = bomb.parent.parent
    t0 = time.perf_counter()
    for read in (read_image, read_image_tensor, _detect_predict_input):
        with pytest.raises(ResourceError, match=r"50000x50000 = 2,500,000,000 pixels"):
            read(bomb)
    with pytest.raises(ResourceError, match="50000x50000"):
        predict_images(lambda x: x, [bomb], lambda im: im)
    (root.parent / "ann.json").write_text(
        json.dumps(
            {
                "images": [{"id": 1, "file_name": "c/bomb.png"}],
                "annotations": [],
                "categories": [{"id": 1, "name": "x"}],
            }
        )
    )
    with pytest.raises(ResourceError, match="50000x50000"):
        CocoFolder(root, root.parent / "ann.json").load_image(1)
    with pytest.raises(ResourceError, match="50000x50000"):
        SafeImageFolder(root, strict=True)[0]
    skipped = SafeImageFolder(root)[0]  # the training loader skips it and reports why
    assert isinstance(skipped, SkippedImage) and "ResourceError" in skipped.reason
    assert time.perf_counter() - t0 < 5


def test_pixel_limit_is_one_setting(tmp_path, monkeypatch):
    """Variant: the limit is one module constant (and a keyword); a 6x5 image passes 30 px and fails 29."""
    Image.fromarray(COLOUR).save(tmp_path / "a.png")
    assert read_image(tmp_path / "a.png", max_pixels=30).size == (5, 6)
    with pytest.raises(ResourceError, match="over the limit of 29 pixels"):
        read_image(tmp_path / "a.png", max_pixels=29)
    monkeypatch.setattr(_images, "MAX_PIXELS", 29)
    with pytest.raises(ResourceError):
        _detect_predict_input(tmp_path / "a.png")


def _in_thread(fn, timeout: float = 10.0):
    box: dict = {}

    def run():
        try:
            box["value"] = fn()
        except BaseException as e:  # noqa: BLE001 - handed to the test
            box["error"] = e

    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(timeout)
    assert not t.is_alive(), "blocked on a FIFO"
    return box


def test_fifo_is_refused_without_blocking(tmp_path):
    fifo = tmp_path / "x.png"
    os.mkfifo(fifo)
    box = _in_thread(lambda: read_image(fifo))
    assert isinstance(box["error"], InputError) and "FIFO" in str(box["error"])
    box = _in_thread(lambda: predict_images(lambda x: x, [fifo], lambda im: im))
    assert "FIFO" in box["value"][0]["error"]  # one entry per image, as for a missing file
    box = _in_thread(lambda: _detect_predict_input(fifo))
    assert isinstance(box["error"], InputError)


def test_corrupt_and_missing_images(tmp_path):
    Image.fromarray(COLOUR).save(tmp_path / "a.png")
    data = (tmp_path / "a.png").read_bytes()
    (tmp_path / "cut.png").write_bytes(data[: len(data) // 2])
    with pytest.raises(CorruptImageError, match="cut.png"):
        read_image(tmp_path / "cut.png")
    (tmp_path / "text.png").write_text("not an image")
    with pytest.raises(CorruptImageError, match="text.png"):
        read_image(tmp_path / "text.png")
    with pytest.raises(InputError, match="not found"):
        read_image(tmp_path / "none.png")
