"""Loading official/timm/our checkpoints into a model, saving ours, converting between layouts."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .._files import check_output
from ..errors import CheckpointError, InputError
from ..plan.spec import NetworkPlan
from .adapt import CLASSIFIER_KEYS, FIRST_CONV_KEY, absent_module_keys, adapt_input_conv, summarize_keys
from .io import atomic_torch_save, read_state_dict, write_safetensors
from .layouts import detect_layout, module_map, tensor_shapes
from .metadata import check_tensor_dtypes

__all__ = [
    "to_our_layout",
    "from_our_layout",
    "load_weights",
    "save_weights",
    "convert_weights",
    "guess_variant",
    "checkpoint_num_classes",
]

_log = logging.getLogger(__name__)

#: Plans a checkpoint may be compared with: ``{name: plan}`` (the zoo passes its registry).
Candidates = Mapping[str, NetworkPlan]
StateDict = dict[str, torch.Tensor]


def checkpoint_num_classes(sd: StateDict, plan: NetworkPlan, layout: str = "auto") -> int:
    """Outputs of the classifier a state dict of ``layout`` holds for ``plan`` (0 for a headless one)."""
    layout = detect_layout(sd.keys()) if layout == "auto" else layout
    key = module_map(plan, layout, num_classes=1)["classifier.bias"]
    return int(sd[key].shape[0]) if key in sd else 0


def to_our_layout(sd: StateDict, plan: NetworkPlan, layout: str = "auto") -> StateDict:
    """Rename a state dict of ``layout`` (or detected) to our keys for ``plan``.

    Keys the plan does not know are kept under their original names, so the caller's strict
    check reports them. The official 1x1-conv classifier is reshaped to a linear weight.
    """
    layout = detect_layout(sd.keys()) if layout == "auto" else layout
    mapping = module_map(plan, layout, num_classes=checkpoint_num_classes(sd, plan, layout))
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


def guess_variant(sd: StateDict, candidates: Candidates, layout: str = "auto") -> list[str]:
    """Names of the ``candidates`` whose every tensor shape matches the checkpoint (in their order).

    Args:
        sd: A state dict of any layout.
        candidates: ``{name: plan}`` to compare with, e.g. the zoo's registry.
        layout: ``auto`` or the checkpoint's layout.
    """
    layout = detect_layout(sd.keys()) if layout == "auto" else layout
    matches = []
    for name, plan in candidates.items():
        try:
            num_classes = checkpoint_num_classes(sd, plan, layout)
            mapping = module_map(plan, layout, num_classes=num_classes)
        except (ValueError, KeyError):
            continue
        shapes = tensor_shapes(plan, num_classes)
        if set(mapping.values()) == set(sd) and all(
            tuple(sd[mapping[k]].flatten(1).shape if k == "classifier.weight" else sd[mapping[k]].shape) == s
            for k, s in shapes.items()
        ):
            matches.append(name)
    return matches


def load_weights(
    model: nn.Module,
    source: str | os.PathLike | StateDict,
    *,
    layout: str = "auto",
    drop_head: bool | None = False,
    adapt_in_chans: bool = False,
    candidates: Candidates | None = None,
    label: str | None = None,
) -> nn.Module:
    """Load a checkpoint (ours, timm's or the official layout) into ``model`` in place.

    Tensors of modules the model does not have are skipped with a log line: a ``features_only``
    backbone (or a model after ``prune_intermediate_layers``) takes a full checkpoint and leaves
    out the head, the final conv and the blocks past its last level. Every other key must match.

    Args:
        model: A :class:`~rexnet.model.RexNet` (its ``plan`` drives the key map).
        source: ``.safetensors`` or ``.pth`` file (``.pth`` is read weights-only), or a state dict
            already read.
        layout: ``auto``, ``ours``, ``timm`` or ``official``.
        drop_head: ``True`` skips the checkpoint's classifier (fine-tuning); ``None`` skips it
            only when its class count differs from the model's, with a log line (what
            ``create_model`` does, as timm); ``False`` requires it to fit.
        adapt_in_chans: Adapt the first conv's weights when the model takes another number
            of input channels (sum for 1 channel, repeat and scale for more; as timm).
        candidates: ``{name: plan}`` that a misfitting checkpoint is compared with, so the
            error can say which variant it fits (the zoo passes its registry).
        label: How messages name the source (default: the path, or "the state dict").

    Raises:
        CheckpointError: Unsafe or unreadable file, missing/extra keys, shape mismatches
            (the message names expected vs found shapes and the variant the file fits), or integer
            or bool tensors where the model has float weights.
    """
    raw = read_state_dict(source)[0] if isinstance(source, (str, os.PathLike)) else source
    label = label or (str(source) if isinstance(source, (str, os.PathLike)) else "the state dict")
    try:
        layout = detect_layout(raw.keys()) if layout == "auto" else layout
    except ValueError as e:
        raise CheckpointError(f"{label}: {e}") from e
    sd = to_our_layout(raw, model.plan, layout)
    own = model.state_dict()
    notes = []
    skipped = sorted(k for k in absent_module_keys(model.plan, set(own)) if k in sd)
    if skipped:
        for k in skipped:
            del sd[k]
        notes.append(f"skipped {len(skipped)} tensors of modules the model does not have ({summarize_keys(skipped)})")
    check_tensor_dtypes(sd, own, label)  # int8/bool tensors would be cast to float weights without a word
    head_dropped = _drop_head(sd, own, drop_head, notes)
    first = own.get(FIRST_CONV_KEY)
    if adapt_in_chans and first is not None and FIRST_CONV_KEY in sd:
        w = sd[FIRST_CONV_KEY]
        if w.shape != first.shape and _same_but_in_chans(tuple(w.shape), tuple(first.shape)):
            sd[FIRST_CONV_KEY] = adapt_input_conv(first.shape[1], w)
            notes.append(f"adapted {FIRST_CONV_KEY} from {w.shape[1]} to {first.shape[1]} input channels")
    shapes = {k: tuple(v.shape) for k, v in own.items()}
    _check_fit(sd, shapes, set(CLASSIFIER_KEYS) if head_dropped else set(), model.plan, label, layout, raw, candidates)
    model.load_state_dict(sd, strict=not head_dropped)
    _log.info("loaded %s (%s layout)%s", label, layout, "".join(f"; {n}" for n in notes))
    return model


def _drop_head(sd: StateDict, own: StateDict, drop_head: bool | None, notes: list[str]) -> bool:
    """Remove the checkpoint's classifier from ``sd`` when ``drop_head`` asks for it; whether it was."""
    head_in_model = all(k in own for k in CLASSIFIER_KEYS)
    head_differs = head_in_model and any(k in sd and sd[k].shape != own[k].shape for k in CLASSIFIER_KEYS)
    if not (drop_head or (drop_head is None and head_differs)):
        return False
    found = sd["classifier.bias"].shape[0] if "classifier.bias" in sd else None
    for k in CLASSIFIER_KEYS:
        sd.pop(k, None)
    if found is not None and head_in_model:
        notes.append(
            f"dropped the checkpoint's {found}-class classifier (the model's has {own['classifier.bias'].shape[0]})"
        )
    return True


