"""Deployment: BN fusion, export (ONNX, OpenVINO, TorchScript, ``torch.compile``), bf16/int8, and the benchmark.

Example:
    >>> import rexnet, torch
    >>> fused = rexnet.fuse(rexnet.create_model("rexnet_100"))
    >>> fused(torch.zeros(1, 3, 64, 64).contiguous(memory_format=torch.channels_last)).shape
    torch.Size([1, 1000])
"""

from .bench import TINY, BenchConfig, peak_memory_mib, run_bench, tiny_config
from .calib import calibration_batches
from .export import (
    EXPORT_FORMATS,
    EXPORT_PRECISIONS,
    ONNX_OPSET,
    ExportError,
    ExportFormat,
    ExportResult,
    FrozenCompiled,
    compile_model,
    export_model,
    export_onnx,
    export_torchscript,
    read_sidecar,
    verify_onnx,
)
from .fuse import FusedBottleneck, FusedRexNet, fold_conv_bn, fuse
from .openvino_ir import OV_PRECISIONS, OpenVinoModel, openvino_available, save_openvino, to_openvino
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
    "EXPORT_PRECISIONS",
    "ONNX_OPSET",
    "OV_PRECISIONS",
    "TINY",
    "Bf16Model",
    "BenchConfig",
    "ExportError",
    "ExportFormat",
    "ExportResult",
    "FrozenCompiled",
    "FusedBottleneck",
    "FusedRexNet",
    "OnnxModel",
    "OpenVinoModel",
    "agreement",
    "calibration_batches",
    "compile_model",
    "export_model",
    "export_onnx",
    "export_torchscript",
    "fold_conv_bn",
    "fuse",
    "openvino_available",
    "peak_memory_mib",
    "predict_logits",
    "pt2e_available",
    "quantize_int8",
    "quantize_int8_pt2e",
    "read_sidecar",
    "run_bench",
    "save_openvino",
    "tiny_config",
    "to_bf16",
    "to_openvino",
    "verify_onnx",
]
