"""The ReXNet model family: one ``nn.Module`` built from a :class:`~rexnet.plan.NetworkPlan`.

Han, Yun, Heo, Yoo, "Rethinking Channel Dimensions for Efficient Model Design", CVPR 2021
(arXiv:2007.00992). The same class builds ReXNet, ReXNet-lite, ReXNet-R, MobileNetV2 and any
searched configuration, because every shape decision lives in the plan.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from typing import Any, List  # noqa: UP035

import torch
from torch import nn

from .layers import ConvBnAct, InvertedBottleneck
from .plan.spec import NetworkPlan

__all__ = ["RexNet", "RexNetFeatures"]


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

    Example:
        >>> from rexnet.plan import rexnet_plan
        >>> model = RexNet(rexnet_plan(1.0)).eval()
        >>> model(torch.zeros(1, 3, 224, 224)).shape
        torch.Size([1, 1000])
    """

    def __init__(
        self,
        plan: NetworkPlan,
        num_classes: int = 1000,
        in_chans: int = 3,
        drop_rate: float | None = None,
        drop_path_rate: float = 0.0,
        output_stride: int = 32,
    ) -> None:
        super().__init__()
        if output_stride not in (8, 16, 32):
            raise ValueError(f"output_stride must be 8, 16 or 32, got {output_stride}")
        if num_classes < 0:
            raise ValueError(f"num_classes must be >= 0, got {num_classes}")
        if not 0.0 <= drop_path_rate < 1.0:
            raise ValueError(f"drop_path_rate must be in [0, 1), got {drop_path_rate}")
        self.plan = plan
        self.num_classes = num_classes
        self.drop_rate = plan.head.dropout if drop_rate is None else drop_rate
        self.output_stride = output_stride

        s = plan.stem
        self.stem = ConvBnAct(in_chans, s.out_channels, s.kernel_size, s.stride, act=s.act)

        blocks = []
        reduction, dilation = s.stride, 1
        self.feature_info: list[dict[str, Any]] = []
        n = len(plan.blocks)
        for i, spec in enumerate(plan.blocks):
            stride, next_dilation = spec.stride, dilation
            if spec.stride > 1:
                self.feature_info.append(
                    dict(
                        num_chs=blocks[-1].out_channels if blocks else s.out_channels,
                        reduction=reduction,
                        module=f"blocks.{i - 1}" if i else "stem",
                        index=i - 1,
                    )
                )
                if reduction >= output_stride:
                    next_dilation, stride = dilation * spec.stride, 1
            dpr = drop_path_rate * i / (n - 1) if n > 1 else drop_path_rate
            blocks.append(InvertedBottleneck(spec, dilation=dilation, stride=stride, drop_path=dpr))
            reduction *= stride
            dilation = next_dilation
        self.feature_info.append(
            dict(num_chs=plan.blocks[-1].out_channels, reduction=reduction, module=f"blocks.{n - 1}", index=n - 1)
        )
        self.blocks = nn.Sequential(*blocks)
        self.tap_blocks = [info["index"] for info in self.feature_info]

        f = plan.final_conv
        self.final_conv = ConvBnAct(f.in_channels, f.out_channels, act=f.act)
        self.num_features = f.out_channels
        self.pool = nn.AdaptiveAvgPool2d(1)
        hidden = plan.head.hidden_channels
        if hidden:
            self.head_hidden = nn.Sequential(
                OrderedDict(
                    conv=nn.Conv2d(self.num_features, hidden, 1, bias=True),
                    bn=nn.BatchNorm2d(hidden),
                    act=nn.ReLU6(inplace=True),
                )
            )
        else:
            self.head_hidden = nn.Identity()
        self.head_hidden_size = hidden or self.num_features
        self.dropout = nn.Dropout(self.drop_rate)
        self.classifier = nn.Linear(self.head_hidden_size, num_classes) if num_classes else nn.Identity()

    def reset_classifier(self, num_classes: int) -> None:
        """Replace the classifier with a freshly initialised one (0 removes it)."""
        if num_classes < 0:
            raise ValueError(f"num_classes must be >= 0, got {num_classes}")
        self.num_classes = num_classes
        device = next(self.parameters()).device
        self.classifier = nn.Linear(self.head_hidden_size, num_classes, device=device) if num_classes else nn.Identity()

    def get_classifier(self) -> nn.Module:
        return self.classifier

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Stem, blocks and the penultimate 1x1 conv: the map before global pooling."""
        x = self.blocks(self.stem(x))
        return self.final_conv(x)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """Pool, [lite hidden layer], dropout and classifier; ``pre_logits`` stops before the FC."""
        x = self.head_hidden(self.pool(x)).flatten(1)
        x = self.dropout(x)
        return x if pre_logits else self.classifier(x)

    def forward_feature_maps(self, x: torch.Tensor) -> List[torch.Tensor]:  # noqa: UP006
        """The multi-scale maps named by ``feature_info`` (strides 2, 4, 8, 16, 32 by default)."""
        taps = self.tap_blocks
        outs: List[torch.Tensor] = []  # noqa: UP006
        x = self.stem(x)
        if -1 in taps:
            outs.append(x)
        for i, block in enumerate(self.blocks):  # a backbone's blocks end at its last tap
            x = block(x)
            if i in taps:
                outs.append(x)
        return outs

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


class RexNetFeatures(RexNet):
    """A backbone returning multi-scale feature maps (timm's ``features_only=True``).

    Args:
        plan: The channel plan.
        out_indices: Which maps to return, 0 = stride 2 ... 4 = stride 32 for ReXNet.
        **kwargs: ``in_chans``, ``drop_path_rate``, ``output_stride`` as for :class:`RexNet`.
    """

    def __init__(self, plan: NetworkPlan, out_indices: Sequence[int] = (0, 1, 2, 3, 4), **kwargs: Any) -> None:
        super().__init__(plan, num_classes=0, **kwargs)
        n_maps = len(self.feature_info)
        if not out_indices or any(not 0 <= j < n_maps for j in out_indices):
            raise ValueError(f"out_indices must be in [0, {n_maps - 1}], got {tuple(out_indices)}")
        self.feature_info = [self.feature_info[j] for j in out_indices]
        self.tap_blocks = [info["index"] for info in self.feature_info]
        self.num_features = self.feature_info[-1]["num_chs"]
        # the head is not part of a backbone
        del self.final_conv, self.pool, self.head_hidden, self.dropout, self.classifier
        last = max(self.tap_blocks)
        self.blocks = self.blocks[: last + 1]

    def forward(self, x: torch.Tensor) -> List[torch.Tensor]:  # noqa: UP006
        return self.forward_feature_maps(x)
