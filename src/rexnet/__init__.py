"""rexnet: ReXNet (Han et al., CVPR 2021) - the model family, its rank study and its channel search.

Example:
    >>> import rexnet, torch
    >>> model = rexnet.create_model("rexnet_100").eval()
    >>> model(torch.zeros(1, 3, 224, 224)).shape
    torch.Size([1, 1000])
"""

from . import _env  # noqa: F401  (first: sets OpenMP's wait policy before torch loads)
from .errors import BudgetError, CheckpointError, InputError, RexnetError, UnknownModelError
from .features import FeatureInfo
from .model import RexNet, RexNetFeatures
from .plan import NetworkPlan, count_macs, count_params, rexnet_plan
from .weights import load_weights, save_weights
from .zoo import (
    convert_checkpoint,
    create_model,
    get_model_info,
    get_plan,
    list_models,
    load_model,
    save_pretrained,
    transforms,
)

__version__ = "0.1.0"


def __getattr__(name: str) -> object:
    # BN fusion lives with deployment; loaded on first use so ``import rexnet`` stays light
    if name == "fuse":
        from .deploy.fuse import fuse

        return fuse
    if name == "latency":  # measured on a deploy runtime: loads onnx/openvino only when called for
        from .deploy.timing import latency

        return latency
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "BudgetError",
    "CheckpointError",
    "FeatureInfo",
    "NetworkPlan",
    "RexNet",
    "RexNetFeatures",
    "RexnetError",
    "InputError",
    "UnknownModelError",
    "convert_checkpoint",
    "count_macs",
    "count_params",
    "create_model",
    "fuse",
    "get_model_info",
    "get_plan",
    "latency",
    "list_models",
    "load_model",
    "load_weights",
    "rexnet_plan",
    "save_pretrained",
    "save_weights",
    "transforms",
]
