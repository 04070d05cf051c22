"""Reading and writing weights safely: ``.safetensors`` or weights-only ``.pth``, never plain pickle."""

from __future__ import annotations

import json
import os
import pickle
from pathlib import Path
from typing import Any

import torch

from .._files import atomic_write, check_regular_file
from ..errors import CheckpointError, InputError

__all__ = [
    "read_state_dict",
    "read_safetensors_metadata",
    "safe_torch_load",
    "write_safetensors",
    "atomic_torch_save",
    "unwrap_state_dict",
]

_CONTAINER_KEYS = ("state_dict", "model", "model_state", "state_dict_ema", "model_ema", "module")


def unwrap_state_dict(obj: Any) -> dict[str, torch.Tensor]:
    """Find the tensor dict inside common checkpoint containers and strip a DDP ``module.`` prefix."""
    if isinstance(obj, dict) and not any(isinstance(v, torch.Tensor) for v in obj.values()):
        for key in _CONTAINER_KEYS:
            if isinstance(obj.get(key), dict):
                return unwrap_state_dict(obj[key])
        raise CheckpointError(f"no state dict found in checkpoint; top-level keys: {sorted(map(str, obj))[:10]}")
    if not isinstance(obj, dict):
        raise CheckpointError(f"checkpoint holds a {type(obj).__name__}, not a state dict")
    sd = {k: v for k, v in obj.items() if isinstance(v, torch.Tensor)}
    if sd and all(k.startswith("module.") for k in sd):
        sd = {k[len("module.") :]: v for k, v in sd.items()}
    return sd


def _regular(path: str | os.PathLike) -> Path:
    """``path`` if it is a regular file: a FIFO or a device would block or never end."""
    try:
        return check_regular_file(path, "checkpoint")
    except CheckpointError:
        raise
    except InputError as e:
        raise CheckpointError(str(e)) from None


def read_state_dict(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Load a state dict from ``.safetensors`` or ``.pth``/``.pt`` without executing code.

    ``.pth`` files are read with ``torch.load(weights_only=True)``: a pickle that would
    construct arbitrary objects is refused.

    Returns:
        The tensors and the file's string metadata (empty for ``.pth``).

    Raises:
        CheckpointError: Missing, truncated, corrupt or unsafe file.
    """
    path = _regular(path)
    if path.suffix == ".safetensors":
        from safetensors import safe_open

        try:
            with safe_open(str(path), framework="pt") as f:
                meta = dict(f.metadata() or {})
                return {k: f.get_tensor(k) for k in f.keys()}, meta
        except Exception as e:  # safetensors raises its own error types for corrupt headers
            raise CheckpointError(f"cannot read {path}: not a valid safetensors file ({e})") from e
    return unwrap_state_dict(safe_torch_load(path)), {}


def read_safetensors_metadata(path: str | os.PathLike) -> dict[str, str]:
    """The string metadata of a ``.safetensors`` file, without reading its tensors.

    Raises:
        CheckpointError: Missing, not a regular file, or not a valid safetensors file.
    """
    path = _regular(path)
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            return dict(f.metadata() or {})
    except Exception as e:  # safetensors raises its own error types for corrupt headers
        raise CheckpointError(f"cannot read {path}: not a valid safetensors file ({e})") from e


def safe_torch_load(path: str | os.PathLike, *, mmap: bool = False) -> Any:
    """``torch.load(weights_only=True)`` on CPU, with every failure as a clear :class:`CheckpointError`.

    The one place rexnet calls ``torch.load``. ``mmap=True`` maps the tensors instead of reading
    them (cheap when only a few fields are looked at).

    Raises:
        CheckpointError: Missing, truncated or corrupt file, or a pickle that would execute code.
    """
    path = _regular(path)
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(9)
    if not head.startswith((b"PK\x03\x04", b"\x80")):  # torch.save's zip, or a legacy pickle
        what = "an empty file" if not size else f"{size:,} bytes that are neither torch.save's zip format nor a pickle"
        if head[8:9] == b"{":
            what += "; it looks like safetensors: name it .safetensors"
        raise CheckpointError(f"cannot read {path}: not a PyTorch checkpoint ({what})")
    try:
        return torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
    except pickle.UnpicklingError as e:
        # torch's message suggests weights_only=False; that is exactly what must not be done with an unknown file
        detail = next((ln.strip() for ln in str(e).splitlines() if "WeightsUnpickler error" in ln), "")
        raise CheckpointError(
            f"refused to load {path}: it is not a weights-only checkpoint (loading it would execute code, or it "
            f"is corrupt){'. Detail: ' + detail if detail else ''}"
        ) from e
    except (RuntimeError, EOFError, OSError, ValueError) as e:
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise CheckpointError(f"cannot read {path} ({size:,} bytes): truncated or corrupt checkpoint ({first})") from e


def write_safetensors(
    state_dict: dict[str, torch.Tensor],
    path: str | os.PathLike,
    metadata: dict[str, Any] | None = None,
    *,
    overwrite: bool = False,
) -> Path:
    """Write tensors to ``path`` atomically under the output policy (:mod:`rexnet._files`); metadata values
    are JSON-encoded. ``overwrite`` replaces a file this run did not write."""
    from safetensors.torch import save as save_safetensors

    path = Path(path)
    tensors = {k: v.detach().contiguous().cpu() for k, v in state_dict.items()}
    meta = {k: v if isinstance(v, str) else json.dumps(v) for k, v in (metadata or {}).items()}
    return atomic_write(path, save_safetensors(tensors, metadata=meta), overwrite=overwrite, what="weights file")


def atomic_torch_save(obj: Any, path: str | os.PathLike, *, overwrite: bool = False) -> Path:
    """``torch.save`` all or nothing, under the output policy (:mod:`rexnet._files`)."""
    return atomic_write(path, lambda f: torch.save(obj, f), overwrite=overwrite, what="checkpoint")