def _check_fit(
    sd: StateDict,
    shapes: dict[str, tuple[int, ...]],
    may_miss: set[str],
    plan: NetworkPlan,
    label: object,
    layout: str,
    raw: StateDict,
    candidates: Candidates | None,
) -> None:
    """Raise a :class:`CheckpointError` naming every key and shape of ``sd`` (our layout) that misfits ``shapes``."""
    missing = sorted(set(shapes) - set(sd) - may_miss)
    unexpected = sorted(set(sd) - set(shapes))
    # in the model's (forward) order, so the first lines name the first layers that differ
    mismatched = [(k, s, tuple(sd[k].shape)) for k, s in shapes.items() if k in sd and tuple(sd[k].shape) != s]
    if missing or unexpected or mismatched:
        lines = [f"{label} ({layout} layout) does not fit {plan.family} model:"]
        lines += _misfit_lines(missing, unexpected, mismatched)
        hint = _misfit_hint(missing, unexpected, mismatched)
        if hint:
            lines.append(hint)
        elif candidates is not None:
            guesses = guess_variant(raw, candidates, layout)
            lines.append(
                f"  The checkpoint looks like: {', '.join(guesses)}."
                if guesses
                else "  It matches no registered variant."
            )
        raise CheckpointError("\n".join(lines))


