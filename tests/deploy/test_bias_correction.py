"""Bias correction of onnxruntime's int8 graph: each conv's mean output moves onto fp32's, nothing else changes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from onnx import numpy_helper
from torch import nn

from rexnet.deploy import quantize_int8
from rexnet.deploy.bias_correction import correct_biases
from rexnet.deploy.onnx_core import export_onnx, onnx_session
from rexnet.errors import RexnetError


def _calibration() -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(5)
    return list(torch.randn(48, 3, 64, 64, generator=g).split(16))


def _conv_means(model: onnx.ModelProto, names: list[str], calib: list[torch.Tensor]) -> dict[str, np.ndarray]:
    m = onnx.ModelProto()
    m.CopyFrom(model)
    del m.graph.output[:]
    m.graph.output.extend(onnx.helper.make_tensor_value_info(n, onnx.TensorProto.FLOAT, None) for n in names)
    sess = onnx_session(m.SerializeToString(), threads=1)
    outs = [sess.run(names, {"input": x.numpy()}) for x in calib]
    return {n: np.concatenate([o[i] for o in outs]).mean(axis=(0, 2, 3)) for i, n in enumerate(names)}


@pytest.fixture(scope="module")
def graphs(
    rexnet_small: nn.Module, tmp_path_factory: pytest.TempPathFactory
) -> tuple[onnx.ModelProto, onnx.ModelProto]:
    from onnxruntime.quantization.shape_inference import quant_pre_process

    model = rexnet_small
    tmp = tmp_path_factory.mktemp("bc")
    export_onnx(model, tmp / "fp32.onnx", image_size=64, fused=True)
    quant_pre_process(str(tmp / "fp32.onnx"), str(tmp / "pre.onnx"), skip_symbolic_shape=True)
    quantize_int8(model, _calibration(), tmp / "q.onnx", image_size=64, bias_correction=False)
    return onnx.load(str(tmp / "pre.onnx")), onnx.load(str(tmp / "q.onnx"))


def test_corrected_conv_means_match_fp32(graphs: tuple[onnx.ModelProto, onnx.ModelProto]) -> None:
    fp32, qdq = graphs
    corrected = onnx.ModelProto()
    corrected.CopyFrom(qdq)
    calib = _calibration()
    n = correct_biases(fp32, corrected, calib, images=None)
    fp32_convs = {x.output[0] for x in fp32.graph.node if x.op_type == "Conv"}
    names = [x.output[0] for x in qdq.graph.node if x.op_type == "Conv" and x.output[0] in fp32_convs]
    assert n == len(names) > 10
    ref = _conv_means(fp32, names, calib)
    before = _conv_means(qdq, names, calib)
    after = _conv_means(corrected, names, calib)
    err_before = sum(float(np.abs(before[k] - ref[k]).mean()) for k in names)
    err_after = sum(float(np.abs(after[k] - ref[k]).mean()) for k in names)
    assert err_after < 0.2 * err_before, (err_before, err_after)


def test_only_bias_values_change(graphs: tuple[onnx.ModelProto, onnx.ModelProto]) -> None:
    fp32, qdq = graphs
    corrected = onnx.ModelProto()
    corrected.CopyFrom(qdq)
    correct_biases(fp32, corrected, _calibration(), images=16)
    assert [(x.op_type, list(x.input)) for x in corrected.graph.node] == [
        (x.op_type, list(x.input)) for x in qdq.graph.node
    ]
    old = {t.name: numpy_helper.to_array(t) for t in qdq.graph.initializer}
    new = {t.name: numpy_helper.to_array(t) for t in corrected.graph.initializer}
    changed = {k for k in old if not np.array_equal(old[k], new[k])}
    assert changed, "nothing was corrected"
    biases = {x.input[2] for x in qdq.graph.node if x.op_type == "Conv" and len(x.input) > 2}
    producers = {o: x for x in qdq.graph.node for o in x.output}
    bias_tensors = {producers[b].input[0] if b in producers else b for b in biases}
    assert changed <= bias_tensors
    assert all(new[k].dtype == old[k].dtype for k in changed)


def test_int8_export_is_bias_corrected_by_default(rexnet_small: nn.Module, tmp_path: Path) -> None:
    calib = _calibration()
    plain = quantize_int8(rexnet_small, calib, tmp_path / "plain.onnx", image_size=64, bias_correction=False)
    default = quantize_int8(rexnet_small, calib, tmp_path / "default.onnx", image_size=64)
    x = calib[0]
    assert not torch.equal(plain(x), default(x))
    assert not list(tmp_path.glob("*.partial"))


def test_no_calibration_images_is_an_error(graphs: tuple[onnx.ModelProto, onnx.ModelProto]) -> None:
    fp32, qdq = graphs
    with pytest.raises(RexnetError, match="calibration images"):
        correct_biases(fp32, qdq, [])
