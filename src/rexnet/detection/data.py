"""Detection data: COCO-format folders and an embedded demo set (digits pasted on canvases).

Every dataset yields ``(image, target)`` with ``image`` a float ``(3, H, W)`` tensor in [0, 1] and
``target`` torchvision's dict (``boxes`` xyxy float, ``labels`` 1..K, ``masks`` uint8 ``(N, H, W)``
when the set has them, ``image_id``), and carries its ground truth as a COCO ``dict`` for the
evaluator. Labels are contiguous (0 = background); ``cat_ids[label - 1]`` is the COCO category.

The demo set: the 1,797 handwritten digits scikit-learn ships (8x8, upscaled bicubically to
14-40 px), 1-4 per canvas, tinted and alpha-blended onto a noisy colour-gradient background; the
instance mask is the digit's stroke (alpha > 0.35), the box its extent. Digits of the classifier's
held-out split only appear in the val canvases. Fixed seeds: the same images on every machine.
"""

from __future__ import annotations

import abc
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from .._files import atomic_write, check_regular_file, write_json
from .._images import read_image_tensor
from ..data.embedded import load_digits_split
from ..errors import DataError, InputError, ResourceError
from .coco_check import check_coco

__all__ = [
    "MAX_ANNOTATION_BYTES",
    "DetectionDataset",
    "CocoFolder",
    "make_demo_detection",
    "load_detection_data",
    "write_coco",
    "collate",
]

Target = dict[str, torch.Tensor]
#: The largest annotation file read (COCO 2017 train is 448 MB): json.loads takes several times the size.
MAX_ANNOTATION_BYTES = 2 * 2**30


class DetectionDataset(Dataset, abc.ABC):
    """Base class: subclasses fill ``coco`` (images/annotations/categories) and implement ``load_image``."""

    coco: dict[str, Any]
    has_masks: bool

    def __init__(self) -> None:
        self.cat_ids = [c["id"] for c in self.coco["categories"]]
        self.class_names = [c["name"] for c in self.coco["categories"]]
        self._label_of = {cid: i + 1 for i, cid in enumerate(self.cat_ids)}
        self._anns: dict[int, list[dict[str, Any]]] = {im["id"]: [] for im in self.coco["images"]}
        for a in self.coco["annotations"]:
            self._anns[a["image_id"]].append(a)
        self.image_ids = [im["id"] for im in self.coco["images"]]
        self._images = {im["id"]: im for im in self.coco["images"]}

    @property
    def num_classes(self) -> int:
        """Classes including background (what the detector builders take)."""
        return len(self.cat_ids) + 1

    def __len__(self) -> int:
        return len(self.image_ids)

    @abc.abstractmethod
    def load_image(self, image_id: int) -> torch.Tensor:
        """The image as uint8 ``(3, H, W)`` (each source reads its own files)."""

    @abc.abstractmethod
    def instance_masks(self, image_id: int, anns: list[dict[str, Any]], h: int, w: int) -> torch.Tensor:
        """The annotations' instance masks as uint8 ``(N, H, W)``."""

    def __getitem__(self, i: int) -> tuple[torch.Tensor, Target]:
        image_id = self.image_ids[i]
        img = self.load_image(image_id)
        h, w = img.shape[-2:]
        anns = [a for a in self._anns[image_id] if not a.get("iscrowd", 0) and a["bbox"][2] >= 1 and a["bbox"][3] >= 1]
        boxes = torch.tensor(
            [[x, y, x + bw, y + bh] for x, y, bw, bh in (a["bbox"] for a in anns)], dtype=torch.float32
        )
        target: Target = {
            "boxes": boxes.reshape(-1, 4),
            "labels": torch.tensor([self._label_of[a["category_id"]] for a in anns], dtype=torch.int64),
            "image_id": torch.tensor(image_id),
        }
        if self.has_masks:
            target["masks"] = self.instance_masks(image_id, anns, h, w)
        return img.float() / 255, target


def collate(batch: Sequence[tuple[torch.Tensor, Target]]) -> tuple[list[torch.Tensor], list[Target]]:
    """Detection batches are lists (images may differ in size)."""
    return [b[0] for b in batch], [b[1] for b in batch]


