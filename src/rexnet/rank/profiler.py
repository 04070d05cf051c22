"""Rank profiler for any ``nn.Module``: forward hooks, per-layer rank, spectrum and nuclear norm.

A hooked layer's output of shape ``(B, C, *spatial)`` becomes a ``C x (B * prod(spatial))``
matrix (``flatten="spatial"``, each position a sample) or ``C x B`` after global average
pooling (``flatten="pool"``); ``(B, C)`` outputs are ``C x B``. Its rank (an estimator of
:mod:`rexnet.rank.estimators`), rank/C, normalized singular values and nuclear norm are
reported. Rank is bounded by the number of samples; a layer with fewer samples than
channels is logged as a warning.

Models are named ``NAME`` (a rexnet registry name, e.g. ``rexnet_100``) or ``tv:NAME`` (a
torchvision builder, e.g. ``tv:mobilenet_v2``), randomly initialised unless a checkpoint is given
(for rexnet a weights file, training checkpoint or run folder: :func:`rexnet.zoo.load_model`).
"""

from __future__ import annotations

import fnmatch
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from torch import nn

from ..errors import CheckpointError, InputError
from .estimators import nuclear_norm, rank_from_singular_values, singular_values

__all__ = [
    "ProfileRow",
    "RankProfile",
    "default_layers",
    "feature_matrix",
    "profile_rank",
    "build_model",
    "build_torchvision_model",
]

log = logging.getLogger(__name__)

#: The weights arguments of torchvision's builders, all set so that nothing is downloaded.
_NO_WEIGHTS = {"weights": None, "weights_backbone": None, "pretrained": False, "pretrained_backbone": False}


@dataclass(frozen=True)
class ProfileRow:
    """One hooked layer: channels C, samples (columns), rank, rank/C, nuclear norm, effective rank."""

    layer: str
    channels: int
    samples: int
    rank: float
    rank_ratio: float
    nuclear_norm: float
    effective_rank: float


@dataclass
class RankProfile:
    """What :func:`profile_rank` returns: the rows and each layer's singular values (largest first)."""

    rows: list[ProfileRow]
    spectra: dict[str, torch.Tensor] = field(default_factory=dict)

    def normalized_spectrum(self, layer: str) -> torch.Tensor:
        """Singular values of ``layer`` divided by the largest."""
        s = self.spectra[layer]
        return s / s[0].clamp_min(1e-30)


def default_layers(model: nn.Module) -> list[str]:
    """Every block output and the final features.

    The children of the outermost ``Sequential``/``ModuleList`` containers whose children are
    themselves composite (blocks rather than single layers), in forward-definition order:
    ``blocks.0 ... blocks.N`` for rexnet (plus ``final_conv``, its final features),
    ``features.0 ... features.18`` for torchvision's MobileNetV2 (the last is the final 1x1
    conv), ``layer1.0 ... layer4.2`` for a ResNet. A model without such a container gets its
    direct children.
    """
    chosen: list[str] = []
    for name, m in model.named_modules():
        if not isinstance(m, (nn.Sequential, nn.ModuleList)) or len(m) == 0:
            continue
        if any(name == c or name.startswith(c + ".") for c in chosen if c) or (chosen and chosen[0] == ""):
            continue
        if any(len(list(child.children())) > 0 for child in m.children()):
            chosen.append(name)
    if not chosen:
        return [n for n, _ in model.named_children()]
    names = dict(model.named_modules())
    layers = [f"{c}.{k}" if c else k for c in chosen for k, _ in names[c].named_children()]
    if "final_conv" in names and "blocks" in chosen:
        layers.append("final_conv")
    return layers


def feature_matrix(out: torch.Tensor, flatten: str = "spatial") -> torch.Tensor:
    """A layer output as a ``channels x samples`` matrix (see the module docstring)."""
    if out.ndim == 2:
        return out.T
    if out.ndim < 2:
        raise InputError(f"cannot rank a layer output of shape {tuple(out.shape)}; need (B, C, ...)")
    if flatten == "pool":
        return out.flatten(2).mean(-1).T
    if flatten == "spatial":
        return out.transpose(0, 1).reshape(out.shape[1], -1)
    raise InputError(f"unknown flatten {flatten!r}; expected one of: spatial, pool")


