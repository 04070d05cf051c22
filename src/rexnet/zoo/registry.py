"""The model registry: names -> plans, paper figures and preprocessing; ``create_model``.

One registry serves the CLI, the docs and the tests; nothing keeps a second list of variants.
"""

from __future__ import annotations

import fnmatch
import functools
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import torch
from torch import nn

from ..errors import InputError, UnknownModelError
from ..features import Indices
from ..model import IMAGENET_MEAN, IMAGENET_STD, RexNet, RexNetFeatures
from ..plan import NetworkPlan, mobilenetv2_plan, rexnet_lite_plan, rexnet_plan
from ..weights import load_weights
from .hub import hub_file

__all__ = [
    "ModelInfo",
    "MODEL_TABLE_COLUMNS",
    "model_table",
    "create_model",
    "list_models",
    "get_model_info",
    "get_plan",
    "register_model",
    "registry_plans",
    "transforms",
    "unregister_model",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
]


@dataclass(frozen=True)
class ModelInfo:
    """A registered variant.

    Attributes:
        name: Registry name (timm style).
        plan_fn: Builds the plan; ``plan_kwargs`` are passed to it.
        paper_top1 / paper_top5: ImageNet accuracy the source reports (``None`` if none).
        paper_params_m / paper_gmacs: The source's printed cost (for comparison with ours).
        source: Where the figures come from.
        input_size, crop_pct, interpolation, mean, std: Default evaluation preprocessing.
        tags: timm's weight tags for this architecture (``rexnet_100.nav_in1k``), each with the
            preprocessing fields it changes; the first is the default. ``pretrained=True`` takes
            its weights from timm's hub repo ``timm/{name}.{tag}``.
    """

    name: str
    plan_fn: Any
    plan_kwargs: dict[str, Any] = field(default_factory=dict)
    paper_top1: float | None = None
    paper_top5: float | None = None
    paper_params_m: float | None = None
    paper_gmacs: float | None = None
    source: str = ""
    input_size: int = 224
    crop_pct: float = 0.875
    interpolation: str = "bicubic"
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    tags: dict[str, dict[str, Any]] = field(default_factory=dict)

    def plan(self) -> NetworkPlan:
        return self.plan_fn(**self.plan_kwargs)

    @property
    def pretrained_cfg(self) -> dict[str, Any]:
        """timm-style config of the default tag: preprocessing, class count, first conv, classifier."""
        return self.pretrained_cfg_for(None)

    def pretrained_cfg_for(self, tag: str | None) -> dict[str, Any]:
        """timm-style config for weight tag ``tag`` (``None``: the default tag, if any)."""
        if tag is None:
            tag = next(iter(self.tags), None)
        elif tag not in self.tags:
            raise UnknownModelError(
                f"unknown tag {tag!r} for {self.name}; expected one of: {', '.join(self.tags) or '(none)'}"
            )
        size = (3, self.input_size, self.input_size)
        cfg: dict[str, Any] = dict(
            architecture=self.name,
            tag=tag,
            num_classes=1000,
            input_size=size,
            pool_size=(self.input_size // 32,) * 2,
            crop_pct=self.crop_pct,
            interpolation=self.interpolation,
            mean=self.mean,
            std=self.std,
            first_conv="stem.conv",
            classifier="classifier",
            test_input_size=size,
            test_crop_pct=self.crop_pct,
        )
        cfg.update(self.tags.get(tag or "", {}))
        return cfg


_REGISTRY: dict[str, ModelInfo] = {}


def _register(info: ModelInfo) -> None:
    if info.name in _REGISTRY:
        raise RuntimeError(f"duplicate model name {info.name!r}")
    _REGISTRY[info.name] = info


# ReXNet V1: CVPR'21 Table 5 and the extended table ([CVPR-ext]); FLOPs there are MACs.
for _w, _t1, _t5, _p, _g, _src in (
    (0.6, None, None, None, None, "no paper table; paperswithcode lists 74.6 top-1"),
    (0.9, 77.2, 93.5, 4.1, 0.35, "CVPR'21 Table 5"),
    (1.0, 77.9, 93.9, 4.8, 0.40, "CVPR'21 Table 4/5"),
    (1.1, 78.6, 94.1, 5.6, 0.48, "CVPR'21 extended table"),
    (1.2, 79.0, 94.3, 6.6, 0.57, "CVPR'21 extended table"),
    (1.3, 79.5, 94.7, 7.6, 0.66, "CVPR'21 Table 5"),
    (1.4, 79.8, 94.9, 8.6, 0.76, "CVPR'21 extended table"),
    (1.5, 80.3, 95.2, 9.7, 0.86, "CVPR'21 extended table (Table 5 prints 0.9B)"),
    (2.0, 81.6, 95.7, 16.0, 1.5, "CVPR'21 Table 5"),
    (2.2, 81.7, 95.8, 19.0, 1.8, "CVPR'21 extended table"),
    (3.0, 82.8, 96.3, 34.0, 3.4, "CVPR'21 extended table (README: top-5 96.2)"),
):
    _name = f"rexnet_{round(_w * 100):03d}"
    _tags = {"nav_in1k": {}} if _w in (1.0, 1.3, 1.5, 2.0, 3.0) else {}  # timm's names for the official weights
    _register(ModelInfo(_name, rexnet_plan, {"width_mult": _w}, _t1, _t5, _p, _g, _src, tags=_tags))

# ReXNet-lite: official README only.
for _w, _t1, _t5, _p, _g in (
    (1.0, 76.2, 92.8, 4.7, 0.41),
    (1.3, 77.8, 93.8, 6.8, 0.65),
    (1.5, 78.6, 94.2, 8.3, 0.84),
    (2.0, 80.2, 95.0, 13.0, 1.5),
):
    _register(
        ModelInfo(
            f"rexnet_lite_{round(_w * 100):03d}",
            rexnet_lite_plan,
            {"width_mult": _w},
            _t1,
            _t5,
            _p,
            _g,
            "official README (ReXNet-lite)",
        )
    )

# ReXNet-R: timm's rounded variant (not in the paper); accuracy only for the 12k-pretrained 2.0/3.0.
_R12K = dict(crop_pct=0.95, test_crop_pct=1.0, test_input_size=(3, 288, 288))
for _w, _div, _t1 in ((1.0, 8, None), (1.3, 8, None), (1.5, 8, None), (2.0, 8, 82.6), (3.0, 16, 84.0)):
    _register(
        ModelInfo(
            f"rexnetr_{round(_w * 100):03d}",
            rexnet_plan,
            {"width_mult": _w, "ch_div": _div},
            _t1,
            None,
            None,
            None,
            "timm (ImageNet-12k pretrain, 224 eval)" if _t1 else "timm, no weights",
            crop_pct=0.95 if _t1 else 0.875,
            tags={"sw_in12k_ft_in1k": _R12K, "sw_in12k": dict(_R12K, num_classes=11821)} if _t1 else {"untrained": {}},
        )
    )

# The baseline the paper re-parameterises; handy for side-by-side studies.
_register(
    ModelInfo(
        "mobilenetv2_100",
        mobilenetv2_plan,
        {"width_mult": 1.0},
        72.0,
        91.0,
        3.5,
        0.30,
        "MobileNetV2 paper (as cited in CVPR'21 Table 4)",
        interpolation="bilinear",
    )
)


#: Names registered at run time (user models, :mod:`rexnet.zoo.user`); only these may be replaced or removed.
_ADDED: set[str] = set()


def register_model(info: ModelInfo, *, replace: bool = False) -> None:
    """Add a variant at run time (a user model); ``replace``: over an earlier run-time entry (InputError otherwise)."""
    if info.name in _REGISTRY and (info.name not in _ADDED or not replace):
        what = "is already registered" if info.name in _ADDED else "is a built-in variant"
        raise InputError(f"model name {info.name!r} {what}; choose another name")
    _REGISTRY[info.name] = info
    _ADDED.add(info.name)
    _plans.cache_clear()


def unregister_model(name: str) -> None:
    """Remove a run-time entry (built-in variants stay)."""
    if name in _ADDED:
        _ADDED.discard(name)
        _REGISTRY.pop(name, None)
        _plans.cache_clear()


def list_models(pattern: str = "*") -> list[str]:
    """Registered names matching a shell-style ``pattern`` (e.g. ``"rexnet_lite_*"``), sorted."""
    return sorted(n for n in _REGISTRY if fnmatch.fnmatchcase(n, pattern))


def _split_name(name: str) -> tuple[ModelInfo, str | None]:
    """A registered entry and weight tag for ``name``: ``rexnet_100``, ``rexnet_100.nav_in1k``,
    ``timm/rexnet_100.nav_in1k`` or ``hf-hub:timm/rexnet_100.nav_in1k`` (timm's spellings)."""
    if not isinstance(name, str):
        raise UnknownModelError(f"model name must be a string, got {name!r}")
    base = name
    for prefix in ("hf-hub:", "hf_hub:"):
        base = base.removeprefix(prefix)
    base = base.removeprefix("timm/")
    arch, _, tag = base.partition(".")
    info = _REGISTRY.get(arch)
    if info is None:
        raise UnknownModelError(f"unknown model {name!r}; expected one of: {', '.join(list_models())}")
    if tag and tag not in info.tags:
        known = f"expected one of: {', '.join(info.tags)}" if info.tags else "it has none in timm"
        raise UnknownModelError(f"unknown weight tag {tag!r} for {arch} in {name!r}; {known}")
    return info, tag or None


def get_model_info(name: str) -> ModelInfo:
    """The registry entry for ``name`` (a timm-style ``arch.tag`` name gives its ``arch``).

    Raises:
        UnknownModelError: Listing the valid names (or the valid tags).
    """
    return _split_name(name)[0]


def get_plan(name: str) -> NetworkPlan:
    """The channel plan of a registered variant (no torch module is built)."""
    return get_model_info(name).plan()


@functools.lru_cache(maxsize=1)
def _plans() -> dict[str, NetworkPlan]:
    return {name: info.plan() for name, info in _REGISTRY.items()}


def registry_plans() -> Mapping[str, NetworkPlan]:
    """``{name: plan}`` of every registered variant (read-only): the candidates a checkpoint is matched against."""
    return MappingProxyType(_plans())


_MODEL_KWARGS = ("in_chans", "drop_rate", "drop_path_rate", "output_stride")
_TIMM_NO_OPS = ("scriptable", "exportable", "no_jit")  # timm layer-config flags; our modules always script


def _hub_repo(info: ModelInfo, tag: str | None) -> str:
    """timm's hub repo of ``info``'s weights for ``tag`` (``timm/rexnet_100.nav_in1k``)."""
    tag = tag or next(iter(info.tags), None)
    if tag is None or tag == "untrained":
        raise InputError(f"{info.name} has no published weights; pass a local weights file as pretrained=PATH")
    return f"timm/{info.name}.{tag}"


def _pretrained_file(pretrained: Any, cfg: dict[str, Any], info: ModelInfo) -> str | os.PathLike | None:
    """The weights file ``pretrained`` asks for: a path, or (``True``, a model name) the hub's file, via its cache."""
    if pretrained is None or pretrained is False:
        return None
    if pretrained is True:
        return cfg.get("file") or hub_file(_hub_repo(info, cfg.get("tag")))
    if isinstance(pretrained, (str, os.PathLike)):
        if isinstance(pretrained, str) and not os.path.exists(pretrained):
            try:  # a model name (``--pretrained rexnet_100``): timm's weights for it
                named, tag = _split_name(pretrained)
            except UnknownModelError:
                return pretrained  # not a name either: the reader says the file is missing
            return hub_file(_hub_repo(named, tag))
        return pretrained
    raise InputError(f"pretrained must be a file path, a model name, True or False, got {type(pretrained).__name__}")


def create_model(
    name: str,
    pretrained: bool | str | os.PathLike | None = False,
    num_classes: int | None = None,
    *,
    features_only: bool = False,
    out_indices: Indices = None,
    global_pool: str = "avg",
    drop_head: bool | None = None,
    checkpoint_path: str | os.PathLike | None = None,
    pretrained_cfg_overlay: dict[str, Any] | None = None,
    **kwargs: Any,
) -> nn.Module:
    """Build a registered model, optionally loading local weights (timm's ``create_model`` conventions).

    Args:
        name: A name from :func:`list_models`, or timm's ``arch.tag`` spelling
            (``rexnet_100.nav_in1k``, ``timm/rexnet_100.nav_in1k``); the tag picks the config.
        pretrained: A local checkpoint (ours, timm's or the official layout; ``.pth`` is read
            weights-only); ``True`` or a model name (``rexnet_100.nav_in1k``): timm's hub weights
            (``timm/rexnet_100.nav_in1k``) through the ``huggingface_hub`` cache, downloaded only
            when online and not ``HF_HUB_OFFLINE``, converted on load; ``False``: random weights.
        num_classes: Classifier outputs (0: pooled features); ``None`` takes the tag's (1000,
            or 11821 for ``*.sw_in12k``). A checkpoint classifier of another size is dropped.
        features_only: Return a backbone giving the multi-scale maps (strides 2..32); it
            takes a full checkpoint and skips the modules it does not have.
        out_indices: Which maps a ``features_only`` model returns: a sequence (negatives
            count from the end), an int ``n`` (the last ``n``) or ``None`` (all).
        global_pool: ``avg``, ``max``, ``avgmax``, ``catavgmax``, or ``""`` for unpooled maps
            from ``forward_head`` (with ``num_classes=0``).
        drop_head: With ``pretrained``: ``None`` drops the checkpoint's classifier when its
            class count differs (logged), ``True`` always, ``False`` never (an error then).
        checkpoint_path: A checkpoint loaded strictly after building (timm's argument).
        pretrained_cfg_overlay: Fields overriding the config (``file`` names the weights).
        **kwargs: ``in_chans`` (pretrained first-conv weights are adapted), ``drop_rate``,
            ``drop_path_rate``, ``output_stride``; timm's ``scriptable``/``exportable``/``no_jit``
            are accepted and change nothing.

    Raises:
        UnknownModelError: An unregistered name or tag.
        InputError: ``pretrained=True`` for a variant without published weights, or an unknown option.
        CheckpointError: The checkpoint cannot be read or does not fit, or the hub file is neither
            cached nor downloadable (the message names the repo, the file and the cache path).

    Example:
        >>> model = create_model("rexnet_100", num_classes=10)
        >>> model.classifier.out_features
        10
    """
    info, tag = _split_name(name)
    cfg = dict(info.pretrained_cfg_for(tag), **(pretrained_cfg_overlay or {}))
    for k in _TIMM_NO_OPS:
        kwargs.pop(k, None)
    unknown = sorted(set(kwargs) - set(_MODEL_KWARGS))
    if unknown:
        raise InputError(
            f"create_model got unknown option(s) {', '.join(unknown)}; accepted: {', '.join(_MODEL_KWARGS)}"
        )
    weights = _pretrained_file(pretrained, cfg, info)
    plan = info.plan()
    if features_only:
        model: RexNet = RexNetFeatures(plan, out_indices=out_indices, **kwargs)
    else:
        n = cfg["num_classes"] if num_classes is None else num_classes
        model = RexNet(plan, num_classes=n, global_pool=global_pool, **kwargs)
    model.model_name = info.name
    in_chans = kwargs.get("in_chans", 3)
    cfg["input_size"] = (in_chans, *cfg["input_size"][1:])
    cfg["test_input_size"] = (in_chans, *cfg["test_input_size"][1:])
    model.pretrained_cfg = cfg
    if weights is not None:
        load_weights(model, weights, drop_head=drop_head, adapt_in_chans=True, candidates=registry_plans())
    if checkpoint_path is not None:
        load_weights(model, checkpoint_path, candidates=registry_plans())
    return model


def transforms(name_or_model: str | nn.Module, image_size: int | None = None) -> Any:
    """The default evaluation transform: resize to ``size / crop_pct``, center crop, normalize.

    Args:
        name_or_model: A registered name (``arch`` or ``arch.tag``) or a model made by :func:`create_model`.
        image_size: Override the crop size (default: the config's input size).

    Returns:
        A ``torchvision.transforms.v2.Compose`` taking a PIL image or uint8 tensor.
    """
    from torchvision.transforms import InterpolationMode, v2

    if isinstance(name_or_model, str):
        info, tag = _split_name(name_or_model)
        cfg = info.pretrained_cfg_for(tag)
    else:
        cfg = getattr(name_or_model, "pretrained_cfg", None) or get_model_info("rexnet_100").pretrained_cfg
    if image_size is not None and (isinstance(image_size, bool) or not isinstance(image_size, int) or image_size < 1):
        raise InputError(f"image_size must be an int >= 1, got {image_size!r}")
    size = image_size or cfg["input_size"][-1]
    resize = int(size / cfg["crop_pct"])
    return v2.Compose(
        [
            v2.ToImage(),
            v2.Resize(resize, interpolation=InterpolationMode(cfg["interpolation"]), antialias=True),
            v2.CenterCrop(size),
            v2.ToDtype(torch.float32, scale=True),
            v2.Normalize(cfg["mean"], cfg["std"]),
        ]
    )


MODEL_TABLE_COLUMNS = ("model", "params (M)", "paper params (M)", "GMACs", "paper GMACs", "top-1", "top-5", "source")


def model_table(pattern: str = "*", image_size: int = 224) -> list[tuple[Any, ...]]:
    """One row per registered model: parameters and MACs computed here from the plan, next to
    the figures the paper prints, and the reported accuracy."""
    from ..plan import plan_cost

    rows = []
    for name in list_models(pattern):
        info = get_model_info(name)
        cost = plan_cost(info.plan(), image_size)
        rows.append(
            (
                name,
                round(cost.params / 1e6, 3),
                info.paper_params_m,
                round(cost.macs / 1e9, 3),
                info.paper_gmacs,
                info.paper_top1,
                info.paper_top5,
                info.source,
            )
        )
    return rows
