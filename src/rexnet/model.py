"""The ReXNet model family: one ``nn.Module`` built from a :class:`~rexnet.plan.NetworkPlan`.

Han, Yun, Heo, Yoo, "Rethinking Channel Dimensions for Efficient Model Design", CVPR 2021
(arXiv:2007.00992). The same class builds ReXNet, ReXNet-lite, ReXNet-R, MobileNetV2 and any
searched configuration, because every shape decision lives in the plan.

The module surface follows timm (``forward_features``, ``forward_head``, ``forward_intermediates``,
``prune_intermediate_layers``, ``reset_classifier``, ``set_grad_checkpointing``, ``group_matcher``,
``feature_info``, ``pretrained_cfg``).
"""

# No ``from __future__ import annotations``: FX copies forward's annotations into generated code,
# which TorchScript must then resolve (issue 16).

from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from .errors import InputError
from .features import FeatureInfo, Indices, feature_take_indices, resolve_out_indices
from .layers import ConvBnAct, GlobalPool, InvertedBottleneck
from .plan.spec import NetworkPlan

__all__ = ["RexNet", "RexNetFeatures", "IMAGENET_MEAN", "IMAGENET_STD", "set_pretrained_writer"]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

# The function behind RexNet.save_pretrained: it needs the zoo and the weights layers, which sit above this
# one, so the zoo registers it when it is imported (``import rexnet`` always imports it).
_pretrained_writer: list[Callable[..., Any]] = []


def set_pretrained_writer(writer: Callable[..., Any]) -> None:
    """Make ``writer(model, save_directory, **kwargs)`` the function :meth:`RexNet.save_pretrained` calls."""
    _pretrained_writer[:] = [writer]