def profile_rank(
    model: nn.Module,
    batch: torch.Tensor,
    layers: Sequence[str] | None = None,
    estimator: str = "matrix_rank",
    flatten: str = "spatial",
) -> RankProfile:
    """Rank of chosen layers' output features on one batch.

    Args:
        model: Any module; it is run as it is (call ``.eval()`` first for eval-mode BN).
        batch: The input batch.
        layers: Qualified module names or shell-style patterns (``"features.*"``); default
            :func:`default_layers`.
        estimator: Rank estimator spec (default: fp32 ``matrix_rank`` tolerance).
        flatten: ``spatial`` or ``pool`` (see the module docstring).

    Returns:
        One row per hooked layer, in forward order, and the layers' spectra.

    Raises:
        InputError: A layer name that matches nothing (listing some valid ones), or a layer
            that does not run or does not return a tensor.

    Example:
        >>> import torchvision
        >>> m = torchvision.models.mobilenet_v2().eval()
        >>> prof = profile_rank(m, torch.randn(4, 3, 64, 64))
        >>> len(prof.rows), prof.rows[-1].channels
        (19, 1280)
    """
    modules = dict(model.named_modules())
    if layers is None:
        chosen = default_layers(model)
    else:
        chosen = []
        for pat in layers:
            hits = [n for n in modules if n and fnmatch.fnmatchcase(n, pat)]
            if not hits:
                some = ", ".join(default_layers(model)[:8])
                raise InputError(f"layer {pat!r} matches no module; e.g.: {some}, ...")
            chosen += [h for h in hits if h not in chosen]
    outputs: dict[str, torch.Tensor] = {}
    order: list[str] = []

    def hook(name: str):  # noqa: ANN202
        def fn(_m: nn.Module, _i: object, out: object) -> None:
            if not isinstance(out, torch.Tensor):
                raise InputError(f"layer {name!r} returns {type(out).__name__}, not a tensor")
            if name not in outputs:
                order.append(name)
            outputs[name] = out.detach()

        return fn

    handles = [modules[n].register_forward_hook(hook(n)) for n in chosen]
    try:
        with torch.no_grad():
            model(batch)
    except (RuntimeError, ValueError, AssertionError, IndexError) as e:
        if isinstance(e, InputError):
            raise
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise InputError(
            f"the model cannot run on a batch of shape {tuple(batch.shape)}: {type(e).__name__}: {first} "
            "(some models need a fixed image size, e.g. 224 for ViT, 299 for Inception)"
        ) from e
    finally:
        for h in handles:
            h.remove()
    missing = [n for n in chosen if n not in outputs]
    if missing:
        raise InputError(f"layers never ran in the forward pass: {', '.join(missing)}")
    rows, spectra = [], {}
    for name in order:
        out = outputs[name]
        if out.shape[0] != batch.shape[0]:
            raise InputError(f"layer {name!r} output {tuple(out.shape)} has no batch dimension {batch.shape[0]}")
        mat = feature_matrix(out.float(), flatten)
        c, n = mat.shape
        if n < c:
            log.warning("layer %s: %d samples < %d channels: rank bounded by samples; use a larger batch", name, n, c)
        s = singular_values(mat, "gram")
        rank = float(rank_from_singular_values(s, (c, n), estimator))
        erank = float(rank_from_singular_values(s, (c, n), "erank"))
        rows.append(ProfileRow(name, c, n, rank, rank / c, float(nuclear_norm(s)), erank))
        spectra[name] = s
    return RankProfile(rows, spectra)


def build_torchvision_model(name: str) -> nn.Module:
    """torchvision's builder ``name``, randomly initialised: every weights argument it takes is set to none.

    rexnet never downloads: ``weights=None`` alone is not enough, since segmentation and detection
    builders (``deeplabv3_mobilenet_v3_large``, ``fasterrcnn_*``) default ``weights_backbone`` to
    ImageNet weights and fetch them into the torch hub cache.

    Raises:
        InputError: An unknown name (listing some valid ones), or a video or optical-flow model,
            which take clips or image pairs instead of a batch of images.
    """
    import inspect

    import torchvision
    from torchvision import models as tvm

    if name not in tvm.list_models():
        valid = ", ".join(n for n in tvm.list_models(tvm) if "mobilenet" in n)
        raise InputError(f"unknown torchvision model {name!r}; e.g.: {valid} (see torchvision.models.list_models())")
    for kind, module in (("a video", tvm.video), ("an optical-flow", tvm.optical_flow)):
        if name in tvm.list_models(module):
            raise InputError(
                f"tv:{name} is {kind} model: it takes clips or image pairs, not the batch of images the rank "
                "profiler feeds; choose an image model (classification, segmentation or detection)"
            )
    builder = torchvision.models.get_model_builder(name)
    params = inspect.signature(builder).parameters
    kwargs = {k: v for k, v in _NO_WEIGHTS.items() if k in params}
    return builder(**kwargs)


def build_model(spec: str, checkpoint: str | os.PathLike | None = None) -> nn.Module:
    """A model from ``NAME`` (rexnet registry, through :func:`rexnet.zoo.load_model`) or ``tv:NAME``
    (torchvision), randomly initialised or with weights from ``checkpoint``, in eval mode.

    Raises:
        InputError: An unknown name (listing valid ones), or a video or optical-flow model.
        CheckpointError: An unreadable checkpoint, or one that does not fit the model.
    """
    if spec.startswith("tv:"):
        from ..weights import read_state_dict
        from ..weights.metadata import check_tensor_dtypes

        model = build_torchvision_model(spec[3:])
        if checkpoint is not None:
            sd = read_state_dict(checkpoint)[0]
            check_tensor_dtypes(sd, model.state_dict(), checkpoint)  # int8/bool would be cast to float silently
            try:
                model.load_state_dict(sd)
            except RuntimeError as e:  # missing/unexpected keys or shapes: the file is not this model's
                first = str(e).strip().splitlines()[0]
                raise CheckpointError(f"{checkpoint} does not fit torchvision's {spec[3:]}: {first}") from None
        return model.eval()
    from ..errors import UnknownModelError
    from ..zoo import load_model

    try:
        return load_model(spec, checkpoint=checkpoint)[0]
    except UnknownModelError as e:
        raise UnknownModelError(f"{e}; or tv:NAME for a torchvision model, e.g. tv:mobilenet_v2") from None
