"""The Hugging Face folder convention: ``config.json`` (timm's format) next to ``model.safetensors``.

:func:`save_pretrained` writes such a folder; :func:`create_model` reads one (``local-dir:DIR``) or a hub
repo (``hf-hub:org/name[@rev]``), and :func:`rexnet.zoo.load_model` reads one given as a path. For the
variants timm also has (``rexnet_*``, ``rexnetr_*``) the weights are in timm's layout, so
``timm.create_model('local-dir:DIR', pretrained=True)`` loads the folder too.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from torch import nn

from .._files import write_json
from ..errors import CheckpointError, InputError, UnknownModelError
from ..model import RexNet, RexNetFeatures, set_pretrained_writer
from ..weights import from_our_layout, load_weights, read_state_dict, write_safetensors
from ..weights.metadata import MAX_CLASSES, check_int, check_plan_cost, plan_from_metadata
from . import registry
from .hub import CONFIG_NAME, WEIGHTS_NAME, hub_file, hub_folder

__all__ = ["save_pretrained", "is_pretrained_folder", "read_pretrained_config", "load_pretrained", "create_model"]

#: pretrained_cfg fields that describe where weights were found, not the weights themselves (timm drops them too).
_SOURCE_FIELDS = ("file", "source", "hf_hub_id", "url", "state_dict")


def _timm_layout(model: RexNet, arch: str) -> bool:
    """Whether timm has ``arch`` with exactly this plan (ReXNet V1 and ReXNet-R; not lite, not searched plans)."""
    if not arch.startswith(("rexnet_", "rexnetr_")) or arch.startswith("rexnet_lite"):
        return False
    try:
        return registry.get_plan(arch) == model.plan
    except UnknownModelError:
        return False


def save_pretrained(
    model: nn.Module,
    save_directory: str | os.PathLike,
    *,
    label_names: list[str] | tuple[str, ...] | None = None,
    overwrite: bool = False,
) -> Path:
    """Write ``model`` as a Hugging Face folder: ``config.json`` in timm's format and ``model.safetensors``.

    For a variant timm also has (``rexnet_*``, ``rexnetr_*``, any class count) the weights are written
    in timm's layout, so ``timm.create_model('local-dir:DIR', pretrained=True)`` loads them with every key
    matched. Other plans (ReXNet-lite, searched or custom plans) are written in rexnet's layout with the
    plan in the file's metadata: rexnet reads them, timm does not. Both files go through the output
    policy (:mod:`rexnet._files`).

    Args:
        model: A :class:`~rexnet.model.RexNet` (not a ``features_only`` backbone).
        save_directory: The folder (created if missing).
        label_names: Class names, one per output (default: ``model.pretrained_cfg['label_names']`` if set).
        overwrite: Replace files there that this process did not write.

    Returns:
        The folder.

    Raises:
        InputError: Not a classification :class:`RexNet`, or label names that do not match the class count.
        OutputExistsError: A file is in the way and ``overwrite`` is false.
    """
    if not isinstance(model, RexNet) or isinstance(model, RexNetFeatures):
        raise InputError(f"save_pretrained takes a RexNet classification model, got {type(model).__name__}")
    folder = Path(save_directory)
    cfg = dict(getattr(model, "pretrained_cfg", {}) or {})
    arch = getattr(model, "model_name", None) or model.plan.family
    k = int(model.num_classes)
    names = label_names if label_names is not None else cfg.get("label_names")
    if names is not None and (len(names) != k or not all(isinstance(n, str) for n in names)):
        raise InputError(f"label_names: {len(names)} names for a {k}-class model; give one string per class")
    timm = _timm_layout(model, arch)
    sd = model.state_dict()
    meta: dict[str, Any] = {"format": "pt", "model": arch}
    if timm:
        sd, meta["layout"] = from_our_layout(sd, model.plan, "timm"), "timm"
    else:
        meta.update(format="rexnet", layout="ours", plan=json.dumps(model.plan.to_dict()))
    pcfg = {key: v for key, v in cfg.items() if key not in _SOURCE_FIELDS and key != "label_names"}
    pcfg.update(architecture=arch, num_classes=k, classifier="head.fc" if timm else "classifier")
    config: dict[str, Any] = {
        "architecture": arch,
        "num_classes": k,
        "num_features": int(model.num_features),
        "global_pool": model.pool.pool_type,
        "pretrained_cfg": pcfg,
    }
    if model.in_chans != 3:
        config["model_args"] = {"in_chans": model.in_chans}
    if names is not None:
        config["label_names"] = list(names)
    config["rexnet"] = {"layout": meta["layout"], **({} if timm else {"plan": model.plan.to_dict()})}
    write_safetensors(sd, folder / WEIGHTS_NAME, meta, overwrite=overwrite)
    write_json(config, folder / CONFIG_NAME, overwrite=overwrite, what="config")
    return folder


def is_pretrained_folder(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a folder holding ``config.json`` and ``model.safetensors``."""
    p = Path(path)
    return p.is_dir() and (p / CONFIG_NAME).is_file() and (p / WEIGHTS_NAME).is_file()


