"""Empirical bias correction of an onnxruntime QDQ graph.

onnxruntime's static quantizer rounds weights and activations to int8 but, unlike NNCF, never
corrects the shift that rounding leaves in each layer's output mean. That shift accumulates
through the network. This module measures it on calibration images and folds it into the conv
biases: on a 90 %-accurate Fashion-MNIST rexnet_100 that raised top-1 agreement with fp32 from
98.86 % to 99.11 % (``benchmarks/RESULTS.md``, issue 11).

The correction is sequential, in graph order: conv ``k`` is measured with the convs before it
already corrected, and its bias is moved so that its mean output per channel over the images
equals the fp32 graph's. Each measurement runs only the prefix of the graph that ends at conv
``k`` (``onnx.utils.Extractor``), with onnxruntime's optimisations on, so the upstream convs run
as the fused int8 kernels that inference will use.

A quantized bias is an ``int32`` tensor read through a ``DequantizeLinear`` whose scale is
``input_scale * weight_scale``; the shift is added in those units. Layers kept in float (our SE)
have their float bias shifted directly. Only bias values change: graph, speed and file size stay.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import torch

from ..errors import InputError
from .onnx_core import onnx_session

if TYPE_CHECKING:
    import onnx

__all__ = ["correct_biases"]

_log = logging.getLogger(__name__)


def _channel_means(
    model: onnx.ModelProto, outputs: Sequence[str], images: np.ndarray, threads: int | None
) -> list[np.ndarray]:
    """Mean over images and positions of each NCHW ``outputs`` tensor, per channel (float64)."""
    import onnx

    m = onnx.ModelProto()
    m.CopyFrom(model)
    del m.graph.output[:]
    m.graph.output.extend(onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None) for name in outputs)
    sess = onnx_session(m.SerializeToString(), threads)
    input_name = sess.get_inputs()[0].name
    sums = [np.zeros(1)] * len(outputs)
    for batch in np.array_split(images, max(1, len(images) // 32)):
        for i, out in enumerate(sess.run(list(outputs), {input_name: batch})):
            sums[i] = sums[i] + out.astype(np.float64).mean(axis=(2, 3)).sum(axis=0)
    return [s / len(images) for s in sums]


def correct_biases(
    fp32: onnx.ModelProto,
    qdq: onnx.ModelProto,
    calibration: Sequence[torch.Tensor],
    *,
    images: int | None = 128,
    threads: int | None = None,
    progress: bool = False,
) -> int:
    """Shift the conv biases of ``qdq`` in place so each conv's mean output matches ``fp32``'s.

    Args:
        fp32: The float ``onnx.ModelProto`` that ``qdq`` was quantized from (same tensor names).
        qdq: onnxruntime's QDQ ``onnx.ModelProto``; modified in place.
        calibration: Batches of preprocessed NCHW float32 images.
        images: How many of the calibration images to measure on (``None``: all). Each conv
            costs one run of the graph up to it, so time grows with convs x images.
        threads: onnxruntime intra-op threads.
        progress: Show a progress bar (stderr).

    Returns:
        The number of convs corrected.

    Raises:
        InputError: no calibration images, or no conv of ``qdq`` found in ``fp32``.
    """
    import onnx
    from tqdm import tqdm

    if not calibration:
        raise InputError("bias correction needs calibration images")
    data = torch.cat([x.detach().float() for x in calibration])[:images].contiguous().numpy()
    fp32_convs = {n.output[0] for n in fp32.graph.node if n.op_type == "Conv"}
    convs = [
        n
        for n in qdq.graph.node
        if n.op_type == "Conv" and len(n.input) > 2 and n.input[2] and n.output[0] in fp32_convs
    ]
    if not convs:
        raise InputError("bias correction: no conv with a bias shared by the fp32 and the quantized graph")
    targets = _channel_means(fp32, [c.output[0] for c in convs], data, threads)
    initializers = {t.name: t for t in qdq.graph.initializer}
    producers = {o: n for n in qdq.graph.node for o in n.output}
    input_names = [i.name for i in qdq.graph.input if i.name not in initializers]
    corrected = 0
    for conv, target in zip(tqdm(convs, desc="bias correction", unit="conv", disable=not progress), targets):
        prefix = onnx.utils.Extractor(qdq).extract_model(input_names, [conv.output[0]])
        (measured,) = _channel_means(prefix, [conv.output[0]], data, threads)
        corrected += _shift_bias(conv, target - measured, initializers, producers)
    _log.info("bias correction: %d of %d convs on %d images", corrected, len(convs), len(data))
    return corrected


def _shift_bias(
    conv: onnx.NodeProto,
    shift: np.ndarray,
    initializers: dict[str, onnx.TensorProto],
    producers: dict[str, onnx.NodeProto],
) -> bool:
    """Add ``shift`` (per output channel) to ``conv``'s bias: int32 bias in steps of its dequantize scale."""
    from onnx import numpy_helper

    bias_name = conv.input[2]
    dequant = producers.get(bias_name)
    if dequant is not None and dequant.op_type == "DequantizeLinear" and dequant.input[0] in initializers:
        tensor = initializers[dequant.input[0]]
        scale = numpy_helper.to_array(initializers[dequant.input[1]]).astype(np.float64)
        values = numpy_helper.to_array(tensor).astype(np.int64)
        steps = np.round(shift / np.where(scale > 0, scale, np.inf)).astype(np.int64)
        info = np.iinfo(np.int32)
        new = np.clip(values + steps, info.min, info.max).astype(np.int32)
    elif bias_name in initializers:  # a conv left in float
        tensor = initializers[bias_name]
        values = numpy_helper.to_array(tensor)
        new = (values.astype(np.float64) + shift).astype(values.dtype)
    else:
        _log.warning("bias correction: %s has no bias tensor to shift; left as is", conv.name)
        return False
    tensor.CopyFrom(numpy_helper.from_array(new, tensor.name))
    return True
