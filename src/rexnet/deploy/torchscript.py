"""TorchScript export (scripted or traced) and its runner, written atomically."""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Literal

import torch
from torch import nn

from .._files import atomic_write_paths, check_regular_file
from ..errors import ExportError
from .fuse import fuse

__all__ = ["export_torchscript", "load_torchscript"]


def export_torchscript(
    model: nn.Module,
    path: str | os.PathLike,
    *,
    method: Literal["script", "trace"] = "script",
    image_size: int = 224,
    fused: bool = True,
    overwrite: bool = False,
) -> Path:
    """Save ``model`` as TorchScript (``torch.jit.load`` reads it back without rexnet), atomically.

    Args:
        model: A RexNet model.
        path: Output ``.pt`` file.
        method: ``script`` (control flow kept) or ``trace`` (traced at ``image_size``; the
            trace is shape-generic for this network, which has no size-dependent branches).
        image_size: Example input size for tracing.
        fused: Fold BatchNorms first (:func:`fuse`).
        overwrite: Replace an existing file this process did not write.

    Raises:
        ExportError: An unknown ``method``.
        OutputExistsError: ``path`` exists and ``overwrite`` is false.
    """
    if method not in ("script", "trace"):
        raise ExportError(f"unknown TorchScript method {method!r}; expected one of: script, trace")
    net = fuse(model) if fused else model.eval()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # torch.jit's deprecation notice
        if method == "script":
            ts = torch.jit.script(net)
        else:
            x = torch.randn(1, 3, image_size, image_size).contiguous(memory_format=torch.channels_last)
            ts = torch.jit.trace(net, x)
    atomic_write_paths(path, lambda tmp: ts.save(str(tmp)), overwrite=overwrite, what="TorchScript file")
    return Path(path)


def load_torchscript(path: str | os.PathLike) -> torch.jit.ScriptModule:
    """A TorchScript file as a callable module (NCHW float32 in, logits out).

    Raises:
        ExportError: Not a TorchScript archive.
    """
    p = check_regular_file(path, "TorchScript file")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return torch.jit.load(str(p))
        except (RuntimeError, ValueError) as e:
            raise ExportError(f"{p}: not a TorchScript file: {str(e).strip().splitlines()[0][:200]}") from None