def read_pretrained_config(folder: str | os.PathLike) -> dict[str, Any]:
    """The ``config.json`` of a Hugging Face folder, checked: ``architecture``, ``num_classes``, ``label_names``.

    Raises:
        CheckpointError: Missing or unreadable file, or a field of the wrong type (the message names it).
    """
    path = Path(folder) / CONFIG_NAME
    try:
        cfg = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CheckpointError(f"{folder}: no {CONFIG_NAME} (a Hugging Face model folder holds one)") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError) as e:
        raise CheckpointError(f"{path}: not readable JSON ({e})") from None
    if not isinstance(cfg, dict):
        raise CheckpointError(f"{path}: holds a {type(cfg).__name__}, expected an object")
    if "pretrained_cfg" not in cfg and "architecture" in cfg:  # timm's older single-dict form
        cfg = {"architecture": cfg["architecture"], "pretrained_cfg": cfg, **cfg}
    if not isinstance(cfg.get("architecture"), str):
        raise CheckpointError(f"{path}: field 'architecture' is {cfg.get('architecture')!r}, expected a model name")
    pcfg = cfg.get("pretrained_cfg") or {}
    if not isinstance(pcfg, dict):
        raise CheckpointError(f"{path}: field 'pretrained_cfg' is a {type(pcfg).__name__}, expected an object")
    k = cfg.get("num_classes", pcfg.get("num_classes", 1000))
    check_int(k, path, "num_classes", 0, MAX_CLASSES)
    names = cfg.get("label_names", pcfg.get("label_names"))
    if names is not None and (
        not isinstance(names, list) or len(names) != k or not all(isinstance(n, str) for n in names)
    ):
        raise CheckpointError(f"{path}: field 'label_names' must be {k} strings, got {str(names)[:80]}")
    return dict(cfg, num_classes=k, label_names=names, pretrained_cfg=pcfg)


