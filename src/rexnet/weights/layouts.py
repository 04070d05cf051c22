"""Key layouts of ReXNet checkpoints and the maps between them.

Three layouts exist:

* ``ours``: ``stem.conv``, ``blocks.{i}.{expand,depthwise,project}.{conv,bn}``,
  ``blocks.{i}.se.{reduce,bn,expand}``, ``final_conv``, ``[head_hidden]``, ``classifier``.
* ``timm``: ``stem.conv``, ``features.{i}.{conv_exp,conv_dw,conv_pwl}.{conv,bn}``,
  ``features.{i}.se.{fc1,bn,fc2}``, ``features.{n}`` (penultimate), ``head.fc``.
* ``official`` (clovaai/rexnet ``rexnetv1.py`` / ``rexnetv1_lite.py``): one flat
  ``nn.Sequential`` ``features.{k}`` whose blocks are ``features.{3+i}.out.{j}``, and
  ``output.{j}`` whose classifier is a 1x1 conv (its weight has two trailing 1-sized dims).

The maps are generated from the plan, module by module, so every variant (any width, depth or
kernel configuration) is covered by the same code.
"""

from __future__ import annotations

from ..errors import CheckpointError, InputError
from ..plan.spec import NetworkPlan

__all__ = ["LAYOUTS", "module_map", "detect_layout", "tensor_shapes"]

LAYOUTS = ("ours", "timm", "official")

_CONV = ("weight",)
_CONV_BIAS = ("weight", "bias")
_BN = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")


def _ours(plan: NetworkPlan, num_classes: int) -> list[tuple[str, tuple[str, ...]]]:
    """Our modules in forward order, with the tensors each holds."""
    mods: list[tuple[str, tuple[str, ...]]] = [("stem.conv", _CONV), ("stem.bn", _BN)]
    for i, b in enumerate(plan.blocks):
        p = f"blocks.{i}"
        if b.has_expansion:
            mods += [(f"{p}.expand.conv", _CONV), (f"{p}.expand.bn", _BN)]
        mods += [(f"{p}.depthwise.conv", _CONV), (f"{p}.depthwise.bn", _BN)]
        if b.se_channels:
            mods += [(f"{p}.se.reduce", _CONV_BIAS), (f"{p}.se.bn", _BN), (f"{p}.se.expand", _CONV_BIAS)]
        mods += [(f"{p}.project.conv", _CONV), (f"{p}.project.bn", _BN)]
    mods += [("final_conv.conv", _CONV), ("final_conv.bn", _BN)]
    if plan.head.hidden_channels:
        mods += [("head_hidden.conv", _CONV_BIAS), ("head_hidden.bn", _BN)]
    if num_classes:
        mods += [("classifier", _CONV_BIAS)]
    return mods


def tensor_shapes(plan: NetworkPlan, num_classes: int = 1000, in_chans: int = 3) -> dict[str, tuple[int, ...]]:
    """Shape of every tensor of the network ``plan`` describes, by our key (no module is built).

    Used to tell which plan a checkpoint fits; a test checks it against the model's state dict.

    Example:
        >>> from rexnet.plan import rexnet_plan
        >>> tensor_shapes(rexnet_plan(), num_classes=10)["classifier.weight"]
        (10, 1280)
    """
    s, f, hidden = plan.stem, plan.final_conv, plan.head.hidden_channels
    convs: dict[str, tuple[int, ...]] = {"stem.conv": (s.out_channels, in_chans, s.kernel_size, s.kernel_size)}
    for i, b in enumerate(plan.blocks):
        p = f"blocks.{i}"
        convs[f"{p}.expand.conv"] = (b.exp_channels, b.in_channels, 1, 1)
        convs[f"{p}.depthwise.conv"] = (b.exp_channels, 1, b.kernel_size, b.kernel_size)
        convs[f"{p}.se.reduce"] = (b.se_channels, b.exp_channels, 1, 1)
        convs[f"{p}.se.expand"] = (b.exp_channels, b.se_channels, 1, 1)
        convs[f"{p}.project.conv"] = (b.out_channels, b.exp_channels, 1, 1)
    convs["final_conv.conv"] = (f.out_channels, f.in_channels, 1, 1)
    convs["head_hidden.conv"] = (hidden, f.out_channels, 1, 1)
    convs["classifier"] = (num_classes, hidden or f.out_channels)
    shapes: dict[str, tuple[int, ...]] = {}
    for module, tensors in _ours(plan, num_classes):
        if module.endswith(".bn"):
            width = convs[module[:-3] + (".reduce" if module.endswith(".se.bn") else ".conv")][0]
            for t in tensors:
                shapes[f"{module}.{t}"] = () if t == "num_batches_tracked" else (width,)
            continue
        weight = convs[module]
        shapes[f"{module}.weight"] = weight
        if "bias" in tensors:
            shapes[f"{module}.bias"] = weight[:1]
    return shapes