def _same_but_in_chans(a: tuple[int, ...], b: tuple[int, ...]) -> bool:
    return len(a) == len(b) == 4 and a[:1] + a[2:] == b[:1] + b[2:]


def _misfit_lines(
    missing: list[str], unexpected: list[str], mismatched: list[tuple[str, tuple[int, ...], tuple[int, ...]]]
) -> list[str]:
    lines = [f"  {k}: expected shape {exp}, found {found}" for k, exp, found in mismatched[:8]]
    if len(mismatched) > 8:
        lines.append(f"  ... and {len(mismatched) - 8} more shape mismatches")
    for label, keys in (("missing", missing), ("unexpected", unexpected)):
        if keys:
            more = " ..." if len(keys) > 6 else ""
            lines.append(f"  {label} keys ({len(keys)}): {', '.join(keys[:6])}{more}")
    return lines


def _misfit_hint(
    missing: list[str], unexpected: list[str], mismatched: list[tuple[str, tuple[int, ...], tuple[int, ...]]]
) -> str | None:
    """What to pass when only the classifier or only the input channels differ."""
    only = [k for k, _, _ in mismatched] if not missing and not unexpected else []
    if only and all(k in CLASSIFIER_KEYS for k in only):
        return (
            "  only the classifier differs: pass drop_head=True to fine-tune "
            "(CLI: rexnet finetune --pretrained FILE replaces the head)."
        )
    if only == [FIRST_CONV_KEY] and _same_but_in_chans(*mismatched[0][1:]):
        exp, found = mismatched[0][1:]
        return (
            f"  only the input channels differ ({found[1]} in the file, {exp[1]} in the model): "
            "pass adapt_in_chans=True (create_model does) to adapt the first conv."
        )
    return None


#: The ``pretrained_cfg`` fields a weights file records: the preprocessing the weights were made for
#: (a fine-tune from the file starts from them: :mod:`rexnet.train.weights_source`).
PREPROCESSING_FIELDS = ("input_size", "interpolation", "crop_pct", "mean", "std")


def _write_safetensors(
    sd: StateDict,
    plan: NetworkPlan,
    path: str | os.PathLike,
    name: str | None,
    overwrite: bool = False,
    pretrained_cfg: dict[str, Any] | None = None,
) -> Path:
    """Our layout as safetensors, with the plan (and the variant name, the preprocessing) as metadata."""
    meta = {"format": "rexnet", "plan": json.dumps(plan.to_dict())}
    if name:
        meta["model"] = name
    pcfg = {k: list(v) if isinstance(v, tuple) else v for k, v in (pretrained_cfg or {}).items()}
    pcfg = {k: pcfg[k] for k in PREPROCESSING_FIELDS if pcfg.get(k) is not None}
    if pcfg:
        meta["pretrained_cfg"] = json.dumps(pcfg)
    return write_safetensors(sd, path, meta, overwrite=overwrite)


def save_weights(
    model: nn.Module, path: str | os.PathLike, *, name: str | None = None, overwrite: bool = False
) -> Path:
    """Save ``model`` in our layout as safetensors, with its plan, name and preprocessing as metadata.

    ``name`` defaults to the model's registered name (``model.model_name``, set by ``create_model``).
    The preprocessing (``input_size``, ``interpolation``, ``crop_pct``, ``mean``, ``std`` of
    ``model.pretrained_cfg``) goes into the metadata as ``pretrained_cfg``: a fine-tune from the file
    takes its image size and normalisation from there.
    ``overwrite`` replaces an existing file this process did not write (see :mod:`rexnet._files`).
    """
    name = name or getattr(model, "model_name", None)
    pcfg = getattr(model, "pretrained_cfg", None)
    return _write_safetensors(
        model.state_dict(), model.plan, path, name, overwrite, pcfg if isinstance(pcfg, dict) else None
    )


