"""Loading a trained model back, evaluating it on a dataset, and predicting image files."""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .._memory import check_model_inference
from ..data import build_datasets, build_eval_transform
from ..data.transforms import model_norm
from ..errors import CheckpointError, RexnetError
from ..model import RexNet
from ..plan.spec import plan_from_dict
from ..weights import read_state_dict
from ..zoo import create_model, get_model_info, list_models
from .checkpoint import FORMAT, load_checkpoint
from .evaluate import evaluate, predict, resolve_device
from .outputs import plot_confusion, write_json

__all__ = ["load_trained_model", "evaluate_checkpoint", "predict_files"]

log = logging.getLogger(__name__)

_HEAD_KEYS = ("classifier.weight", "head.fc.weight", "output.1.weight")


def _is_training_checkpoint(path: Path) -> bool:
    if path.suffix == ".safetensors":
        return False
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception:
        return False
    return isinstance(obj, dict) and obj.get("format") == FORMAT


def load_trained_model(
    checkpoint: str | os.PathLike,
    model: str | None = None,
    *,
    num_classes: int | None = None,
    ema: bool = False,
) -> tuple[nn.Module, dict[str, Any]]:
    """Build a model and load weights: a training checkpoint of ours, or any weights file that
    :func:`rexnet.create_model` reads (ours, timm's or the official layout).

    Args:
        checkpoint: ``checkpoints/last.pt``/``best.pt`` of a run, or a weights file.
        model: Registered name (default: the one a training checkpoint records).
        num_classes: Classifier size (default: from the checkpoint).
        ema: Load the EMA weights of a training checkpoint.

    Returns:
        ``(model in eval mode, meta)``; ``meta`` has ``model``, ``num_classes``, ``class_names``
        (or ``None``) and ``image_size`` (the training crop, or the model's default).

    Raises:
        CheckpointError: Unreadable/unsafe file, or weights that do not fit the model.
        RexnetError: No model name given nor recorded.
    """
    path = Path(checkpoint)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    if _is_training_checkpoint(path):
        ck = load_checkpoint(path)
        name = model or ck.get("model_name")
        if not name:
            raise RexnetError(f"{path} records no model name; pass --model")
        sd = ck.get("ema") if ema else ck["model"]
        if sd is None:
            raise CheckpointError(f"{path} holds no EMA weights (the run did not use --ema)")
        k = num_classes or ck.get("num_classes") or 1000
        if model is None and ck.get("plan"):  # rebuild exactly what was trained (also searched plans)
            net = RexNet(plan_from_dict(ck["plan"]), num_classes=k)
            net.model_name = name
            net.pretrained_cfg = get_model_info(name).pretrained_cfg if name in list_models() else None
        else:
            net = create_model(name, num_classes=k)
        try:
            net.load_state_dict(sd)
        except RuntimeError as e:
            detail = " ".join(str(e).splitlines()[1:3]).strip()
            raise CheckpointError(f"{path} does not fit {name} with {k} classes: {detail}") from e
        cfg = ck.get("config") or {}
        meta = dict(model=name, num_classes=k, class_names=ck.get("class_names"),
                    image_size=cfg.get("image_size", 224))
    else:
        if not model:
            raise RexnetError(f"pass --model NAME to load the weights file {path}")
        if num_classes is None:
            sd, _ = read_state_dict(path)
            num_classes = next((int(sd[k].shape[0]) for k in _HEAD_KEYS if k in sd), 1000)
        # inference: a checkpoint head that does not fit is an error, never a random head
        net = create_model(model, pretrained=path, num_classes=num_classes, drop_head=False)
        meta = dict(model=model, num_classes=num_classes, class_names=None,
                    image_size=get_model_info(model).input_size)
    if meta["class_names"] is None and meta["num_classes"] == 1000:
        from torchvision.models._meta import _IMAGENET_CATEGORIES

        meta["class_names"] = list(_IMAGENET_CATEGORIES)
    return net.eval(), meta


