"""Checkpoints: safe reading, our safetensors layout, adapters for the official and timm layouts, and the
training-checkpoint format. Given plans, never looks them up: the zoo passes its registry in."""

from .adapt import adapt_input_conv
from .convert import (
    checkpoint_num_classes,
    convert_weights,
    from_our_layout,
    guess_variant,
    load_weights,
    save_weights,
    to_our_layout,
)
from .io import atomic_torch_save, read_state_dict, unwrap_state_dict, write_safetensors
from .layouts import LAYOUTS, detect_layout, module_map, tensor_shapes
from .training import TRAINING_FORMAT, is_training_checkpoint, read_training_checkpoint, save_training_checkpoint

__all__ = [
    "LAYOUTS",
    "TRAINING_FORMAT",
    "adapt_input_conv",
    "atomic_torch_save",
    "checkpoint_num_classes",
    "convert_weights",
    "detect_layout",
    "from_our_layout",
    "guess_variant",
    "is_training_checkpoint",
    "load_weights",
    "module_map",
    "read_state_dict",
    "read_training_checkpoint",
    "save_training_checkpoint",
    "save_weights",
    "tensor_shapes",
    "to_our_layout",
    "unwrap_state_dict",
    "write_safetensors",
]
