"""The model zoo: the registry of named variants (plans, paper figures, preprocessing), ``create_model``,
and the one loader, :func:`load_model`, that every other part of rexnet calls.

Example:
    >>> from rexnet.zoo import load_model
    >>> model, meta = load_model("rexnet_100")
    >>> meta.num_classes, meta.image_size
    (1000, 224)
"""

from .hub import hub_cache_dir, hub_file
from .load import ModelMeta, convert_checkpoint, imagenet_class_names, load_model, resolve_checkpoint
from .pretrained import create_model, is_pretrained_folder, load_pretrained, read_pretrained_config, save_pretrained
from .registry import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    MODEL_TABLE_COLUMNS,
    ModelInfo,
    get_model_info,
    get_plan,
    list_models,
    model_table,
    register_model,
    registry_plans,
    transforms,
    unregister_model,
)
from .user import load_user_models, read_user_models, save_user_model, user_model_record

# the user's own named models (``rexnet search register``): a broken file is a warning, never an import error
load_user_models()

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "MODEL_TABLE_COLUMNS",
    "ModelInfo",
    "ModelMeta",
    "convert_checkpoint",
    "create_model",
    "get_model_info",
    "get_plan",
    "hub_cache_dir",
    "hub_file",
    "imagenet_class_names",
    "is_pretrained_folder",
    "list_models",
    "load_model",
    "load_user_models",
    "load_pretrained",
    "model_table",
    "read_pretrained_config",
    "read_user_models",
    "register_model",
    "registry_plans",
    "resolve_checkpoint",
    "save_pretrained",
    "save_user_model",
    "transforms",
    "unregister_model",
    "user_model_record",
]
