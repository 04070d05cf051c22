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
from .adapt import CLASSIFIER_KEYS, FIRST_CONV_KEY, absent_module_keys, adapt_input_conv, summarize_keys
from .io import atomic_torch_save, read_state_dict, write_safetensors
from .layouts import detect_layout, module_map

__all__ = ["to_our_layout", "from_our_layout", "load_weights", "save_weights", "convert_checkpoint", "guess_variant"]

_log = logging.getLogger(__name__)


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
    model: nn.Module,
    path: str | os.PathLike,
    *,
    layout: str = "auto",
    drop_head: bool | None = False,
    adapt_in_chans: bool = False,
) -> nn.Module:
    """Load a local checkpoint (ours, timm's or the official layout) into ``model`` in place.

    Tensors of modules the model does not have are skipped with a log line: a ``features_only``
    backbone (or a model after ``prune_intermediate_layers``) takes a full checkpoint and leaves
    out the head, the final conv and the blocks past its last level. Every other key must match.

    Args:
        model: A :class:`~rexnet.model.RexNet` (its ``plan`` drives the key map).
        path: ``.safetensors`` or ``.pth`` file; ``.pth`` is read weights-only.
        layout: ``auto``, ``ours``, ``timm`` or ``official``.
        drop_head: ``True`` skips the checkpoint's classifier (fine-tuning); ``None`` skips it
            only when its class count differs from the model's, with a log line (what
            ``create_model`` does, as timm); ``False`` requires it to fit.
        adapt_in_chans: Adapt the first conv's weights when the model takes another number
            of input channels (sum for 1 channel, repeat and scale for more; as timm).

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
    own = model.state_dict()
    notes = []
    skipped = sorted(k for k in absent_module_keys(model.plan, set(own)) if k in sd)
    if skipped:
        for k in skipped:
            del sd[k]
        notes.append(f"skipped {len(skipped)} tensors of modules the model does not have ({summarize_keys(skipped)})")
    head_in_model = all(k in own for k in CLASSIFIER_KEYS)
    head_differs = head_in_model and any(k in sd and sd[k].shape != own[k].shape for k in CLASSIFIER_KEYS)
    head_dropped = bool(drop_head) or (drop_head is None and head_differs)
    if head_dropped:
        found = sd["classifier.bias"].shape[0] if "classifier.bias" in sd else None
        for k in CLASSIFIER_KEYS:
            sd.pop(k, None)
        if found is not None and head_in_model:
            ours = own["classifier.bias"].shape[0]
            notes.append(f"dropped the checkpoint's {found}-class classifier (the model's has {ours})")
    first = own.get(FIRST_CONV_KEY)
    if adapt_in_chans and first is not None and FIRST_CONV_KEY in sd:
        w = sd[FIRST_CONV_KEY]
        if w.shape != first.shape and _same_but_in_chans(tuple(w.shape), tuple(first.shape)):
            sd[FIRST_CONV_KEY] = adapt_input_conv(first.shape[1], w)
            notes.append(f"adapted {FIRST_CONV_KEY} from {w.shape[1]} to {first.shape[1]} input channels")
    expected_missing = set(CLASSIFIER_KEYS) if head_dropped else set()
    missing = sorted(set(own) - set(sd) - expected_missing)
    unexpected = sorted(set(sd) - set(own))
    # in the model's (forward) order, so the first lines name the first layers that differ
    mismatched = [(k, tuple(v.shape), tuple(sd[k].shape)) for k, v in own.items() if k in sd and sd[k].shape != v.shape]
    if missing or unexpected or mismatched:
        raise CheckpointError(_misfit_message(model, path, layout, raw, missing, unexpected, mismatched))
    model.load_state_dict(sd, strict=not head_dropped)
    _log.info("loaded %s (%s layout)%s", path, layout, "".join(f"; {n}" for n in notes))
    return model


def _same_but_in_chans(a: tuple[int, ...], b: tuple[int, ...]) -> bool:
    return len(a) == len(b) == 4 and a[:1] + a[2:] == b[:1] + b[2:]


def _misfit_message(
    model: nn.Module,
    path: str | os.PathLike,
    layout: str,
    raw: dict[str, torch.Tensor],
    missing: list[str],
    unexpected: list[str],
    mismatched: list[tuple[str, tuple[int, ...], tuple[int, ...]]],
) -> str:
    lines = [f"{path} ({layout} layout) does not fit {model.plan.family} model:"]
    for k, exp, found in mismatched[:8]:
        lines.append(f"  {k}: expected shape {exp}, found {found}")
    if len(mismatched) > 8:
        lines.append(f"  ... and {len(mismatched) - 8} more shape mismatches")
    for label, keys in (("missing", missing), ("unexpected", unexpected)):
        if keys:
            more = " ..." if len(keys) > 6 else ""
            lines.append(f"  {label} keys ({len(keys)}): {', '.join(keys[:6])}{more}")
    only = [k for k, _, _ in mismatched] if not missing and not unexpected else []
    if only and all(k in CLASSIFIER_KEYS for k in only):
        lines.append("  only the classifier differs: pass drop_head=True to fine-tune "
                     "(CLI: rexnet finetune --pretrained FILE replaces the head).")
    elif only == [FIRST_CONV_KEY] and _same_but_in_chans(*mismatched[0][1:]):
        exp, found = mismatched[0][1:]
        lines.append(
            f"  only the input channels differ ({found[1]} in the file, {exp[1]} in the model): "
            "pass adapt_in_chans=True (create_model does) to adapt the first conv."
        )
    else:
        lines.append(" " + _describe_variant(raw, layout).strip())
    return "\n".join(lines)


def save_weights(model: nn.Module, path: str | os.PathLike, *, name: str | None = None) -> Path:
    """Save ``model`` in our layout as safetensors, with its plan (and name) as metadata."""
    meta = {"format": "rexnet", "plan": json.dumps(model.plan.to_dict())}
    if name:
        meta["model"] = name
    return write_safetensors(model.state_dict(), path, meta)


def convert_checkpoint(src: str | os.PathLike, dst: str | os.PathLike, model_name: str | None = None, *,
                       force: bool = False) -> Path:
    """Convert an official or timm checkpoint to our layout.

    Args:
        src: Input checkpoint (``.pth`` or ``.safetensors``).
        dst: Output path; its suffix names the format: ``.safetensors``, or ``.pth``/``.pt`` for
            a weights-only ``torch.save`` file.
        model_name: Registered variant; guessed from the tensor shapes when ``None``.
        force: Overwrite an existing ``dst``.

    Returns:
        The written path.

    Raises:
        CheckpointError: Unreadable ``src``, an unknown ``dst`` suffix, or an existing ``dst`` without ``force``.
    """
    from ..zoo import create_model

    dst = Path(dst)
    if dst.suffix not in (".safetensors", ".pth", ".pt"):
        raise CheckpointError(f"{dst}: the destination must end in .safetensors, .pth or .pt (the suffix names "
                              "the format written)")
    if dst.is_dir():
        raise CheckpointError(f"{dst} is a directory; give the output file name")
    if dst.exists() and not force:
        raise CheckpointError(f"{dst} exists; pass force=True (CLI: --force) to overwrite it")

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
    if dst.suffix == ".safetensors":
        return save_weights(model, dst, name=model_name)
    return atomic_torch_save({"state_dict": model.state_dict(), "model_name": model_name}, dst)
