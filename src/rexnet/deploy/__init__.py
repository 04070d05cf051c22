"""Deployment: BN fusion, export (ONNX, TorchScript, ``torch.compile``), bf16/int8, and the benchmark.

Example:
    >>> import rexnet, torch
    >>> fused = rexnet.fuse(rexnet.create_model("rexnet_100"))
    >>> fused(torch.zeros(1, 3, 64, 64).contiguous(memory_format=torch.channels_last)).shape
    torch.Size([1, 1000])
"""

from .bench import TINY, BenchConfig, peak_memory_mib, run_bench, tiny_config
from .export import (
    EXPORT_FORMATS,
    ONNX_OPSET,
    ExportError,
    ExportResult,
    FrozenCompiled,
    compile_model,
    export_model,
    export_onnx,
    export_torchscript,
    load_model,
    verify_onnx,
)
from .fuse import FusedBottleneck, FusedRexNet, fold_conv_bn, fuse
from .quant import (
    Bf16Model,
    OnnxModel,
    agreement,
    predict_logits,
    pt2e_available,
    quantize_int8,
    quantize_int8_pt2e,
    to_bf16,
)

__all__ = [
    "EXPORT_FORMATS",
    "ONNX_OPSET",
    "TINY",
    "Bf16Model",
    "BenchConfig",
    "ExportError",
    "ExportResult",
    "FrozenCompiled",
    "FusedBottleneck",
    "FusedRexNet",
    "OnnxModel",
    "agreement",
    "compile_model",
    "export_model",
    "export_onnx",
    "export_torchscript",
    "fold_conv_bn",
    "fuse",
    "load_model",
    "peak_memory_mib",
    "predict_logits",
    "pt2e_available",
    "quantize_int8",
    "quantize_int8_pt2e",
    "run_bench",
    "tiny_config",
    "to_bf16",
    "verify_onnx",
]
