"""The model registry: names -> plans, paper figures and preprocessing; ``create_model``.

One registry serves the CLI, the docs and the tests; nothing keeps a second list of variants.
"""

from __future__ import annotations

import fnmatch
import os
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from .errors import UnknownModelError
from .model import RexNet, RexNetFeatures
from .plan import NetworkPlan, mobilenetv2_plan, rexnet_lite_plan, rexnet_plan

__all__ = [
    "ModelInfo",
    "MODEL_TABLE_COLUMNS",
    "model_table",
    "create_model",
    "list_models",
    "get_model_info",
    "get_plan",
    "transforms",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


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

    def plan(self) -> NetworkPlan:
        return self.plan_fn(**self.plan_kwargs)

    @property
    def pretrained_cfg(self) -> dict[str, Any]:
        """timm-style preprocessing config."""
        return dict(
            input_size=(3, self.input_size, self.input_size),
            crop_pct=self.crop_pct,
            interpolation=self.interpolation,
            mean=self.mean,
            std=self.std,
        )


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
    _register(ModelInfo(f"rexnet_{round(_w * 100):03d}", rexnet_plan, {"width_mult": _w}, _t1, _t5, _p, _g, _src))

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


def list_models(pattern: str = "*") -> list[str]:
    """Registered names matching a shell-style ``pattern`` (e.g. ``"rexnet_lite_*"``), sorted."""
    return sorted(n for n in _REGISTRY if fnmatch.fnmatchcase(n, pattern))


def get_model_info(name: str) -> ModelInfo:
    """The registry entry for ``name``.

    Raises:
        UnknownModelError: Listing the valid names.
    """
    try:
        return _REGISTRY[name]
    except KeyError:
        raise UnknownModelError(f"unknown model {name!r}; expected one of: {', '.join(list_models())}") from None


def get_plan(name: str) -> NetworkPlan:
    """The channel plan of a registered variant (no torch module is built)."""
    return get_model_info(name).plan()


def create_model(
    name: str,
    pretrained: str | os.PathLike | None = None,
    num_classes: int = 1000,
    *,
    features_only: bool = False,
    out_indices: tuple[int, ...] = (0, 1, 2, 3, 4),
    drop_head: bool = False,
    **kwargs: Any,
) -> nn.Module:
    """Build a registered model, optionally loading local weights.

    Args:
        name: A name from :func:`list_models`.
        pretrained: Path to a local checkpoint (ours, timm's or the official layout; ``.pth``
            is read weights-only). Nothing is ever downloaded.
        num_classes: Classifier outputs (0 for pooled features).
        features_only: Return a backbone giving the multi-scale maps (strides 2..32).
        out_indices: Which maps a ``features_only`` model returns.
        drop_head: With ``pretrained``, skip the checkpoint's classifier (fine-tuning).
        **kwargs: Passed to :class:`~rexnet.model.RexNet` (``drop_rate``, ``drop_path_rate``,
            ``output_stride``, ``in_chans``).

    Example:
        >>> model = create_model("rexnet_100", num_classes=10)
        >>> model.classifier.out_features
        10
    """
    info = get_model_info(name)
    plan = info.plan()
    if features_only:
        model: RexNet = RexNetFeatures(plan, out_indices=out_indices, **kwargs)
    else:
        model = RexNet(plan, num_classes=num_classes, **kwargs)
    model.model_name = name
    model.pretrained_cfg = info.pretrained_cfg
    if pretrained is not None:
        from .weights import load_weights

        # a backbone has no head; a checkpoint's head is dropped then
        load_weights(model, pretrained, drop_head=drop_head or features_only or num_classes == 0)
    return model


def transforms(name_or_model: str | nn.Module, image_size: int | None = None) -> Any:
    """The default evaluation transform: resize to ``size / crop_pct``, center crop, normalize.

    Args:
        name_or_model: A registered name or a model made by :func:`create_model`.
        image_size: Override the crop size (default 224).

    Returns:
        A ``torchvision.transforms.v2.Compose`` taking a PIL image or uint8 tensor.
    """
    from torchvision.transforms import InterpolationMode, v2

    if isinstance(name_or_model, str):
        cfg = get_model_info(name_or_model).pretrained_cfg
    else:
        cfg = getattr(name_or_model, "pretrained_cfg", None) or get_model_info("rexnet_100").pretrained_cfg
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
    from .plan import plan_cost

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
