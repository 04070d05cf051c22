"""The one image decoder: every reader of an image file (the folder loader, ``eval``, ``predict``,
detection's COCO data and ``detect predict``) goes through :func:`read_image`.

One function means one set of rules:

* **Special files are refused** (a FIFO would block the read forever): :func:`rexnet._files.check_regular_file`.
* **One pixel limit, checked on the header before decoding** (:data:`MAX_PIXELS`): a 29 KB PNG that
  declares 50000x50000 px is a :class:`~rexnet.errors.ResourceError`, not a 7.5 GB allocation.
* **One conversion to 8-bit RGB**, the same on every path: 16-bit and 32-bit integer greyscale are
  rescaled (PIL's own ``convert`` clips them at 255, i.e. all white), palette images with a
  transparent index go through RGBA, and RGBA, LA, CMYK, ``1`` and ``L`` images are converted by
  PIL's ``convert("RGB")`` (alpha is dropped, as torchvision's ``ImageFolder`` does).

Example:
    >>> import tempfile, pathlib
    >>> from PIL import Image
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "grey16.png"
    >>> Image.fromarray(__import__("numpy").full((4, 4), 65535, "uint16")).save(p)
    >>> read_image(p).getpixel((0, 0))
    (255, 255, 255)
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ._files import check_regular_file
from .errors import CorruptImageError, ResourceError, RexnetError

__all__ = ["MAX_PIXELS", "read_image", "read_image_tensor", "to_rgb"]

#: The largest image (width x height) any reader decodes: 2**27 px, e.g. 11585 x 11585 (384 MiB as 8-bit
#: RGB, 1.5 GiB as the float tensor a model takes). Checked on the header, before any pixel is decoded.
MAX_PIXELS = 2**27


def read_image(path: str | os.PathLike, *, max_pixels: int | None = None) -> Image.Image:
    """Decode an image file into an 8-bit RGB PIL image, under the pixel limit.

    Args:
        path: The image file.
        max_pixels: Refuse images with more pixels (default :data:`MAX_PIXELS`).

    Raises:
        InputError: Missing, a folder, or a special file (FIFO, device, socket).
        ResourceError: The header declares more than ``max_pixels`` pixels (nothing is decoded).
        CorruptImageError: Not an image, or a truncated or corrupt one.
    """
    limit = MAX_PIXELS if max_pixels is None else int(max_pixels)
    p = check_regular_file(path, "image")
    try:
        with _open(p) as img:
            _check_pixels(p, img.size, limit)
            img.load()  # a full decode, so a truncated file fails here and not in a transform
            return to_rgb(img)
    except RexnetError:  # ours (a ValueError too): already says what is wrong
        raise
    except (OSError, SyntaxError, ValueError, EOFError, Image.UnidentifiedImageError) as e:
        raise CorruptImageError(f"cannot read image {p}: {type(e).__name__}: {e}") from None


_pil_limit = threading.Lock()


def _open(path: Path) -> Image.Image:
    """``Image.open`` (header only) with PIL's own bomb check off: ours, with its message, is the one that decides.

    PIL's limit is a process-wide setting, hence the lock while it is lifted for the header read.
    """
    with _pil_limit:
        saved = Image.MAX_IMAGE_PIXELS
        Image.MAX_IMAGE_PIXELS = None
        try:
            return Image.open(path)
        finally:
            Image.MAX_IMAGE_PIXELS = saved


def _check_pixels(path: Path, size: tuple[int, int], limit: int) -> None:
    w, h = size
    if w <= 0 or h <= 0:
        raise CorruptImageError(f"image {path} declares an empty size {w}x{h}")
    if w * h > limit:
        raise ResourceError(
            f"image {path} declares {w}x{h} = {w * h:,} pixels (about {w * h * 3 / 2**30:,.1f} GiB decoded), "
            f"over the limit of {limit:,} pixels; refusing to decode it (downscale it first)"
        )


def to_rgb(img: Image.Image) -> Image.Image:
    """An 8-bit RGB copy of a decoded PIL image, rescaling high-bit-depth greyscale (see the module docstring)."""
    if img.mode.startswith("I;16") or img.mode in ("I", "F"):
        img = _to_8bit(img)
    elif img.mode == "P" and "transparency" in img.info:
        img = img.convert("RGBA")  # PIL warns when a palette image with transparency goes straight to RGB
    return img.convert("RGB")  # a copy even for RGB: the caller's file (and image) is closed next


def _to_8bit(img: Image.Image) -> Image.Image:
    """16-bit, 32-bit integer or float greyscale -> 8-bit ``L``, scaled by the type's full range."""
    a = np.asarray(img).astype(np.float64)
    if img.mode.startswith("I;16"):
        top = 65535.0
    elif img.mode == "F":
        top = 1.0 if a.size and np.nanmax(a) <= 1.0 else 255.0  # float images are [0, 1] or [0, 255]
    else:  # "I": 16-bit data some readers (PGM, older Pillow PNG) widen to 32-bit
        top = 65535.0 if a.max(initial=0) > 255 else 255.0
    a = np.nan_to_num(a, nan=0.0, posinf=top, neginf=0.0)
    return Image.fromarray(np.clip(np.rint(a * (255.0 / top)), 0, 255).astype(np.uint8))


def read_image_tensor(path: str | os.PathLike, *, max_pixels: int | None = None) -> torch.Tensor:
    """:func:`read_image` as a uint8 ``(3, H, W)`` tensor (what detection models take, divided by 255)."""
    rgb = np.asarray(read_image(path, max_pixels=max_pixels))
    return torch.from_numpy(rgb.copy()).permute(2, 0, 1).contiguous()