def evaluate_checkpoint(
    checkpoint: str | os.PathLike,
    model: str | None = None,
    data: str = "digits",
    *,
    image_size: int | None = None,
    batch_size: int = 128,
    workers: int = 0,
    device: str = "auto",
    amp: str = "none",
    ema: bool = False,
    out: str | os.PathLike | None = None,
    confusion_png: str | os.PathLike | None = None,
    strict: bool = False,
    split: str = "val",
) -> dict[str, Any]:
    """Evaluate a checkpoint on the validation split of ``data`` (see :func:`rexnet.data.build_datasets`).

    Args:
        split: ``val`` (the held-out split) or ``test`` (the official test split of
            Fashion-MNIST / MNIST).
        out: Also write the result as JSON here (and the confusion matrix next to it as ``.png``).
        confusion_png: Write the confusion-matrix image here.

    Returns:
        :func:`~rexnet.train.evaluate`'s dict plus ``model``, ``checkpoint``, ``data``, ``image_size``.
    """
    _check_positive(batch_size=batch_size)
    if workers < 0:
        raise RexnetError(f"workers must be >= 0, got {workers}")
    _check_image_size(image_size)
    dev = resolve_device(device)
    if split not in ("val", "test"):
        raise RexnetError(f"unknown split {split!r}; expected one of: val, test")
    net, meta = load_trained_model(checkpoint, model, ema=ema)
    size = image_size or meta["image_size"]
    check_model_inference(net, size, batch_size, what=meta["model"])
    bundle = build_datasets(data, size, train=False, model=meta["model"], strict=strict)
    dataset = bundle.val if split == "val" else bundle.test
    if dataset is None:
        raise RexnetError(f"{bundle.name} has no test split (only fashion-mnist and mnist do); use split='val'")
    if bundle.num_classes != meta["num_classes"]:
        raise RexnetError(f"{bundle.name} has {bundle.num_classes} classes but the model has {meta['num_classes']}")
    trained = meta.get("class_names")
    if trained and list(trained) != list(bundle.class_names):
        log.warning("the checkpoint's classes (%s) differ from %s's (%s): per-class results use the data's names",
                    ", ".join(map(str, trained[:5])), bundle.name, ", ".join(bundle.class_names[:5]))
    res = evaluate(net, dataset, batch_size=batch_size, num_classes=bundle.num_classes,
                   class_names=bundle.class_names, device=dev, workers=workers, amp=amp)
    res = dict(model=meta["model"], checkpoint=str(checkpoint), data=bundle.name, split=split, image_size=size, **res)
    if out is not None:
        write_json(res, out)
        confusion_png = confusion_png or Path(out).with_suffix(".png")
    if confusion_png is not None:
        plot_confusion(res["confusion"], res["class_names"], confusion_png)
    return res


def predict_files(
    checkpoint: str | os.PathLike,
    images: Sequence[str | os.PathLike],
    model: str | None = None,
    *,
    top_k: int = 5,
    image_size: int | None = None,
    ema: bool = False,
) -> list[dict[str, Any]]:
    """Top-k ``(class, probability)`` for each image file.

    Returns:
        One ``{"image": path, "top": [{"class": name, "prob": p}, ...]}`` per file; an unreadable
        file gets ``{"image": path, "error": reason}``.
    """
    from PIL import Image

    _check_positive(top_k=top_k)
    _check_image_size(image_size)
    net, meta = load_trained_model(checkpoint, model, ema=ema)
    check_model_inference(net, image_size or meta["image_size"], 1, what=meta["model"])
    norm = model_norm(meta["model"] if meta["model"] in list_models() else None)
    tf = build_eval_transform(image_size or meta["image_size"], crop_pct=norm["crop_pct"], mean=norm["mean"],
                              std=norm["std"], interpolation=norm["interpolation"])
    out: list[dict[str, Any]] = []
    for p in images:
        try:
            with Image.open(p) as im:
                x = tf(im.convert("RGB"))
        except Exception as e:
            out.append({"image": str(p), "error": f"{type(e).__name__}: {e}"})
            continue
        top = predict(net, x[None], top_k=top_k, class_names=meta["class_names"])[0]
        out.append({"image": str(p), "top": [{"class": c, "prob": q} for c, q in top]})
    return out


def _check_positive(**values: int) -> None:
    for name, v in values.items():
        if v < 1:
            raise RexnetError(f"{name} must be >= 1, got {v}")


def _check_image_size(size: int | None) -> None:
    from .config import MIN_IMAGE_SIZE

    if size is not None and size < MIN_IMAGE_SIZE:
        raise RexnetError(f"image_size must be >= {MIN_IMAGE_SIZE}, got {size}")
