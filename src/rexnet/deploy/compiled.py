"""``torch.compile`` for CPU inference: BN folded, channels-last, inductor with frozen weights."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from .fuse import fuse

__all__ = ["FrozenCompiled", "compile_model"]


class FrozenCompiled(nn.Module):
    """A ``torch.compile``d module whose compilations run with inductor's ``freezing`` on.

    Freezing has to be set in inductor's global config while a graph compiles (the
    ``options=`` route does not reach the int8 lowering); compilation happens lazily at the
    first call of each shape, so every call runs under ``config.patch(freezing=True)``.
    """

    def __init__(self, module: nn.Module, **compile_kwargs: Any) -> None:
        super().__init__()
        self.compiled = torch.compile(module, **compile_kwargs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        import torch._inductor.config as inductor_config

        with inductor_config.patch(freezing=True):
            return self.compiled(x)


def compile_model(model: nn.Module, *, fused: bool = True, dynamic: bool | None = False, **kwargs: Any) -> nn.Module:
    """``torch.compile`` for CPU inference: BN folded, channels-last, inductor with frozen weights.

    Freezing lets inductor pre-pack the conv weights for oneDNN and fuse each conv with its
    activation. Feed channels-last inputs. The first call compiles (a minute or two on 2 cores).

    Args:
        model: A RexNet model (fused first when ``fused``).
        fused: Fold BatchNorms first.
        dynamic: Passed to ``torch.compile`` (``False``: one graph per input shape).
        **kwargs: Further ``torch.compile`` arguments.
    """
    net = fuse(model) if fused else model.eval()
    return FrozenCompiled(net, dynamic=dynamic, **kwargs)
