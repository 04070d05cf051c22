"""Deployment: BN fusion, export (ONNX, OpenVINO, TorchScript, ``torch.compile``), bf16/int8, and the benchmark.

Example:
    >>> import rexnet, torch
    >>> fused = rexnet.fuse(rexnet.create_model("rexnet_100"))
    >>> fused(torch.zeros(1, 3, 64, 64).contiguous(memory_format=torch.channels_last)).shape
    torch.Size([1, 1000])
"""

import importlib
from typing import Any

# eager: light, and ``fuse`` must be the function, not the submodule of the same name
from .fuse import FusedBottleneck, FusedRexNet, fold_conv_bn, fuse

#: public name -> the submodule defining it; each is imported on first use, so ``import rexnet.deploy``
#: (and ``rexnet.fuse``) does not load onnx, openvino or the benchmark.
_EXPORTS = {
    "TINY": "bench",
    "BenchConfig": "bench",
    "peak_memory_mib": "bench",
    "run_bench": "bench",
    "tiny_config": "bench",
    "calibration_batches": "calib",
    "correct_biases": "bias_correction",
    "EXPORT_FORMATS": "export",
    "EXPORT_PRECISIONS": "export",
    "ONNX_OPSET": "onnx_core",
    "ExportError": "export",
    "ExportFormat": "export",
    "ExportResult": "export",
    "FrozenCompiled": "compiled",
    "compile_model": "compiled",
    "export_model": "export",
    "export_onnx": "onnx_core",
    "export_torchscript": "torchscript",
    "read_sidecar": "sidecar",
    "verify_onnx": "onnx_core",
    "RUNTIMES": "runtime",
    "Runtime": "runtime",
    "evaluate_exported": "runtime",
    "load_exported": "runtime",
    "predict_exported": "runtime",
    "OV_PRECISIONS": "openvino_ir",
    "OpenVinoModel": "openvino_ir",
    "openvino_available": "openvino_ir",
    "save_openvino": "openvino_ir",
    "to_openvino": "openvino_ir",
    "Bf16Model": "quant",
    "OnnxModel": "onnx_core",
    "agreement": "quant",
    "predict_logits": "quant",
    "pt2e_available": "quant",
    "quantize_int8": "quant",
    "quantize_int8_pt2e": "quant",
    "to_bf16": "quant",
    "Latency": "timing",
    "latency": "timing",
}


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value  # later lookups skip this hook
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))


__all__ = [
    "EXPORT_FORMATS",
    "EXPORT_PRECISIONS",
    "ONNX_OPSET",
    "OV_PRECISIONS",
    "RUNTIMES",
    "Runtime",
    "TINY",
    "Bf16Model",
    "BenchConfig",
    "ExportError",
    "ExportFormat",
    "ExportResult",
    "FrozenCompiled",
    "FusedBottleneck",
    "FusedRexNet",
    "Latency",
    "OnnxModel",
    "OpenVinoModel",
    "agreement",
    "calibration_batches",
    "compile_model",
    "correct_biases",
    "evaluate_exported",
    "export_model",
    "export_onnx",
    "export_torchscript",
    "fold_conv_bn",
    "fuse",
    "latency",
    "load_exported",
    "openvino_available",
    "peak_memory_mib",
    "predict_exported",
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
