"""Graph parity: our ONNX export of rexnet_100 has timm's node types, before and after onnxruntime's optimiser.

Our eager fast path adds the partial shortcut in place (``out[:, :c] += x``), which the exporter
used to write as ScatterND plus ~40 shape-computation nodes per block (1,545 nodes against timm's
374) and ran 3-13 % slower in onnxruntime; the exporter form is now node for node timm's. By default
the export also pads channel counts to multiples of 16 (same node types, every conv in onnxruntime's
blocked layout, which timm's graph does not get).
"""

from __future__ import annotations

import collections
import warnings
from pathlib import Path

import pytest
import torch

import rexnet
from rexnet.deploy import export_onnx

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
timm = pytest.importorskip("timm")

_TRIVIAL = {"Constant", "Identity"}  # removed by every runtime before it runs


def _op_counts(path: Path) -> collections.Counter:
    return collections.Counter(n.op_type for n in onnx.load(str(path)).graph.node if n.op_type not in _TRIVIAL)


def _optimized_counts(path: Path, tmp: Path) -> collections.Counter:
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED  # portable fusions
    so.optimized_model_filepath = str(tmp / f"{path.stem}.opt.onnx")
    so.log_severity_level = 3
    ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    return _op_counts(Path(so.optimized_model_filepath))


def test_onnx_graph_matches_timm(tmp_path: Path) -> None:
    torch.manual_seed(0)
    ours = export_onnx(rexnet.create_model("rexnet_100"), tmp_path / "ours.onnx", image_size=64, pad_to=0)
    peer = timm.create_model("rexnet_100", pretrained=False).eval()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            peer,
            (torch.randn(1, 3, 64, 64),),
            str(tmp_path / "timm.onnx"),
            dynamo=False,
            opset_version=17,
            input_names=["input"],
            output_names=["logits"],
            dynamic_axes={"input": {0: "batch", 2: "height", 3: "width"}, "logits": {0: "batch"}},
        )
    ours_ops, timm_ops = _op_counts(ours), _op_counts(tmp_path / "timm.onnx")
    assert "ScatterND" not in ours_ops and "Shape" not in ours_ops
    assert ours_ops == timm_ops, (ours_ops, timm_ops)
    assert _optimized_counts(ours, tmp_path) == _optimized_counts(tmp_path / "timm.onnx", tmp_path)


def test_padded_export_runs_every_conv_blocked(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = rexnet.create_model("rexnet_100").eval()
    path = export_onnx(model, tmp_path / "ours.onnx", image_size=64)
    ops = _op_counts(path)
    assert "ScatterND" not in ops and ops["Conv"] == 75
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.optimized_model_filepath = str(tmp_path / "opt.onnx")
    so.log_severity_level = 3
    sess = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    convs = [n for n in onnx.load(so.optimized_model_filepath).graph.node if "Conv" in n.op_type]
    if any(n.domain == "com.microsoft.nchwc" for n in convs):  # the CPU has a blocked layout (AVX2/AVX-512)
        assert all(n.domain == "com.microsoft.nchwc" for n in convs), [(n.op_type, n.domain) for n in convs]
    x = torch.randn(2, 3, 64, 64)
    with torch.inference_mode():
        torch.testing.assert_close(
            torch.from_numpy(sess.run(None, {"input": x.numpy()})[0]), model(x), atol=1e-4, rtol=1e-4
        )
