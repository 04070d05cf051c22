"""What a ``pretrained`` source is: the weights file to load, the architecture it names and the
preprocessing it was made for (timm's ``pretrained_cfg``: input size, interpolation, crop, mean/std).

Every form ``--pretrained`` takes is read here, without loading the weights:

* a registered name (``rexnet_100``, ``rexnet_100.nav_in1k``) or ``hf-hub:timm/<name>.<tag>``: the
  registry's ``pretrained_cfg`` for that tag (the weights come from timm's hub repo);
* ``hf-hub:org/name[@rev]`` or ``local-dir:DIR`` or a folder holding ``config.json`` + ``model.safetensors``
  (:func:`rexnet.save_pretrained`): the folder's ``config.json``;
* a training run folder or a training checkpoint: the run's config (image size and preprocessing it trained at);
* a ``.safetensors`` file: the ``pretrained_cfg`` and ``model`` in its metadata (:func:`rexnet.save_weights`
  records both); a file without them (timm's or the official ``.pth``) records nothing.
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import CheckpointError, UnknownModelError
from ..weights import is_training_checkpoint
from ..weights.io import read_safetensors_metadata, safe_torch_load
from ..zoo import get_model_info, is_pretrained_folder, read_pretrained_config, resolve_checkpoint
from ..zoo.hub import WEIGHTS_NAME, hub_folder
from .config import INTERPOLATIONS, MIN_IMAGE_SIZE

__all__ = ["PretrainedSource", "pretrained_source", "preprocessing_of"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PretrainedSource:
    """A ``pretrained`` source, resolved.

    Attributes:
        weights: What :func:`rexnet.create_model` takes as ``pretrained``: a weights or checkpoint file,
            or a registered name (timm's hub weights).
        architecture: The registered model the source names (``None``: it names none, or an unregistered plan).
        preprocessing: The fields the source records, checked: ``image_size``, ``interpolation``,
            ``crop_pct``, ``mean``, ``std`` (a field it does not record is absent).
        origin: Where they come from, for log lines (``rexnet_100.nav_in1k's pretrained_cfg``).
    """

    weights: str
    architecture: str | None = None
    preprocessing: dict[str, Any] = field(default_factory=dict)
    origin: str = ""


def pretrained_source(pretrained: str | os.PathLike) -> PretrainedSource:
    """Resolve ``pretrained`` (see the module docstring for the forms) without loading its weights.

    A path that does not exist and is no registered name is returned as it is: the loader then says
    that the checkpoint is missing.

    Raises:
        CheckpointError: A ``local-dir:`` that is not a folder, a hub repo neither cached nor reachable,
            or a folder or checkpoint whose config cannot be read.
    """
    text = str(pretrained)
    if text.startswith("local-dir:"):
        folder = Path(text.removeprefix("local-dir:")).expanduser()
        if not folder.is_dir():
            raise CheckpointError(f"{text}: {folder} is not a folder")
        return _from_folder(folder, f"{folder}/config.json's pretrained_cfg")
    if text.startswith(("hf-hub:", "hf_hub:")):
        repo = text.split(":", 1)[1]
        name = _timm_name(repo)
        if name is not None:
            return _from_name(name)
        return _from_folder(hub_folder(repo), f"hub repo {repo}'s pretrained_cfg")
    path = Path(text).expanduser()
    if path.is_dir():
        if is_pretrained_folder(path) and not (path / "checkpoints").is_dir():
            return _from_folder(path, f"{path}/config.json's pretrained_cfg")
        return _from_training(resolve_checkpoint(path), f"run {path}'s config")
    if path.is_file():
        if is_training_checkpoint(path):
            return _from_training(path, f"{path.name}'s training config")
        return _from_weights(path)
    try:
        get_model_info(text)
    except UnknownModelError:
        return PretrainedSource(text, origin=text)  # the loader then names the missing file
    return _from_name(text)


def _timm_name(repo: str) -> str | None:
    """``rexnet_100.nav_in1k`` for timm's own hub repo of a registered variant, else ``None``."""
    if not repo.startswith("timm/") or "@" in repo:
        return None
    try:
        get_model_info(repo)
    except UnknownModelError:
        return None
    return repo.removeprefix("timm/")


def _from_name(name: str) -> PretrainedSource:
    info = get_model_info(name)
    tag = name.partition(".")[2] or None
    cfg = info.pretrained_cfg_for(tag)
    label = f"{info.name}.{cfg['tag']}" if cfg.get("tag") else info.name
    return PretrainedSource(name, info.name, preprocessing_of(cfg, label), f"{label}'s pretrained_cfg")


def _from_folder(folder: Path, origin: str) -> PretrainedSource:
    cfg = read_pretrained_config(folder)
    arch = _registered(cfg["architecture"])
    return PretrainedSource(str(folder / WEIGHTS_NAME), arch, preprocessing_of(cfg["pretrained_cfg"], origin), origin)


def _from_training(path: Path, origin: str) -> PretrainedSource:
    ck = safe_torch_load(path, mmap=True)  # only the small fields are looked at
    cfg = ck.get("config") if isinstance(ck, dict) else None
    if not isinstance(cfg, Mapping):
        raise CheckpointError(f"{path}: field 'config' is {type(cfg).__name__}, expected an object")
    arch = ck.get("model_name") if isinstance(ck.get("model_name"), str) else cfg.get("model")
    return PretrainedSource(str(path), _registered(arch), preprocessing_of(cfg, origin), origin)


def _from_weights(path: Path) -> PretrainedSource:
    meta = read_safetensors_metadata(path) if path.suffix == ".safetensors" else {}
    arch = _registered(meta.get("model"))
    raw = meta.get("pretrained_cfg")
    cfg: Any = {}
    if raw:
        try:
            cfg = json.loads(raw)
        except (json.JSONDecodeError, RecursionError):
            log.warning("%s: metadata 'pretrained_cfg' is not JSON; ignored", path)
    origin = f"{path.name}'s pretrained_cfg"
    return PretrainedSource(str(path), arch, preprocessing_of(cfg, origin) if isinstance(cfg, Mapping) else {}, origin)


def _registered(name: Any) -> str | None:
    if not isinstance(name, str):
        return None
    try:
        return get_model_info(name).name
    except UnknownModelError:
        return None


def preprocessing_of(cfg: Mapping[str, Any], where: str = "pretrained_cfg") -> dict[str, Any]:
    """The preprocessing fields of a timm ``pretrained_cfg`` or a run config, checked; bad ones are skipped.

    ``input_size`` (``(C, H, W)``) gives ``image_size`` (its width, as :class:`rexnet.zoo.ModelMeta`); a run
    config's own ``image_size`` is taken as it is. A value of the wrong type or range is left out with a
    warning naming ``where``: the run then falls back to the model's registry entry for that field.

    Example:
        >>> preprocessing_of({"input_size": [3, 64, 64], "crop_pct": 0.9, "interpolation": "bilinear"})
        {'image_size': 64, 'interpolation': 'bilinear', 'crop_pct': 0.9}
    """
    out: dict[str, Any] = {}
    size = cfg.get("image_size")
    if size is None and isinstance(cfg.get("input_size"), (list, tuple)) and cfg["input_size"]:
        size = cfg["input_size"][-1]
    checks = {
        "image_size": (size, lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= MIN_IMAGE_SIZE),
        "interpolation": (cfg.get("interpolation"), lambda v: v in INTERPOLATIONS),
        "crop_pct": (cfg.get("crop_pct"), lambda v: _number(v) and 0 < v <= 1),
        "mean": (cfg.get("mean"), lambda v: _triple(v) and all(0 <= x <= 1 for x in v)),
        "std": (cfg.get("std"), lambda v: _triple(v) and all(x > 0 for x in v)),
    }
    for key, (value, ok) in checks.items():
        if value is None:
            continue
        if ok(value):
            out[key] = tuple(float(x) for x in value) if key in ("mean", "std") else value
        else:
            log.warning("%s: %s %r is not usable for training here; ignored", where, key, value)
    return out


def _number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _triple(v: Any) -> bool:
    return isinstance(v, (list, tuple)) and len(v) == 3 and all(_number(x) for x in v)
