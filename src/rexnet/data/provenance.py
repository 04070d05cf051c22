"""What a model was trained on: the data, image size, preprocessing and classes that a run, a training
checkpoint or a model folder records, so that ``eval``, ``predict`` (and export and bench) default to them.

A training checkpoint carries its run's config (``data``, ``image_size``, ``model`` and, when the run set
them, ``mean``/``std``/``crop_pct``/``interpolation``) and its class names; a Hugging Face folder carries
its ``pretrained_cfg`` and label names. A bare weights file records no data and no preprocessing: the
model's registry defaults are then assumed, and :func:`warn_assumed` says so.

Example:
    >>> from rexnet.zoo import load_model
    >>> _, meta = load_model("rexnet_100", num_classes=3)
    >>> spec = training_data_spec(meta)
    >>> spec["data"], spec["image_size"], spec["recorded"]
    (None, 224, False)
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from torchvision.transforms import InterpolationMode

from ..errors import CheckpointError
from ..zoo import ModelMeta, list_models, load_model
from .build import DATASETS, data_preprocessing

__all__ = ["PREPROCESSING_KEYS", "training_data_spec", "preprocessing_for", "same_data", "warn_assumed"]

log = logging.getLogger(__name__)

#: The keywords of :func:`rexnet.data.build_eval_transform` besides the size.
PREPROCESSING_KEYS = ("mean", "std", "crop_pct", "interpolation")


def training_data_spec(source: str | os.PathLike | ModelMeta) -> dict[str, Any]:
    """The data and preprocessing a run, checkpoint or model file was trained on.

    Args:
        source: A :class:`~rexnet.zoo.ModelMeta` (from :func:`rexnet.zoo.load_model`), or anything
            ``load_model`` takes: a run folder, a training checkpoint, a Hugging Face folder, a weights file.

    Returns:
        ``data`` (the run's ``--data`` string; ``None`` when nothing records it), ``image_size``,
        ``mean``, ``std``, ``crop_pct``, ``interpolation`` (as the run evaluated its data),
        ``class_names`` (``None`` if unknown), ``num_classes``, ``model``, ``origin`` (``run``,
        ``folder``, ``weights`` or ``name``) and ``recorded`` (``False``: the preprocessing is the
        model's registry default, assumed, not recorded).

    Raises:
        CheckpointError: A recorded field of the wrong type (the message names it).
    """
    meta = source if isinstance(source, ModelMeta) else load_model(source)[1]
    origin = _origin(meta)
    data = meta.config.get("data") if origin == "run" else None
    if data is not None and not isinstance(data, str):
        raise CheckpointError(f"{meta.checkpoint}: config field 'data' is {data!r}, expected a string")
    return dict(
        data=data,
        image_size=int(meta.image_size),
        **preprocessing_for(meta, data),
        class_names=list(meta.class_names) if meta.class_names is not None else None,
        num_classes=int(meta.num_classes),
        model=meta.name,
        origin=origin,
        recorded=origin in ("run", "folder"),
    )


def preprocessing_for(meta: ModelMeta, data: str | None) -> dict[str, Any]:
    """``mean``, ``std``, ``crop_pct``, ``interpolation`` for showing ``data`` to ``meta``'s model.

    On the run's own data this is exactly what its validation used; on other data, the values the run
    or folder recorded, else the model's, with the data's own rule (a full-frame set is never cropped).
    """
    recorded = _recorded(meta)
    name = meta.config.get("model") if _origin(meta) == "run" else meta.name
    registered = name if isinstance(name, str) and name.split(".")[0] in list_models() else None
    return data_preprocessing(data or "", registered, recorded)


def same_data(a: str | None, b: str | None) -> bool:
    """Whether two ``--data`` strings name the same data (``DIR``, ``folder:DIR`` and a link to it agree)."""
    return a is not None and b is not None and _data_key(a) == _data_key(b)


def warn_assumed(spec: Mapping[str, Any], what: str, image_size: int | None = None) -> None:
    """Log which preprocessing is assumed for a model that records none (``spec['recorded']`` false)."""
    if spec["recorded"]:
        return
    size = f"{image_size} px (as asked)" if image_size else f"{spec['image_size']} px"
    log.warning(
        "%s records no preprocessing (a bare weights file); assuming %s's defaults: %s, %s resize, crop_pct %g, "
        "mean %s, std %s. Pass --image-size to change the size, or use the run folder or a save_pretrained "
        "folder, which record them",
        what,
        spec["model"],
        size,
        spec["interpolation"],
        spec["crop_pct"],
        _short(spec["mean"]),
        _short(spec["std"]),
    )


def _short(v: Any) -> str:
    return "(" + ", ".join(f"{x:.3g}" for x in v) + ")"


def _origin(meta: ModelMeta) -> str:
    if meta.source == "training":
        return "run"
    ck = Path(meta.checkpoint) if meta.checkpoint else None
    if ck is not None and ck.name == "model.safetensors" and (ck.parent / "config.json").is_file():
        return "folder"
    return meta.source


def _recorded(meta: ModelMeta) -> dict[str, Any]:
    """The preprocessing values the file itself records (checked): a run's explicit config keys, a folder's cfg."""
    origin = _origin(meta)
    if origin == "folder":
        return dict(meta.preprocessing)
    if origin != "run":
        return {}
    out = {k: meta.config.get(k) for k in PREPROCESSING_KEYS if meta.config.get(k) is not None}
    where = f"{meta.checkpoint}: config field"
    for k in ("mean", "std"):
        v = out.get(k)
        ok = isinstance(v, (list, tuple)) and len(v) == 3 and all(_number(x) and x >= 0 for x in v)
        if k in out and not (ok and (k == "mean" or min(v) > 0)):
            raise CheckpointError(f"{where} {k!r} is {v!r}, expected 3 numbers")
    if "crop_pct" in out and not (_number(out["crop_pct"]) and 0 < out["crop_pct"] <= 1):
        raise CheckpointError(f"{where} 'crop_pct' is {out['crop_pct']!r}, expected a number in (0, 1]")
    modes = [m.value for m in InterpolationMode]
    if "interpolation" in out and out["interpolation"] not in modes:
        raise CheckpointError(
            f"{where} 'interpolation' is {out['interpolation']!r}, expected one of: {', '.join(modes)}"
        )
    return out


def _number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def _data_key(data: str) -> str:
    name, sep, path = data.partition(":")
    if sep and name in DATASETS:
        return os.path.realpath(path) if path else name
    return data if data in DATASETS else os.path.realpath(data)