class RexNet(nn.Module):
    """ReXNet-style network: stem -> inverted bottlenecks -> 1x1 conv -> pool -> [hidden] -> dropout -> FC.

    Args:
        plan: The channel plan (see :mod:`rexnet.plan`).
        num_classes: Classifier outputs; 0 gives a model that returns pooled features.
        in_chans: Input image channels.
        drop_rate: Dropout before the classifier; ``None`` takes the plan's (0.2 for ReXNet).
        drop_path_rate: Stochastic depth; block ``i`` gets ``rate * i / (n - 1)``, applied only
            to blocks with a shortcut (the fix of timm PR #685).
        output_stride: 32, 16 or 8; later strides become dilations (for dense prediction).
        global_pool: ``avg``, ``max``, ``avgmax``, ``catavgmax`` or ``""`` (no pooling: the
            head returns maps; needs ``num_classes=0``).

    Example:
        >>> from rexnet.plan import rexnet_plan
        >>> model = RexNet(rexnet_plan(1.0)).eval()
        >>> model(torch.zeros(1, 3, 224, 224)).shape
        torch.Size([1, 1000])
    """

    __jit_unused_properties__ = ["default_cfg"]  # a Python-side dict TorchScript need not compile

    def __init__(
        self,
        plan: NetworkPlan,
        num_classes: int = 1000,
        in_chans: int = 3,
        drop_rate: float | None = None,
        drop_path_rate: float = 0.0,
        output_stride: int = 32,
        global_pool: str = "avg",
    ) -> None:
        super().__init__()
        if output_stride not in (8, 16, 32):
            raise InputError(f"output_stride must be 8, 16 or 32, got {output_stride}")
        if num_classes < 0:
            raise InputError(f"num_classes must be >= 0, got {num_classes}")
        if not 0.0 <= drop_path_rate < 1.0:  # also refuses NaN
            raise InputError(f"drop_path_rate must be in [0, 1), got {drop_path_rate}")
        if drop_rate is not None and not 0.0 <= drop_rate < 1.0:
            raise InputError(f"drop_rate must be in [0, 1), got {drop_rate}")
        if isinstance(in_chans, bool) or not isinstance(in_chans, int) or in_chans < 1:
            raise InputError(f"in_chans must be an int >= 1, got {in_chans!r}")
        self.plan = plan
        self.num_classes = num_classes
        self.in_chans = in_chans
        self.drop_rate = plan.head.dropout if drop_rate is None else drop_rate
        self.output_stride = output_stride
        self.grad_checkpointing = False

        s = plan.stem
        self.stem = ConvBnAct(in_chans, s.out_channels, s.kernel_size, s.stride, act=s.act)

        blocks: list[InvertedBottleneck] = []
        levels: list[dict[str, Any]] = []
        ends: list[int] = []  # the block ending each level (-1 = the stem)
        reduction, dilation = s.stride, 1
        n = len(plan.blocks)
        for i, spec in enumerate(plan.blocks):
            stride, next_dilation = spec.stride, dilation
            if spec.stride > 1:
                chs = blocks[-1].out_channels if blocks else s.out_channels
                levels.append(dict(num_chs=chs, reduction=reduction, module=f"blocks.{i - 1}" if i else "stem"))
                ends.append(i - 1)
                if reduction >= output_stride:
                    next_dilation, stride = dilation * spec.stride, 1
            dpr = drop_path_rate * i / (n - 1) if n > 1 else drop_path_rate
            blocks.append(InvertedBottleneck(spec, dilation=dilation, stride=stride, drop_path=dpr))
            reduction *= stride
            dilation = next_dilation
        levels.append(dict(num_chs=plan.blocks[-1].out_channels, reduction=reduction, module=f"blocks.{n - 1}"))
        ends.append(n - 1)
        self.blocks = nn.Sequential(*blocks)
        self.stage_ends: list[int] = ends
        self.tap_blocks: list[int] = list(ends)  # the levels forward_feature_maps returns
        self.feature_info = FeatureInfo(levels)

        f = plan.final_conv
        self.final_conv: nn.Module = ConvBnAct(f.in_channels, f.out_channels, act=f.act)
        self.num_features = f.out_channels
        self.pool = GlobalPool(global_pool)
        pooled = self.num_features * self.pool.feat_mult()
        hidden = plan.head.hidden_channels
        if hidden:
            self.head_hidden: nn.Module = nn.Sequential(
                OrderedDict(
                    conv=nn.Conv2d(pooled, hidden, 1, bias=True),
                    bn=nn.BatchNorm2d(hidden),
                    act=nn.ReLU6(inplace=True),
                )
            )
        else:
            self.head_hidden = nn.Identity()
        self.head_hidden_size = hidden or pooled
        self.flatten: nn.Module = nn.Flatten(1) if global_pool else nn.Identity()
        self.dropout = nn.Dropout(self.drop_rate)
        self.classifier: nn.Module = nn.Identity()
        self.reset_classifier(num_classes)
        self.pretrained_cfg: dict[str, Any] = dict(
            num_classes=num_classes,
            input_size=(in_chans, 224, 224),
            pool_size=(224 // output_stride,) * 2,
            crop_pct=0.875,
            interpolation="bicubic",
            mean=IMAGENET_MEAN,
            std=IMAGENET_STD,
            first_conv="stem.conv",
            classifier="classifier",
        )

    @torch.jit.unused
    def save_pretrained(self, save_directory: Any, **kwargs: Any) -> Any:
        """Write a Hugging Face folder (``config.json`` + ``model.safetensors``): :func:`rexnet.save_pretrained`."""
        if not _pretrained_writer:
            raise InputError("save_pretrained needs rexnet.zoo; import rexnet first")
        return _pretrained_writer[0](self, save_directory, **kwargs)

    @property
    def default_cfg(self) -> dict[str, Any]:
        """timm's older name for :attr:`pretrained_cfg`."""
        return self.pretrained_cfg

    @default_cfg.setter
    def default_cfg(self, cfg: dict[str, Any]) -> None:
        self.pretrained_cfg = cfg

    @torch.jit.ignore
    def group_matcher(self, coarse: bool = False) -> dict[str, Any]:
        """Regexes grouping parameters by depth, for timm's layer-wise LR decay: the stem, each block,
        the final conv, then the head (unmatched names go last). ``coarse`` changes nothing, as in
        timm's ReXNet."""
        return dict(stem=r"^stem", blocks=r"^blocks\.(\d+)", final_conv=r"^final_conv")

    @torch.jit.ignore
    def set_grad_checkpointing(self, enable: bool = True) -> None:
        """Recompute each block's activations in the backward pass instead of storing them."""
        self.grad_checkpointing = enable

    @torch.jit.ignore
    def get_classifier(self) -> nn.Module:
        return self.classifier

    def reset_classifier(self, num_classes: int, global_pool: str | None = None) -> None:
        """Replace the classifier with a freshly initialised one (0 removes it); optionally change the pooling.

        Raises:
            ValueError: A negative class count, an unknown pool, ``global_pool=""`` with a
                classifier, or a pool that changes the input width of ReXNet-lite's hidden layer.
        """
        if num_classes < 0:
            raise InputError(f"num_classes must be >= 0, got {num_classes}")
        pool_type = self.pool.pool_type if global_pool is None else global_pool
        if pool_type == "" and num_classes:
            raise InputError(
                f"global_pool='' leaves the maps unpooled, which a linear classifier cannot take; "
                f"pass num_classes=0 (got {num_classes})"
            )
        if global_pool is not None and global_pool != self.pool.pool_type:
            pool = GlobalPool(global_pool)
            if isinstance(self.head_hidden, nn.Sequential) and pool.feat_mult() != self.pool.feat_mult():
                raise InputError(f"global_pool={global_pool!r} changes the input width of the hidden head layer")
            self.pool = pool
            self.flatten = nn.Flatten(1) if global_pool else nn.Identity()
            if not isinstance(self.head_hidden, nn.Sequential):
                self.head_hidden_size = self.num_features * pool.feat_mult()
        self.num_classes = num_classes
        ref = next(self.parameters())
        self.classifier = (
            nn.Linear(self.head_hidden_size, num_classes, device=ref.device, dtype=ref.dtype)
            if num_classes
            else nn.Identity()
        )

    def _run_block(self, block: nn.Module, x: torch.Tensor) -> torch.Tensor:
        if self.grad_checkpointing and not torch.jit.is_scripting():
            return checkpoint(block, x, use_reentrant=False)
        return block(x)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Stem, blocks and the penultimate 1x1 conv: the map before global pooling."""
        x = self.stem(x)
        if self.grad_checkpointing and not torch.jit.is_scripting():
            for block in self.blocks:
                x = checkpoint(block, x, use_reentrant=False)
            return checkpoint(self.final_conv, x, use_reentrant=False)
        return self.final_conv(self.blocks(x))

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """Pool, [lite hidden layer], dropout and classifier; ``pre_logits`` stops before the FC."""
        x = self.flatten(self.head_hidden(self.pool(x)))
        x = self.dropout(x)
        return x if pre_logits else self.classifier(x)

    def forward_feature_maps(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The maps of the selected levels (strides 2, 4, 8, 16, 32 by default)."""
        taps = self.tap_blocks
        outs: list[torch.Tensor] = []
        x = self.stem(x)
        if -1 in taps:
            outs.append(x)
        for i, block in enumerate(self.blocks):  # a backbone's blocks end at its last tap
            if self.grad_checkpointing and not torch.jit.is_scripting():
                x = checkpoint(block, x, use_reentrant=False)
            else:
                x = block(x)
            if i in taps:
                outs.append(x)
        return outs

    @torch.jit.ignore
    def forward_intermediates(
        self,
        x: torch.Tensor,
        indices: Indices = None,
        norm: bool = False,
        stop_early: bool = False,
        output_fmt: str = "NCHW",
        intermediates_only: bool = False,
    ) -> list[torch.Tensor] | tuple[torch.Tensor, list[torch.Tensor]]:
        """The maps of chosen levels, and the final features, in one pass (timm's semantics).

        Args:
            x: Input images.
            indices: Levels to return: ``None`` all, an int ``n`` the last ``n``, or a sequence.
            norm: Accepted for timm compatibility; ReXNet has no final norm to apply.
            stop_early: Stop after the last requested level (the final features are then that map).
            output_fmt: Only ``"NCHW"``.
            intermediates_only: Return just the list of maps.

        Returns:
            ``(final_features, maps)``, or ``maps`` if ``intermediates_only``.
        """
        if output_fmt != "NCHW":
            raise InputError(f"output_fmt must be 'NCHW', got {output_fmt!r}")
        take, max_index = feature_take_indices(len(self.stage_ends), indices)
        take_blocks = [self.stage_ends[i] for i in take]
        last = self.stage_ends[max_index]
        run_all = not stop_early or max_index == len(self.stage_ends) - 1
        maps: list[torch.Tensor] = []
        x = self.stem(x)
        if -1 in take_blocks:
            maps.append(x)
        blocks = self.blocks if run_all else self.blocks[: last + 1]
        for i, block in enumerate(blocks):
            x = self._run_block(block, x)
            if i in take_blocks:
                maps.append(x)
        if intermediates_only:
            return maps
        if run_all:
            x = self._run_block(self.final_conv, x)
        return x, maps

    @torch.jit.ignore
    def prune_intermediate_layers(
        self, indices: Indices = 1, prune_norm: bool = False, prune_head: bool = True
    ) -> list[int]:
        """Drop the modules no level in ``indices`` needs (timm's semantics).

        Blocks after the last kept level go; with them, or with ``prune_head``, the final conv
        and the head go too (the model then returns that level's map from ``forward_features``
        and ``forward_head`` passes it through).

        Returns:
            The absolute level indices kept.
        """
        take, max_index = feature_take_indices(len(self.stage_ends), indices)
        last = self.stage_ends[max_index]
        if not (prune_norm or prune_head or max_index < len(self.stage_ends) - 1):
            return take
        self.blocks = self.blocks[: last + 1]
        self.stage_ends = self.stage_ends[: max_index + 1]
        self.tap_blocks = [b for b in self.tap_blocks if b <= last]
        self.feature_info = FeatureInfo(self.feature_info.info[: max_index + 1])
        self.final_conv = nn.Identity()
        self.head_hidden = nn.Identity()
        self.num_features = self.head_hidden_size = self.feature_info[max_index]["num_chs"]
        self.reset_classifier(0, "")
        return take

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


class RexNetFeatures(RexNet):
    """A backbone returning multi-scale feature maps (timm's ``features_only=True``).

    Modules past the last requested level (later blocks, final conv, head) are not built
    into it; :func:`~rexnet.weights.load_weights` ignores their keys in a checkpoint.

    Args:
        plan: The channel plan.
        out_indices: Which levels to return: 0 = stride 2 ... 4 = stride 32 for ReXNet;
            negative indices count from the end, an int ``n`` means the last ``n`` levels,
            ``None`` all. Maps come out in level order.
        **kwargs: ``in_chans``, ``drop_path_rate``, ``output_stride`` as for :class:`RexNet`.
    """

    def __init__(self, plan: NetworkPlan, out_indices: Indices = None, **kwargs: Any) -> None:
        kwargs.pop("global_pool", None)
        super().__init__(plan, num_classes=0, **kwargs)
        out = resolve_out_indices(out_indices, len(self.stage_ends))
        self.prune_intermediate_layers(list(out))
        self.out_indices = out
        self.feature_info = FeatureInfo(self.feature_info.info, out)
        self.tap_blocks = [self.stage_ends[j] for j in out]
        self.num_features = self.feature_info.channels()[-1]

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:  # type: ignore[override]
        return self.forward_feature_maps(x)