class CocoFolder(DetectionDataset):
    """A COCO-format dataset: ``instances_*.json`` plus the folder holding its ``file_name`` images.

    Args:
        images: Folder of the images.
        annotations: The ``instances_*.json`` file.
        masks: Return instance masks (from polygons or RLE; needs pycocotools).

    Raises:
        InputError: Missing files.
        DataError: A file that is not COCO-format JSON, or whose fields are malformed (see :func:`check_coco`).
    """

    def __init__(self, images: str | os.PathLike, annotations: str | os.PathLike, masks: bool = False) -> None:
        self.root, ann_path = Path(images), Path(annotations)
        if not ann_path.is_file():
            raise InputError(f"annotation file not found: {ann_path}")
        if not self.root.is_dir():
            raise InputError(f"image folder not found: {self.root}")
        check_regular_file(ann_path, "annotation file")
        if ann_path.stat().st_size > MAX_ANNOTATION_BYTES:
            raise ResourceError(
                f"{ann_path} is {ann_path.stat().st_size:,} bytes, over the {MAX_ANNOTATION_BYTES:,} bytes "
                "an annotation file may take"
            )
        try:
            coco = json.loads(ann_path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as e:
            raise DataError(f"{ann_path} is not COCO-format JSON: {e}") from None
        check_coco(coco, ann_path)
        for a in coco["annotations"]:  # COCOeval's area ranges need it; files without it get the box area
            a.setdefault("area", a["bbox"][2] * a["bbox"][3])
        self.coco, self.has_masks = coco, masks
        super().__init__()

    def load_image(self, image_id: int) -> torch.Tensor:
        # the one decoder: pixel limit before decoding, special files refused, 16-bit/palette/CMYK as everywhere
        return read_image_tensor(self.root / self._images[image_id]["file_name"])

    def instance_masks(self, image_id: int, anns: list[dict[str, Any]], h: int, w: int) -> torch.Tensor:
        from pycocotools import mask as mask_utils

        out = torch.zeros(len(anns), h, w, dtype=torch.uint8)
        for j, a in enumerate(anns):
            seg = a.get("segmentation")
            if not seg:
                continue
            try:
                if isinstance(seg, list):
                    rle = mask_utils.merge(mask_utils.frPyObjects(seg, h, w))
                elif isinstance(seg["counts"], list):
                    rle = mask_utils.frPyObjects(seg, h, w)
                else:
                    rle = seg
                out[j] = torch.from_numpy(mask_utils.decode(rle))
            except (TypeError, ValueError, KeyError, IndexError, RuntimeError) as e:  # pycocotools on crafted input
                raise DataError(
                    f"annotation {a.get('id')!r} of image {image_id}: 'segmentation' cannot be decoded as a "
                    f"{h}x{w} mask ({type(e).__name__}: {e})"
                ) from None
        return out


class _DemoSet(DetectionDataset):
    def __init__(self, images: torch.Tensor, masks: list[torch.Tensor], coco: dict[str, Any], has_masks: bool):
        self.images, self.masks, self.coco, self.has_masks = images, masks, coco, has_masks
        super().__init__()

    def load_image(self, image_id: int) -> torch.Tensor:
        return self.images[image_id - 1]

    def instance_masks(self, image_id: int, anns: list[dict[str, Any]], h: int, w: int) -> torch.Tensor:
        return self.masks[image_id - 1]


def _boxes_overlap(a: tuple[int, int, int, int], others: list[tuple[int, int, int, int]]) -> bool:
    x, y, s, t = a
    return any(x < ox + os_ and ox < x + s and y < oy + ot and oy < y + t for ox, oy, os_, ot in others)


def make_demo_detection(
    split: str = "train", *, image_size: int = 128, num_images: int | None = None, seed: int = 0, masks: bool = True
) -> DetectionDataset:
    """The embedded detection set (see the module docstring): 10 classes ``"0"``..``"9"``.

    Args:
        split: ``train`` (default 400 images) or ``val`` (100).
        image_size: Canvas side in pixels.
        num_images: Override the image count.
        seed: Generator seed (the default split uses 0 for train and 1 for val).
        masks: Include instance masks.
    """
    if split not in ("train", "val"):
        raise InputError(f"split must be 'train' or 'val', got {split!r}")
    if image_size < 64:
        raise InputError(f"image_size must be >= 64 for the demo set, got {image_size}")
    digits, labels, train_idx, val_idx = load_digits_split(size=8)
    pool = train_idx if split == "train" else val_idx
    n = num_images if num_images is not None else (400 if split == "train" else 100)
    g = torch.Generator().manual_seed(seed * 2 + (split == "val"))
    glyphs = digits[:, 0].float() / 255  # (N, 8, 8) in [0, 1]
    lo, hi = max(14, image_size // 9), max(20, image_size * 5 // 16)
    images = torch.empty(n, 3, image_size, image_size, dtype=torch.uint8)
    all_masks: list[torch.Tensor] = []
    anns: list[dict[str, Any]] = []
    yy = torch.linspace(0, 1, image_size)[:, None]
    xx = torch.linspace(0, 1, image_size)[None, :]
    for i in range(n):
        c0, c1 = torch.rand(3, 1, 1, generator=g) * 0.5, torch.rand(3, 1, 1, generator=g) * 0.5
        t = (yy + xx) / 2 if torch.rand(1, generator=g) < 0.5 else (yy - xx + 1) / 2
        img = c0 + (c1 - c0) * t + 0.08 * torch.randn(3, image_size, image_size, generator=g)
        placed: list[tuple[int, int, int, int]] = []
        inst: list[torch.Tensor] = []
        for _ in range(int(torch.randint(1, 5, (1,), generator=g))):
            s = int(torch.randint(lo, hi + 1, (1,), generator=g))
            for _try in range(20):
                x, y = (int(v) for v in torch.randint(0, image_size - s + 1, (2,), generator=g))
                if not _boxes_overlap((x, y, s, s), placed):
                    break
            else:
                continue
            k = pool[int(torch.randint(len(pool), (1,), generator=g))]
            alpha = F.interpolate(glyphs[k][None, None], size=(s, s), mode="bicubic", align_corners=False)[0, 0]
            alpha = alpha.clamp(0, 1)
            colour = 0.55 + 0.45 * torch.rand(3, 1, 1, generator=g)
            region = img[:, y : y + s, x : x + s]
            img[:, y : y + s, x : x + s] = region * (1 - alpha) + colour * alpha
            m = torch.zeros(image_size, image_size, dtype=torch.uint8)
            m[y : y + s, x : x + s] = (alpha > 0.35).to(torch.uint8)
            ys, xs = m.nonzero(as_tuple=True)
            if len(ys) == 0:
                continue
            x0, y0, x1, y1 = int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1
            placed.append((x, y, s, s))
            inst.append(m)
            anns.append(
                dict(
                    id=len(anns) + 1,
                    image_id=i + 1,
                    category_id=int(labels[k]) + 1,
                    bbox=[x0, y0, x1 - x0, y1 - y0],
                    area=int(m.sum()),
                    iscrowd=0,
                    segmentation=_mask_to_rle(m),
                )
            )
        images[i] = (img.clamp(0, 1) * 255).round().to(torch.uint8)
        all_masks.append(torch.stack(inst) if inst else torch.zeros(0, image_size, image_size, dtype=torch.uint8))
    coco = dict(
        images=[
            dict(id=i + 1, file_name=f"{split}_{i + 1:05d}.png", height=image_size, width=image_size) for i in range(n)
        ],
        annotations=anns,
        categories=[dict(id=c + 1, name=str(c), supercategory="digit") for c in range(10)],
    )
    return _DemoSet(images, all_masks, coco, masks)


def _mask_to_rle(m: torch.Tensor) -> dict[str, Any]:
    # uncompressed COCO RLE (column-major run lengths, starting with a run of zeros): pure torch
    flat = m.t().reshape(-1)
    change = torch.nonzero(flat[1:] != flat[:-1]).flatten() + 1
    bounds = torch.cat([torch.tensor([0]), change, torch.tensor([flat.numel()])])
    runs = (bounds[1:] - bounds[:-1]).tolist()
    if flat[0] == 1:
        runs = [0] + runs
    return {"size": list(m.shape), "counts": runs}


def write_coco(dataset: DetectionDataset, out_dir: str | os.PathLike, split: str, *, overwrite: bool = False) -> Path:
    """Write a dataset as a COCO-format folder: ``out_dir/instances_{split}.json`` and ``out_dir/{split}/*.png``.

    Every file is written atomically under the output policy (:mod:`rexnet._files`): files this run
    did not write are replaced only with ``overwrite``.

    Raises:
        OutputExistsError: A file in the way, without ``overwrite``.
    """
    import io

    from PIL import Image

    out = Path(out_dir)
    for im in dataset.coco["images"]:
        pixels = dataset.load_image(im["id"]).permute(1, 2, 0).contiguous().numpy()
        buf = io.BytesIO()
        Image.fromarray(pixels).save(buf, format="PNG")
        atomic_write(out / split / im["file_name"], buf.getvalue(), overwrite=overwrite, what="image")
    return write_json(dataset.coco, out / f"instances_{split}.json", overwrite=overwrite, what="annotation file")


def load_detection_data(
    data: str, split: str, *, image_size: int = 128, masks: bool = False, limit: int | None = None
) -> DetectionDataset:
    """``demo`` (the embedded set) or a COCO folder ``DIR`` holding ``instances_{split}.json`` and ``{split}/``
    (also ``annotations/instances_{split}2017.json`` + ``{split}2017/``, the COCO release layout)."""
    if data == "demo":
        n = None if limit is None else limit
        return make_demo_detection(split, image_size=image_size, num_images=n, masks=masks)
    root = Path(data)
    for ann, img in (
        (root / f"instances_{split}.json", root / split),
        (root / "annotations" / f"instances_{split}2017.json", root / f"{split}2017"),
    ):
        if ann.is_file():
            ds = CocoFolder(img, ann, masks=masks)
            if limit is not None:
                ds.image_ids = ds.image_ids[:limit]
            return ds
    raise InputError(
        f"no COCO annotations for split {split!r} under {root}: expected instances_{split}.json "
        f"or annotations/instances_{split}2017.json (or use --data demo)"
    )