def load_pretrained(
    folder: str | os.PathLike,
    *,
    weights: bool = True,
    num_classes: int | None = None,
    drop_head: bool | None = None,
    **kwargs: Any,
) -> RexNet:
    """Build the model a Hugging Face folder describes and (``weights``) load its ``model.safetensors``.

    Either layout is read (detected from the keys). The model's ``pretrained_cfg`` is the folder's,
    with ``label_names`` when the folder has them.

    Args:
        folder: The folder.
        weights: Load the weights (``False``: the architecture only).
        num_classes: Another class count (the folder's classifier is then dropped, as ``create_model``).
        drop_head: As :func:`create_model`.
        **kwargs: Passed to :func:`rexnet.zoo.create_model` (``in_chans``, ``drop_rate``, ...).

    Raises:
        CheckpointError: A missing or malformed file, or weights that do not fit.
    """
    folder = Path(folder)
    cfg = read_pretrained_config(folder)
    arch, k = cfg["architecture"], cfg["num_classes"]
    target = k if num_classes is None else num_classes
    model_args = cfg.get("model_args") if isinstance(cfg.get("model_args"), dict) else {}
    kwargs = {**{key: v for key, v in model_args.items() if key == "in_chans"}, **kwargs}
    pool = cfg.get("global_pool", "avg")
    try:
        model = registry.create_model(arch, num_classes=target, global_pool=pool, **kwargs)
    except UnknownModelError:  # a plan rexnet has no name for: the weights file records it
        sd_meta = read_state_dict(folder / WEIGHTS_NAME)[1]
        if not sd_meta.get("plan"):
            raise CheckpointError(
                f"{folder}: architecture {arch!r} is not registered and its weights record no plan"
            ) from None
        plan = plan_from_metadata(sd_meta["plan"], folder / WEIGHTS_NAME)
        check_plan_cost(plan, target, 224, folder / WEIGHTS_NAME)
        model = RexNet(plan, num_classes=target, global_pool=pool, **kwargs)
        model.model_name = arch
    pcfg = {**model.pretrained_cfg, **cfg["pretrained_cfg"], "num_classes": target, "architecture": arch}
    pcfg["classifier"] = "classifier"  # our module name, whatever the layout on disk
    if cfg["label_names"] is not None and target == k:
        pcfg["label_names"] = list(cfg["label_names"])
    model.pretrained_cfg = pcfg
    if weights:
        load_weights(
            model,
            folder / WEIGHTS_NAME,
            drop_head=drop_head if num_classes is not None else False,
            adapt_in_chans=True,
            candidates=registry.registry_plans(),
        )
    return model


def create_model(
    name: str,
    pretrained: bool | str | os.PathLike | None = None,
    num_classes: int | None = None,
    **kwargs: Any,
) -> nn.Module:
    """:func:`rexnet.zoo.registry.create_model`, plus timm's folder and hub sources.

    * ``local-dir:DIR``: the folder :func:`save_pretrained` writes; its weights are loaded unless
      ``pretrained=False`` (timm needs ``pretrained=True`` for them).
    * ``hf-hub:org/name[@rev]``: a hub repo holding such a folder, through the ``huggingface_hub``
      cache; with ``pretrained=True`` its weights (downloaded only when online), else its config only.
      timm's own repos (``hf-hub:timm/rexnet_100.nav_in1k``) need no config: the name is registered.
    * anything else: a registered name, as :func:`rexnet.zoo.registry.create_model` (``pretrained=True``
      takes timm's hub weights for it).

    Example:
        >>> create_model("rexnet_100", num_classes=10).num_classes
        10
    """
    if isinstance(name, str) and name.startswith("local-dir:"):
        folder = Path(name.removeprefix("local-dir:")).expanduser()
        if not folder.is_dir():
            raise CheckpointError(f"{name}: {folder} is not a folder")
        return _from_folder(folder, pretrained, num_classes, kwargs)
    if isinstance(name, str) and name.startswith(("hf-hub:", "hf_hub:")):
        repo = name.split(":", 1)[1]
        if not _registered_spelling(repo):
            if pretrained is True:
                return _from_folder(hub_folder(repo), True, num_classes, kwargs)
            folder = hub_file(repo, CONFIG_NAME).parent
            return _from_folder(folder, False, num_classes, kwargs)
    return registry.create_model(name, pretrained=pretrained or False, num_classes=num_classes, **kwargs)


def _registered_spelling(repo: str) -> bool:
    """Whether hub repo ``repo`` is timm's copy of a registered variant (``timm/rexnet_100.nav_in1k``)."""
    if not repo.startswith("timm/") or "@" in repo:
        return False
    try:
        registry.get_model_info(repo)
        return True
    except UnknownModelError:
        return False


def _from_folder(folder: Path, pretrained: Any, num_classes: int | None, kwargs: dict[str, Any]) -> nn.Module:
    if pretrained not in (None, True, False):
        raise InputError(f"{folder}: pretrained must be True, False or None with a folder source, got {pretrained!r}")
    drop_head = kwargs.pop("drop_head", None)
    return load_pretrained(
        folder, weights=pretrained is not False, num_classes=num_classes, drop_head=drop_head, **kwargs
    )


set_pretrained_writer(save_pretrained)  # RexNet.save_pretrained delegates here
