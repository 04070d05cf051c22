"""Using a trained detector: predictions drawn onto images (PNG), and SSDLite to ONNX checked in onnxruntime."""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .._config import check_range
from .._files import atomic_write, atomic_write_paths, check_output
from .._images import read_image_tensor
from ..errors import ExportError, InputError

__all__ = [
    "predict_image",
    "write_demo_image",
    "SSDLiteExport",
    "export_ssdlite_onnx",
    "OnnxCheck",
    "DRAW_SIDE",
    "upscale_for_drawing",
]

DRAW_SIDE = 512  # the drawing's long side is upscaled to at least this, so labels stay readable


def _encode_png(image: torch.Tensor) -> bytes:
    """PNG bytes of a uint8 CHW image, without torchvision 0.29's notice that its codecs move to TorchCodec."""
    from torchvision.io import encode_png

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="The image decoding and encoding", category=DeprecationWarning)
        return encode_png(image).numpy().tobytes()


def write_demo_image(
    out_png: str | os.PathLike, *, image_size: int = 128, index: int = 0, overwrite: bool = False
) -> Path:
    """Write image ``index`` of the embedded detection demo set's val split as a PNG, to try ``predict`` on.

    Raises:
        InputError: ``image_size`` under 64 or a negative ``index``.
        OutputExistsError: ``out_png`` exists, was not written by this run, and ``overwrite`` is false.
    """
    from .data import make_demo_detection

    if index < 0:
        raise InputError(f"--index must be >= 0, got {index}")
    check_output(out_png, overwrite=overwrite, what="demo image")
    ds = make_demo_detection("val", image_size=image_size, num_images=index + 1, masks=False)
    png = _encode_png(ds.load_image(index + 1))
    atomic_write(out_png, png, overwrite=overwrite, what="demo image")
    return Path(out_png)


