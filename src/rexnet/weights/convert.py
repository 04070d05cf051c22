"""Loading official/timm/our checkpoints into a model, saving ours, converting between layouts."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import torch
from torch import nn

from ..errors import CheckpointError
from ..plan.spec import NetworkPlan
from .io import read_state_dict, write_safetensors
from .layouts import detect_layout, module_map

__all__ = ["to_our_layout", "from_our_layout", "load_weights", "save_weights", "convert_checkpoint", "guess_variant"]

_log = logging.getLogger(__name__)
_CLASSIFIER_KEYS = ("classifier.weight", "classifier.bias")


def _checkpoint_num_classes(sd: dict[str, torch.Tensor], plan: NetworkPlan, layout: str) -> int:
    key = module_map(plan, layout, num_classes=1)["classifier.bias"]
    return int(sd[key].shape[0]) if key in sd else 0


def to_our_layout(sd: dict[str, torch.Tensor], plan: NetworkPlan, layout: str = "auto") -> dict[str, torch.Tensor]:
    """Rename a state dict of ``layout`` (or detected) to our keys for ``plan``.

    Keys the plan does not know are kept under their original names, so the caller's strict
    check reports them. The official 1x1-conv classifier is reshaped to a linear weight.
    """
    layout = detect_layout(sd.keys()) if layout == "auto" else layout
    num_classes = _checkpoint_num_classes(sd, plan, layout)
    mapping = module_map(plan, layout, num_classes=num_classes)
    theirs_to_ours = {v: k for k, v in mapping.items()}
    out = {}
    for key, tensor in sd.items():
        ours = theirs_to_ours.get(key, key)
        if ours == "classifier.weight" and tensor.ndim == 4:
            tensor = tensor.flatten(1)
        out[ours] = tensor
    return out


def from_our_layout(sd: dict[str, torch.Tensor], plan: NetworkPlan, layout: str) -> dict[str, torch.Tensor]:
    """Rename our state dict to ``layout`` (the inverse of :func:`to_our_layout`)."""
    num_classes = int(sd["classifier.bias"].shape[0]) if "classifier.bias" in sd else 0
    mapping = module_map(plan, layout, num_classes=num_classes)
    out = {}
    for key, tensor in sd.items():
        if key not in mapping:
            raise CheckpointError(f"key {key!r} has no counterpart in the {layout} layout")
        if key == "classifier.weight" and layout == "official":
            tensor = tensor[:, :, None, None]
        out[mapping[key]] = tensor
    return out


def guess_variant(sd: dict[str, torch.Tensor], layout: str = "auto") -> list[str]:
    """Registered variants whose every tensor shape matches the checkpoint (best guesses first)."""
    from ..zoo import get_plan, list_models  # the zoo sits beside this module; import late

    layout = detect_layout(sd.keys()) if layout == "auto" else layout
    matches = []
    for name in list_models():
        plan = get_plan(name)
        try:
            mapping = module_map(plan, layout, num_classes=_checkpoint_num_classes(sd, plan, layout))
        except (ValueError, KeyError):
            continue
        shapes = _expected_shapes(
            plan, int(sd[mapping["classifier.bias"]].shape[0]) if "classifier.bias" in mapping else 0
        )
        if set(mapping.values()) == set(sd) and all(
            tuple(sd[mapping[k]].flatten(1).shape if k == "classifier.weight" else sd[mapping[k]].shape) == s
            for k, s in shapes.items()
        ):
            matches.append(name)
    return matches


def _expected_shapes(plan: NetworkPlan, num_classes: int) -> dict[str, tuple[int, ...]]:
    from ..model import RexNet

    with torch.device("meta"):
        model = RexNet(plan, num_classes=num_classes)
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


def _describe_variant(sd: dict[str, torch.Tensor], layout: str) -> str:
    guesses = guess_variant(sd, layout)
    return f" The checkpoint looks like: {', '.join(guesses)}." if guesses else " It matches no registered variant."


def load_weights(
    model: nn.Module, path: str | os.PathLike, *, layout: str = "auto", drop_head: bool = False
) -> nn.Module:
    """Load a local checkpoint (ours, timm's or the official layout) into ``model`` in place.

    Args:
        model: A :class:`~rexnet.model.RexNet` (its ``plan`` drives the key map).
        path: ``.safetensors`` or ``.pth`` file; ``.pth`` is read weights-only.
        layout: ``auto``, ``ours``, ``timm`` or ``official``.
        drop_head: Skip the checkpoint's classifier (fine-tuning to another class count).

    Raises:
        CheckpointError: Unsafe or unreadable file, missing/extra keys, or shape mismatches
            (the message names expected vs found shapes and the variant the file fits).
    """
    raw, _ = read_state_dict(path)
    try:
        layout = detect_layout(raw.keys()) if layout == "auto" else layout
    except ValueError as e:
        raise CheckpointError(f"{path}: {e}") from e
    sd = to_our_layout(raw, model.plan, layout)
    if drop_head:
        for k in _CLASSIFIER_KEYS:
            sd.pop(k, None)
    own = model.state_dict()
    expected_missing = set(_CLASSIFIER_KEYS) if drop_head else set()
    missing = sorted(set(own) - set(sd) - expected_missing)
    unexpected = sorted(set(sd) - set(own))
    # in the model's (forward) order, so the first lines name the first layers that differ
    mismatched = [(k, tuple(v.shape), tuple(sd[k].shape)) for k, v in own.items() if k in sd and sd[k].shape != v.shape]
    if missing or unexpected or mismatched:
        head_only = not missing and not unexpected and all(k in _CLASSIFIER_KEYS for k, _, _ in mismatched)
        lines = [f"{path} ({layout} layout) does not fit {model.plan.family} model:"]
        for k, exp, found in mismatched[:8]:
            lines.append(f"  {k}: expected shape {exp}, found {found}")
        if len(mismatched) > 8:
            lines.append(f"  ... and {len(mismatched) - 8} more shape mismatches")
        for label, keys in (("missing", missing), ("unexpected", unexpected)):
            if keys:
                more = " ..." if len(keys) > 6 else ""
                lines.append(f"  {label} keys ({len(keys)}): {', '.join(keys[:6])}{more}")
        if head_only:
            lines.append("  only the classifier differs: pass drop_head=True (CLI: --drop-head) to fine-tune.")
        else:
            lines.append(" " + _describe_variant(raw, layout).strip())
        raise CheckpointError("\n".join(lines))
    model.load_state_dict(sd, strict=not drop_head)
    _log.info("loaded %s (%s layout)%s", path, layout, " without its classifier" if drop_head else "")
    return model


def save_weights(model: nn.Module, path: str | os.PathLike, *, name: str | None = None) -> Path:
    """Save ``model`` in our layout as safetensors, with its plan (and name) as metadata."""
    meta = {"format": "rexnet", "plan": json.dumps(model.plan.to_dict())}
    if name:
        meta["model"] = name
    return write_safetensors(model.state_dict(), path, meta)


def convert_checkpoint(src: str | os.PathLike, dst: str | os.PathLike, model_name: str | None = None) -> Path:
    """Convert an official or timm checkpoint to our safetensors layout.

    Args:
        src: Input checkpoint (``.pth`` or ``.safetensors``).
        dst: Output ``.safetensors`` path.
        model_name: Registered variant; guessed from the tensor shapes when ``None``.

    Returns:
        The written path.
    """
    from ..zoo import create_model

    raw, meta = read_state_dict(src)
    if model_name is None:
        model_name = meta.get("model")  # our own files name their variant
    if model_name is None:
        guesses = guess_variant(raw)
        if not guesses:
            raise CheckpointError(f"{src}: the tensor shapes match no registered variant; pass the model name")
        model_name = guesses[0]
        _log.info("%s looks like %s", src, model_name)
    layout = detect_layout(raw.keys())
    plan_probe = create_model(model_name, num_classes=0).plan
    num_classes = _checkpoint_num_classes(raw, plan_probe, layout)
    model = create_model(model_name, num_classes=num_classes)
    load_weights(model, src, layout=layout)
    return save_weights(model, dst, name=model_name)
