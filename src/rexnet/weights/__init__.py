"""Checkpoints: safe reading, our safetensors layout, and adapters for the official and timm layouts."""

from .adapt import adapt_input_conv
from .convert import convert_checkpoint, from_our_layout, guess_variant, load_weights, save_weights, to_our_layout
from .io import atomic_torch_save, read_state_dict, unwrap_state_dict, write_safetensors
from .layouts import LAYOUTS, detect_layout, module_map

__all__ = [
    "LAYOUTS",
    "adapt_input_conv",
    "atomic_torch_save",
    "convert_checkpoint",
    "detect_layout",
    "from_our_layout",
    "guess_variant",
    "load_weights",
    "module_map",
    "read_state_dict",
    "save_weights",
    "to_our_layout",
    "unwrap_state_dict",
    "write_safetensors",
]
