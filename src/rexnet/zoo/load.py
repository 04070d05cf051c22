"""The one model loader: a registered name, a weights file, or a training run -> ``(model, meta)``.

Every part of rexnet that needs a model with its weights (evaluation, prediction, export, the
benchmark, the rank profiler, the CLI) calls :func:`load_model`; it reads each file once, through
:mod:`rexnet.weights` (the only code that opens checkpoints).
"""

from __future__ import annotations

import logging
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torch import nn

from ..errors import CheckpointError, InputError, UnknownModelError
from ..model import RexNet
from ..plan import NetworkPlan
from ..weights import (
    checkpoint_num_classes,
    convert_weights,
    detect_layout,
    guess_variant,
    is_training_checkpoint,
    load_weights,
    read_state_dict,
    read_training_checkpoint,
)
from ..weights.convert import check_destination
from ..weights.metadata import MAX_CLASSES, check_int, check_plan_cost, plan_from_metadata
from .pretrained import is_pretrained_folder, load_pretrained
from .registry import create_model, get_model_info, get_plan, list_models, registry_plans

__all__ = ["ModelMeta", "load_model", "convert_checkpoint", "resolve_checkpoint", "imagenet_class_names"]

_log = logging.getLogger(__name__)

#: Files of a run folder tried in turn: the best epoch, else the last.
RUN_CHECKPOINTS = ("checkpoints/best.pt", "checkpoints/last.pt", "best.pt", "last.pt")


