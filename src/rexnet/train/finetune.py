"""Fine-tuning defaults: the model, image size and preprocessing a run takes from its pretrained weights.

Starting from weights made for 224 px bicubic crops with ImageNet's mean/std, a run should train on the
same unless the user says otherwise; before this, a fine-tune silently used its preset's 32 px. What the
user set (a flag, a config-file key, a keyword argument) wins over the weights; a preset's value does not.
Every choice is logged with its reason, and the run's ``config.json`` records the values.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from ..data.transforms import model_norm
from ..zoo import get_model_info
from .config import ConfigError, TrainConfig
from .weights_source import PretrainedSource, pretrained_source

__all__ = ["FROM_WEIGHTS", "PREPROCESSING", "finetune_defaults", "user_keys"]

log = logging.getLogger(__name__)

#: The preprocessing fields of :class:`TrainConfig` (``None``: the weights', else the model's registry entry).
PREPROCESSING = ("interpolation", "crop_pct", "mean", "std")
#: The fields a fine-tune takes from its weights unless the user set them.
FROM_WEIGHTS = ("model", "image_size", *PREPROCESSING)


def user_keys(keys: Iterable[str]) -> set[str]:
    """The top-level :class:`TrainConfig` fields that ``keys`` set (dotted, legacy and dashed spellings too)."""
    out = set()
    for key in keys:
        try:
            out.add(TrainConfig.key_path(key).partition(".")[0])
        except ConfigError:
            out.add(key)  # the config itself refuses an unknown key, with a better message
    return out


def _show(value: Any) -> str:
    if isinstance(value, tuple):
        return "(" + ", ".join(f"{v:g}" for v in value) + ")"
    return f"{value:g}" if isinstance(value, float) else str(value)


def _flag(key: str) -> str:
    return "--" + key.replace("_", "-")


def finetune_defaults(cfg: TrainConfig, explicit: Iterable[str] | None = None, *, announce: bool = True) -> TrainConfig:
    """``cfg`` with the model, image size and preprocessing of ``cfg.pretrained`` where the user did not set them.

    Each field of :data:`FROM_WEIGHTS` the user did not set takes the value the weights record (their
    ``pretrained_cfg``: see :mod:`rexnet.train.weights_source`); the preprocessing fields still unset
    then take the model's registry entry, as do all of them for a run without pretrained weights (so a
    run's ``config.json`` records what it trained with). A weights file that records no ``pretrained_cfg``
    falls back to the registry entry of the model, image size included.

    Args:
        cfg: The config (from a preset, a file and the user's settings).
        explicit: The fields the user set (flags, config-file keys, keyword arguments); the others of
            :data:`FROM_WEIGHTS` follow the weights. ``None``: every field with a value is the user's, and
            only the ``None`` preprocessing fields are filled.
        announce: Log each choice and its reason (``image_size 224 from rexnet_100's pretrained_cfg
            (set --image-size to override)``), and each setting of the user's that differs from the weights.

    Returns:
        The config with every preprocessing field set.

    Raises:
        CheckpointError: The weights' config cannot be read (:func:`~rexnet.train.weights_source.pretrained_source`).

    Example:
        >>> finetune_defaults(TrainConfig(model="rexnet_060"), []).crop_pct
        0.875
    """
    given = user_keys(explicit) if explicit is not None else {k for k in FROM_WEIGHTS if getattr(cfg, k) is not None}
    notes: list[str] = []
    src = pretrained_source(cfg.pretrained) if cfg.pretrained else None
    if src is not None:
        found = _recorded(src)
        if found.get("model") == cfg.model:
            del found["model"]  # nothing to say: the weights are of the model asked for
        taken = {k: v for k, v in found.items() if k not in given}
        mine = {k: v for k, v in found.items() if k in given and getattr(cfg, k) != v}
        for keys in (["model"], ["image_size"], list(PREPROCESSING)):  # the size gets a line of its own
            picked = [k for k in keys if k in taken]
            if picked:
                notes.append(_taken(picked, taken, src.origin))
        if mine:
            what = ", ".join(f"{k} {_show(getattr(cfg, k))}" for k in mine)
            notes.append(f"{what} as set ({src.origin}: {', '.join(f'{k} {_show(v)}' for k, v in mine.items())})")
        cfg = cfg.replace(**taken)
    norm = model_norm(cfg.model)
    fill = {k: norm[k] for k in PREPROCESSING if getattr(cfg, k) is None}
    if src is not None and "image_size" not in given and "image_size" not in src.preprocessing:
        fill["image_size"] = get_model_info(cfg.model).input_size
    if src is not None:  # the model's registry entry stands in for what the weights do not record
        for keys in (["image_size"], list(PREPROCESSING)):
            picked = [k for k in keys if k in fill]
            if picked:
                notes.append(_taken(picked, fill, f"{cfg.model}'s registry entry since {src.origin} has none"))
    cfg = cfg.replace(**fill)
    if announce:
        for note in notes:
            log.info("fine-tuning from %s: %s", cfg.pretrained, note)
    return cfg


def _taken(keys: list[str], values: dict[str, Any], origin: str) -> str:
    what = ", ".join(f"{k} {_show(values[k])}" for k in keys)
    return f"{what} from {origin} (set {'/'.join(_flag(k) for k in keys)} to override)"


def _recorded(src: PretrainedSource) -> dict[str, Any]:
    """The :data:`FROM_WEIGHTS` fields ``src`` records, the architecture first (the registry fallback follows it)."""
    found: dict[str, Any] = {"model": src.architecture} if src.architecture else {}
    found.update(src.preprocessing)
    return found