def upscale_for_drawing(
    img: torch.Tensor, boxes: torch.Tensor, masks: torch.Tensor | None, side: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """``img`` (uint8 CHW), its boxes and masks scaled by a whole factor so the long side is >= ``side``."""
    factor = max(1, -(-side // max(img.shape[-2:])))  # ceil division; nearest keeps the pixels sharp
    if factor == 1:
        return img, boxes, masks
    img = img.repeat_interleave(factor, dim=-2).repeat_interleave(factor, dim=-1)
    if masks is not None:
        masks = masks.repeat_interleave(factor, dim=-2).repeat_interleave(factor, dim=-1)
    return img, boxes * factor, masks


@torch.no_grad()
def predict_image(
    model: nn.Module,
    image: str | os.PathLike,
    out_png: str | os.PathLike | None,
    class_names: list[str],
    *,
    score_thresh: float = 0.5,
    overwrite: bool = False,
) -> list[dict[str, Any]]:
    """Detect objects in one image; with ``out_png``, draw the boxes (and masks) with their labels.

    The drawing is upscaled (nearest, a whole factor) to at least :data:`DRAW_SIDE` px on its long
    side, labels on a filled background; the returned boxes stay in the image's own pixels.

    The PNG is written atomically under the output policy (:mod:`rexnet._files`): an existing file
    this run did not write is refused unless ``overwrite``.

    Returns:
        ``[{"label": name, "score": s, "box": [x0, y0, x1, y1]}, ...]`` above ``score_thresh``.

    Raises:
        InputError: A missing image or a special file (FIFO, device).
        OutputExistsError: ``out_png`` exists, was not written by this run, and ``overwrite`` is false.
        ResourceError: An image over the pixel limit (refused before decoding).
        CorruptImageError: A file that is not a readable image.
    """
    from torchvision.utils import draw_bounding_boxes, draw_segmentation_masks

    check_range("score_thresh (--score-thresh)", score_thresh, 0.0, 1.0)  # also refuses NaN
    if out_png is not None:  # refuse a path in the way before any work
        check_output(out_png, overwrite=overwrite, what="detections image")
    img = read_image_tensor(image)  # the one decoder: pixel limit, FIFOs refused, 16-bit rescaled
    out = model.eval()([img.float() / 255])[0]
    keep = out["scores"] >= score_thresh
    boxes, scores, labels = out["boxes"][keep], out["scores"][keep], out["labels"][keep]
    names = [class_names[int(i) - 1] if 0 < int(i) <= len(class_names) else str(int(i)) for i in labels]
    if out_png is not None:
        masks = out["masks"][keep][:, 0] > 0.5 if "masks" in out and keep.any() else None
        canvas, drawn, masks = upscale_for_drawing(img, boxes, masks, DRAW_SIDE)
        if masks is not None:
            canvas = draw_segmentation_masks(canvas, masks, alpha=0.45)
        text = [f"{n} {s:.2f}" for n, s in zip(names, scores.tolist())]
        canvas = draw_bounding_boxes(
            canvas,
            drawn,
            text,
            colors="red",
            width=2,
            fill_labels=True,
            label_colors="white",
            label_background_colors="red",
        )
        png = _encode_png(canvas)
        atomic_write(out_png, png, overwrite=overwrite, what="detections image")
    return [
        dict(label=n, score=float(s), box=[round(v, 2) for v in b.tolist()]) for n, s, b in zip(names, scores, boxes)
    ]


class SSDLiteExport(nn.Module):
    """SSDLite up to decoded boxes and class probabilities, for a fixed input size (NMS left to the caller).

    Input: float images ``(N, 3, S, S)`` in [0, 1]. Outputs: ``boxes (N, A, 4)`` xyxy in pixels and
    ``scores (N, A, C)`` (softmax, column 0 = background), exactly what torchvision's
    ``SSD.postprocess_detections`` starts from.
    """

    def __init__(self, ssd: nn.Module) -> None:
        super().__init__()
        from torchvision.models.detection.image_list import ImageList

        self.ssd = ssd.eval()
        size = int(ssd.transform.min_size[0])
        self.size = size
        self.register_buffer("mean", torch.tensor(ssd.transform.image_mean).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(ssd.transform.image_std).view(1, 3, 1, 1))
        with torch.no_grad():
            x = torch.zeros(1, 3, size, size)
            feats = list(ssd.backbone(x).values())
            anchors = ssd.anchor_generator(ImageList(x, [(size, size)]), feats)[0]
        self.register_buffer("anchors", anchors)

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = (images - self.mean) / self.std
        head = self.ssd.head(list(self.ssd.backbone(x).values()))
        n = images.shape[0]
        deltas = head["bbox_regression"].reshape(-1, 4)
        boxes = self.ssd.box_coder.decode_single(deltas, self.anchors.repeat(n, 1)).reshape(n, -1, 4)
        boxes = boxes.clamp(0, self.size)
        return boxes, F.softmax(head["cls_logits"], dim=-1)


@dataclass
class OnnxCheck:
    path: Path
    max_abs_diff_boxes: float
    max_abs_diff_scores: float
    batch: int


def export_ssdlite_onnx(
    ssd: nn.Module,
    path: str | os.PathLike,
    *,
    opset: int = 17,
    verify: bool = True,
    batch: int = 2,
    overwrite: bool = False,
) -> OnnxCheck:
    """Export :class:`SSDLiteExport` of ``ssd`` to ONNX (dynamic batch) and compare onnxruntime with eager.

    The file is written atomically under the output policy (:mod:`rexnet._files`) and checked before
    it takes its name: a failed export or check leaves nothing at ``path``.

    Raises:
        InputError: onnx/onnxruntime missing, or outputs differing by more than 1e-3.
        OutputExistsError: ``path`` exists, was not written by this run, and ``overwrite`` is false.
    """
    try:
        import onnxruntime as ort
    except ImportError as e:
        raise InputError("ONNX export needs onnx and onnxruntime: pip install 'rexnet[deploy]'") from e
    check_output(path, overwrite=overwrite, what="ONNX file")  # before the export's work
    wrapper = SSDLiteExport(ssd).eval()
    x = torch.rand(batch, 3, wrapper.size, wrapper.size, generator=torch.Generator().manual_seed(0))
    diffs = [float("nan"), float("nan")]

    def write(tmp: Path) -> None:
        with warnings.catch_warnings():  # the exporter's known notices: nothing the user can act on
            _ignore_export_notices()
            _export(tmp)
        if verify:
            diffs[:] = _compare(ort, wrapper, tmp, x)

    def _export(tmp: Path) -> None:
        torch.onnx.export(
            wrapper,
            (x,),
            str(tmp),
            dynamo=False,
            opset_version=opset,
            input_names=["images"],
            output_names=["boxes", "scores"],
            dynamic_axes={"images": {0: "batch"}, "boxes": {0: "batch"}, "scores": {0: "batch"}},
        )

    atomic_write_paths(path, write, overwrite=overwrite, what="ONNX file")
    return OnnxCheck(Path(path), diffs[0], diffs[1], batch)


def _ignore_export_notices() -> None:
    """Inside ``catch_warnings``: drop the legacy exporter's deprecation, tracer and constant-folding notices."""
    warnings.filterwarnings("ignore", message=".*legacy TorchScript-based ONNX export", category=DeprecationWarning)
    warnings.filterwarnings("ignore", message="The feature will be removed", category=DeprecationWarning)
    warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
    warnings.filterwarnings("ignore", message="Constant folding", category=UserWarning)


def _compare(ort: Any, wrapper: SSDLiteExport, onnx_path: Path, x: torch.Tensor) -> list[float]:
    """Max |diff| of boxes and scores between onnxruntime and eager; an error past 1e-3."""
    with torch.no_grad():
        ref_boxes, ref_scores = wrapper(x)
    sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    boxes, scores = sess.run(None, {"images": x.numpy()})
    db = float((torch.from_numpy(boxes) - ref_boxes).abs().max())
    ds = float((torch.from_numpy(scores) - ref_scores).abs().max())
    if db > 1e-3 * wrapper.size or ds > 1e-3:
        raise ExportError(f"onnxruntime differs from PyTorch: boxes {db:.3g} px, scores {ds:.3g}")
    return [db, ds]