@dataclass(frozen=True)
class ModelMeta:
    """What :func:`load_model` knows about the model it returns.

    Attributes:
        name: The registered name (or the name a training checkpoint of a searched plan records).
        plan: The network's channel plan.
        num_classes: Classifier outputs.
        image_size: Input size to evaluate at: the training crop of a run, else the model's default.
        mean, std, crop_pct, interpolation: Evaluation preprocessing.
        class_names: Class names when known (a run's, or ImageNet's for a 1000-class model).
        checkpoint: The file the weights came from (``None``: random initialisation).
        source: ``name`` (random weights), ``weights`` (a weights file) or ``training`` (a run's checkpoint).
    """

    name: str
    plan: NetworkPlan = field(repr=False)
    num_classes: int
    image_size: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    crop_pct: float
    interpolation: str
    class_names: tuple[str, ...] | None = None
    checkpoint: str | None = None
    source: str = "name"
    config: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def preprocessing(self) -> dict[str, Any]:
        """``mean``, ``std``, ``crop_pct``, ``interpolation``: keywords of :func:`rexnet.data.build_eval_transform`."""
        return dict(mean=self.mean, std=self.std, crop_pct=self.crop_pct, interpolation=self.interpolation)

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly: ``model``, ``num_classes``, ``class_names``, ``image_size``, preprocessing, ``checkpoint``."""
        names = list(self.class_names) if self.class_names is not None else None
        return dict(
            model=self.name,
            num_classes=self.num_classes,
            class_names=names,
            image_size=self.image_size,
            **self.preprocessing,
            checkpoint=self.checkpoint,
        )


def load_model(
    name_or_checkpoint: str | os.PathLike,
    *,
    checkpoint: str | os.PathLike | None = None,
    num_classes: int | None = None,
    ema: bool = False,
) -> tuple[nn.Module, ModelMeta]:
    """A model in eval mode and what is known about it, from a name, a weights file or a training run.

    Args:
        name_or_checkpoint: One of

            * a registered name (``rexnet_100``, ``rexnet_100.nav_in1k``): random weights unless
              ``checkpoint`` is given;
            * a training run folder (``runs/x``: its ``checkpoints/best.pt``, else ``last.pt``) or a
              training checkpoint: the architecture (also a searched plan), class count, class names
              and image size it records;
            * a weights file (ours, timm's or the official layout): the variant it names (our
              safetensors) or the one its tensor shapes fit;
            * a Hugging Face folder (``config.json`` + ``model.safetensors``, as
              :func:`rexnet.save_pretrained` writes; either layout): its architecture, class count
              and label names.
        checkpoint: With a name: the weights (any of the files or folders above) for that architecture.
        num_classes: Classifier size (default: the checkpoint's; 1000 for a name alone).
        ema: Take the EMA weights of a training checkpoint.

    Returns:
        ``(model, meta)``: the model in eval mode on CPU, and a :class:`ModelMeta`.

    Raises:
        UnknownModelError: Neither a registered name nor an existing file or folder.
        CheckpointError: An unreadable or unsafe file, a folder without checkpoints, or weights that
            do not fit (the message names the shapes and the variant they fit).
        InputError: A weights file whose variant cannot be told (pass the name).

    Example:
        >>> model, meta = load_model("rexnet_100", num_classes=10)
        >>> meta.name, meta.num_classes, meta.image_size, meta.checkpoint
        ('rexnet_100', 10, 224, None)
    """
    folder = checkpoint if checkpoint is not None else name_or_checkpoint
    if is_pretrained_folder(folder) and not any((Path(folder) / f).is_file() for f in RUN_CHECKPOINTS):
        if ema:
            raise CheckpointError(
                f"{folder} is a Hugging Face model folder, not a training run: it holds no EMA weights"
            )
        return _from_folder(Path(folder), str(name_or_checkpoint) if checkpoint is not None else None, num_classes)
    name, path = _resolve(name_or_checkpoint, checkpoint)
    if path is None:
        model = create_model(str(name), num_classes=num_classes)
        return model.eval(), _meta(model, name, "name")
    if is_training_checkpoint(path):
        return _from_training(path, name, num_classes, ema)
    if ema:
        raise CheckpointError(f"{path} is a weights file, not a training checkpoint: it holds no EMA weights")
    return _from_weights(path, name, num_classes)


def resolve_checkpoint(path: str | os.PathLike) -> Path:
    """The checkpoint file ``path`` names: the file itself, or a run folder's best (else last) checkpoint.

    Raises:
        CheckpointError: Nothing there, or a folder without a checkpoint.
    """
    p = Path(path)
    if p.is_dir():
        found = next((p / f for f in RUN_CHECKPOINTS if (p / f).is_file()), None)
        if found is None:
            raise CheckpointError(
                f"{p} is a folder without a checkpoint; expected one of: {', '.join(RUN_CHECKPOINTS)}"
            )
        return found
    if not p.is_file():
        raise CheckpointError(f"checkpoint not found: {p}")
    return p


def _resolve(source: str | os.PathLike, checkpoint: str | os.PathLike | None) -> tuple[str | None, Path | None]:
    """``(registered name or None, checkpoint file or None)`` for :func:`load_model`'s arguments."""
    if checkpoint is not None:
        get_model_info(str(source))  # raises, listing the valid names
        return str(source), resolve_checkpoint(checkpoint)
    if isinstance(source, str):
        try:
            get_model_info(source)
            return source, None
        except UnknownModelError as e:
            if not Path(source).exists():
                raise UnknownModelError(f"{e}; or an existing weights file or run folder") from None
    return None, resolve_checkpoint(source)


def _from_training(path: Path, name: str | None, num_classes: int | None, ema: bool) -> tuple[nn.Module, ModelMeta]:
    ck = read_training_checkpoint(path)
    arch = name or ck.get("model_name")
    if not arch:
        raise InputError(f"{path} records no model name; pass it (CLI: --model NAME)")
    if not isinstance(arch, str):
        raise CheckpointError(f"{path}: field 'model_name' is {type(arch).__name__}, expected a string")
    sd = ck.get("ema") if ema else ck["model"]
    if sd is None:
        raise CheckpointError(f"{path} holds no EMA weights (the run did not use --ema)")
    if not isinstance(sd, dict):
        raise CheckpointError(f"{path}: field '{'ema' if ema else 'model'}' is a {type(sd).__name__}, not a state dict")
    k = num_classes if num_classes is not None else ck.get("num_classes") or 1000
    check_int(k, path, "num_classes", 1, MAX_CLASSES)
    cfg = ck.get("config") or {}
    if not isinstance(cfg, dict):
        raise CheckpointError(f"{path}: field 'config' is a {type(cfg).__name__}, expected an object")
    image_size = cfg.get("image_size")
    if image_size is not None:
        check_int(image_size, path, "config.image_size", 1)
    class_names = _checked_class_names(ck.get("class_names"), k, path)
    rebuild = name is None and ck.get("plan")  # rebuild exactly what was trained (also searched plans)
    plan = plan_from_metadata(ck["plan"], path) if rebuild else _registered_plan(arch, path, "model_name")
    check_plan_cost(plan, k, image_size or 224, path)  # before building: the plan and the class count are the file's
    if rebuild:
        model: nn.Module = RexNet(plan, num_classes=k)
        model.model_name = arch
        if arch in list_models():
            model.pretrained_cfg = dict(get_model_info(arch).pretrained_cfg, num_classes=k)
    else:
        model = create_model(arch, num_classes=k)
    load_weights(model, sd, layout="ours", candidates=registry_plans(), label=str(path))
    model.pretrained_cfg = _trained_cfg(getattr(model, "pretrained_cfg", None) or {}, cfg, path)
    return model.eval(), _meta(model, arch, "training", path, class_names, image_size, cfg)


def _trained_cfg(base: dict[str, Any], cfg: dict[str, Any], path: Path) -> dict[str, Any]:
    """``base`` (the architecture's ``pretrained_cfg``) with the size and preprocessing the run trained with, so
    that a model loaded from a run and shared (``save_pretrained``) says what it expects."""
    out = dict(base)
    size = cfg.get("image_size")
    if size is not None:
        out["input_size"] = out["test_input_size"] = [3, size, size]
    for key in ("mean", "std"):
        v = cfg.get(key)
        if v is None:
            continue
        if not (isinstance(v, (list, tuple)) and len(v) == 3 and all(_finite(x) for x in v)):
            raise CheckpointError(f"{path}: config field {key!r} is {v!r}, expected 3 numbers")
        out[key] = [float(x) for x in v]
    crop = cfg.get("crop_pct")
    if crop is not None:
        if not (_finite(crop) and 0 < crop <= 1):
            raise CheckpointError(f"{path}: config field 'crop_pct' is {crop!r}, expected a number in (0, 1]")
        out["crop_pct"] = out["test_crop_pct"] = float(crop)
    interp = cfg.get("interpolation")
    if interp is not None:
        if not isinstance(interp, str):
            raise CheckpointError(f"{path}: config field 'interpolation' is {interp!r}, expected a name")
        out["interpolation"] = interp
    return out


def _finite(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def _from_folder(folder: Path, name: str | None, num_classes: int | None) -> tuple[nn.Module, ModelMeta]:
    model = load_pretrained(folder, num_classes=num_classes, drop_head=False)
    arch = getattr(model, "model_name", None) or model.plan.family
    if name is not None and get_model_info(name).name != arch:
        raise CheckpointError(f"{folder} holds a {arch} model, not {name}")
    names = model.pretrained_cfg.get("label_names")
    return model.eval(), _meta(model, arch, "weights", folder / "model.safetensors", names)


def _registered_plan(arch: str, path: Path, field: str) -> NetworkPlan:
    try:
        return get_plan(arch)
    except UnknownModelError as e:
        raise CheckpointError(f"{path}: field '{field}' names {arch!r}, which is not registered ({e})") from None


def _checked_class_names(names: Any, num_classes: int, path: Path) -> list[str] | None:
    if names is None:
        return None
    if not isinstance(names, (list, tuple)) or not all(isinstance(n, str) for n in names):
        raise CheckpointError(f"{path}: field 'class_names' must be a list of strings, got {str(names)[:80]}")
    if len(names) != num_classes:
        raise CheckpointError(f"{path}: field 'class_names' holds {len(names)} names for {num_classes} classes")
    return list(names)


def _from_weights(path: Path, name: str | None, num_classes: int | None) -> tuple[nn.Module, ModelMeta]:
    sd, file_meta = read_state_dict(path)
    _check_layout(sd, path)
    arch, plan = _weights_plan(sd, file_meta, name, path)
    k = num_classes if num_classes is not None else checkpoint_num_classes(sd, plan)
    check_plan_cost(plan, k, 224, path)
    if arch:
        model: nn.Module = create_model(arch, num_classes=k)
    else:  # our safetensors of an unregistered (e.g. searched) plan
        model, arch = RexNet(plan, num_classes=k), plan.family
    # inference: a checkpoint head that does not fit is an error, never a random head
    load_weights(model, sd, drop_head=False, candidates=registry_plans(), label=str(path))
    return model.eval(), _meta(model, arch, "weights", path)


def _weights_plan(
    sd: dict[str, Any], file_meta: dict[str, str], name: str | None, path: Path
) -> tuple[str | None, NetworkPlan]:
    """The architecture of a weights file: the name given, the registered name or the plan its metadata
    records (checked and costed before anything is built), else the registered variant its shapes fit."""
    if name:
        return name, get_plan(name)
    recorded = file_meta.get("model")
    if recorded is not None:
        try:
            return recorded, get_plan(recorded)
        except UnknownModelError:
            pass  # a searched plan saved under its own name: its recorded plan decides
    if file_meta.get("plan"):
        plan = plan_from_metadata(file_meta["plan"], path)
        check_plan_cost(plan, checkpoint_num_classes(sd, plan), 224, path)
        if not guess_variant(sd, {"recorded": plan}):
            raise CheckpointError(
                f"{path}: the tensors do not fit the plan its metadata records (field 'plan'); a tampered file?"
            )
        return None, plan
    if recorded is not None:
        raise CheckpointError(f"{path}: metadata 'model' names {recorded!r}, which is not registered, and no plan")
    guesses = guess_variant(sd, registry_plans())
    if not guesses:
        raise InputError(f"{path}: its tensor shapes fit no registered variant; pass the model name")
    if len(guesses) > 1:
        _log.warning("%s fits %s; taking %s (pass the model name to choose)", path, ", ".join(guesses), guesses[0])
    return guesses[0], registry_plans()[guesses[0]]


def _check_layout(sd: dict[str, Any], path: str | os.PathLike) -> None:
    try:
        detect_layout(sd.keys())
    except ValueError as e:
        raise CheckpointError(f"{path}: {e}") from None


def _meta(
    model: nn.Module,
    name: str,
    source: str,
    path: Path | None = None,
    class_names: Any = None,
    image_size: int | None = None,
    config: dict[str, Any] | None = None,
) -> ModelMeta:
    cfg = model.pretrained_cfg
    k = int(model.num_classes)
    if class_names is None and k == 1000:
        class_names = imagenet_class_names()
    return ModelMeta(
        name=name,
        plan=model.plan,
        num_classes=k,
        image_size=int(image_size or cfg["input_size"][-1]),
        mean=tuple(cfg["mean"]),
        std=tuple(cfg["std"]),
        crop_pct=float(cfg["crop_pct"]),
        interpolation=str(cfg["interpolation"]),
        class_names=tuple(class_names) if class_names is not None else None,
        checkpoint=None if path is None else str(path),
        source=source,
        config=dict(config or {}),
    )


def imagenet_class_names() -> list[str]:
    """The 1000 ImageNet class names (torchvision's list)."""
    from torchvision.models._meta import _IMAGENET_CATEGORIES

    return list(_IMAGENET_CATEGORIES)


def convert_checkpoint(
    src: str | os.PathLike,
    dst: str | os.PathLike,
    model_name: str | None = None,
    *,
    overwrite: bool = False,
    force: bool = False,
    to: str = "ours",
) -> Path:
    """Convert a checkpoint of any layout to ours or timm's (``rexnet convert SRC DST --to ours|timm``).

    Args:
        src: Input checkpoint (``.pth`` or ``.safetensors``).
        dst: Output path; its suffix names the format: ``.safetensors``, or ``.pth``/``.pt`` for
            a weights-only ``torch.save`` file.
        model_name: Registered variant; the one a file of ours records, else guessed from the tensor shapes.
        overwrite: Replace an existing ``dst`` this process did not write (CLI: ``--overwrite``).
        force: The older name of ``overwrite`` (CLI: ``--force``).
        to: ``ours`` (default) or ``timm`` (the file timm's ``load_checkpoint`` takes as it is).

    Returns:
        The written path.

    Raises:
        CheckpointError: Unreadable ``src``, an unknown ``dst`` suffix, or tensors that fit no registered variant.
        OutputExistsError: ``dst`` exists, this process did not write it, and ``overwrite`` is false.
    """
    overwrite = overwrite or force
    check_destination(dst, overwrite)
    raw, meta = read_state_dict(src)
    _check_layout(raw, src)
    name = model_name or meta.get("model")  # our own files name their variant
    if name is None:
        guesses = guess_variant(raw, registry_plans())
        if not guesses:
            raise CheckpointError(f"{src}: the tensor shapes match no registered variant; pass the model name")
        name = guesses[0]
        _log.info("%s looks like %s", src, name)
    return convert_weights(raw, dst, get_plan(name), name=name, overwrite=overwrite, label=str(src), to=to)