def _timm_name(name: str, n_blocks: int) -> str:
    parts = name.split(".")
    if parts[0] == "stem":
        return name
    if parts[0] == "blocks":
        i, rest = parts[1], parts[2:]
        sub = {"expand": "conv_exp", "depthwise": "conv_dw", "project": "conv_pwl"}
        if rest[0] == "se":
            return f"features.{i}.se." + {"reduce": "fc1", "bn": "bn", "expand": "fc2"}[rest[1]]
        return f"features.{i}.{sub[rest[0]]}.{rest[1]}"
    if parts[0] == "final_conv":
        return f"features.{n_blocks}.{parts[1]}"
    if parts[0] == "classifier":
        return "head.fc"
    raise KeyError(f"timm's layout has no counterpart for {name!r}")


def _official_names(plan: NetworkPlan) -> dict[str, str]:
    """Module names of the official flat-Sequential layout, for V1 and lite alike."""
    out = {"stem.conv": "features.0", "stem.bn": "features.1"}
    k0 = 3  # stem conv, BN, activation
    for i, b in enumerate(plan.blocks):
        p, q = f"blocks.{i}", f"features.{k0 + i}.out"
        j = 0
        if b.has_expansion:
            out[f"{p}.expand.conv"], out[f"{p}.expand.bn"] = f"{q}.{j}", f"{q}.{j + 1}"
            j += 3  # conv, BN, activation
        out[f"{p}.depthwise.conv"], out[f"{p}.depthwise.bn"] = f"{q}.{j}", f"{q}.{j + 1}"
        j += 2
        if b.se_channels:
            out[f"{p}.se.reduce"], out[f"{p}.se.bn"], out[f"{p}.se.expand"] = (
                f"{q}.{j}.fc.0",
                f"{q}.{j}.fc.1",
                f"{q}.{j}.fc.3",
            )
            j += 1
        j += 1  # the depthwise activation (a module in both official files)
        out[f"{p}.project.conv"], out[f"{p}.project.bn"] = f"{q}.{j}", f"{q}.{j + 1}"
    k = k0 + len(plan.blocks)
    out["final_conv.conv"], out["final_conv.bn"] = f"features.{k}", f"features.{k + 1}"
    if plan.head.hidden_channels:  # lite: conv(bias), BN, ReLU6, Dropout, conv
        out["head_hidden.conv"], out["head_hidden.bn"], out["classifier"] = "output.0", "output.1", "output.4"
    else:  # V1: Dropout, conv
        out["classifier"] = "output.1"
    return out


def module_map(plan: NetworkPlan, layout: str, num_classes: int = 1000) -> dict[str, str]:
    """Map every tensor key of our layout to its key in ``layout``.

    Args:
        plan: The network's plan.
        layout: One of ``ours``, ``timm``, ``official``.
        num_classes: Whether (non-zero) the classifier is included.

    Returns:
        ``{our_key: their_key}`` for every parameter and buffer.
    """
    if layout not in LAYOUTS:
        raise InputError(f"unknown layout {layout!r}; expected one of: {', '.join(LAYOUTS)}")
    mods = _ours(plan, num_classes)
    if layout == "ours":
        names = {m: m for m, _ in mods}
    elif layout == "timm":
        if plan.head.hidden_channels:
            raise CheckpointError("timm has no ReXNet-lite; use the official layout for lite checkpoints")
        names = {m: _timm_name(m, len(plan.blocks)) for m, _ in mods}
    else:
        names = _official_names(plan)
    return {f"{m}.{t}": f"{names[m]}.{t}" for m, tensors in mods for t in tensors}


def detect_layout(keys: list[str] | set[str]) -> str:
    """Guess a state dict's layout from its keys.

    Raises:
        ValueError: If the keys fit none of the known layouts.
    """
    keys = set(keys)
    if any(k.startswith("blocks.") for k in keys) and "stem.conv.weight" in keys:
        return "ours"
    if "stem.conv.weight" in keys and any(".conv_dw." in k for k in keys):
        return "timm"
    if "features.0.weight" in keys and any(k.startswith("output.") for k in keys):
        return "official"
    if "features.0.weight" in keys and any(".out." in k for k in keys):
        return "official"  # a headless official checkpoint
    sample = ", ".join(sorted(keys)[:5])
    raise CheckpointError(f"unrecognised checkpoint layout (first keys: {sample}); expected ours, timm or official")