def convert_weights(
    src: str | os.PathLike | StateDict,
    dst: str | os.PathLike,
    plan: NetworkPlan,
    *,
    name: str | None = None,
    overwrite: bool = False,
    force: bool = False,
    label: str | None = None,
    to: str = "ours",
) -> Path:
    """Write a checkpoint of ``plan`` (any layout) in our layout or timm's (``rexnet convert``'s work).

    :func:`rexnet.zoo.convert_checkpoint` finds the plan for a variant name (or guesses it).

    Args:
        src: Input checkpoint (``.pth`` or ``.safetensors``) or its state dict.
        dst: Output path; its suffix names the format: ``.safetensors``, or ``.pth``/``.pt`` for
            a weights-only ``torch.save`` file.
        plan: The network's plan.
        name: Variant name recorded in the output.
        overwrite: Replace an existing ``dst`` this process did not write (the output policy of
            :mod:`rexnet._files`).
        force: The older name of ``overwrite``.
        label: How messages name the source (default: the path, or "the state dict").
        to: ``ours`` (with the plan and name as metadata) or ``timm`` (timm's keys, as timm's own files;
            ReXNet-lite has no timm layout).

    Returns:
        The written path.

    Raises:
        CheckpointError: Unreadable ``src``, tensors that do not fit ``plan``, an unknown ``dst`` suffix,
            or a plan timm does not have.
        OutputExistsError: ``dst`` exists, this process did not write it, and ``overwrite`` is false.
    """
    dst = Path(dst)
    overwrite = overwrite or force
    if to not in ("ours", "timm"):
        raise InputError(f"--to must be 'ours' or 'timm', got {to!r}")
    check_destination(dst, overwrite)
    raw = read_state_dict(src)[0] if isinstance(src, (str, os.PathLike)) else src
    label = label or (str(src) if isinstance(src, (str, os.PathLike)) else "the state dict")
    try:
        layout = detect_layout(raw.keys())
    except ValueError as e:
        raise CheckpointError(f"{label}: {e}") from e
    sd = to_our_layout(raw, plan, layout)
    shapes = tensor_shapes(plan, checkpoint_num_classes(raw, plan, layout))
    _check_fit(sd, shapes, set(), plan, label, layout, raw, None)
    # integer or bool weights would be written as they are and refused at load time: refuse them here
    check_tensor_dtypes(sd, {k: torch.empty(0) for k in shapes if not k.endswith("num_batches_tracked")}, label)
    sd = {k: sd[k] for k in shapes}
    if to == "timm":
        sd = from_our_layout(sd, plan, "timm")
        if dst.suffix == ".safetensors":
            meta = {"format": "pt", "layout": "timm", **({"model": name} if name else {})}
            return write_safetensors(sd, dst, meta, overwrite=overwrite)
        return atomic_torch_save(sd, dst, overwrite=overwrite)  # a bare state dict, as timm saves
    if dst.suffix == ".safetensors":
        return _write_safetensors(sd, plan, dst, name, overwrite=overwrite)
    return atomic_torch_save({"state_dict": sd, "model_name": name}, dst, overwrite=overwrite)


def check_destination(dst: str | os.PathLike, overwrite: bool = False) -> None:
    """Refuse an output path of an unknown suffix, a folder, or a file in the way (before any reading).

    Raises:
        CheckpointError: A suffix other than ``.safetensors``, ``.pth`` or ``.pt``.
        OutputExistsError: ``dst`` exists, this process did not write it, and ``overwrite`` is false
            (the message says ``--overwrite``).
        InputError: ``dst`` is a folder or a special file, or a parent of it is a file.
    """
    dst = Path(dst)
    if dst.suffix not in (".safetensors", ".pth", ".pt"):
        raise CheckpointError(
            f"{dst}: the destination must end in .safetensors, .pth or .pt (the suffix names the format written)"
        )
    check_output(dst, overwrite=overwrite, what="destination")
