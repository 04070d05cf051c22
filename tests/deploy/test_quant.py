"""Reduced precision: bf16 and int8 (onnxruntime static quantization) agree with fp32."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from rexnet.deploy import agreement, predict_logits, quantize_int8, to_bf16


def _fixed_set(n: int = 64, size: int = 64) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(123)
    return list(torch.randn(n, 3, size, size, generator=g).split(32))


def test_int8_agrees_with_fp32(rexnet_small: nn.Module, tmp_path: Path) -> None:
    g = torch.Generator().manual_seed(7)
    calib = list(torch.randn(32, 3, 64, 64, generator=g).split(16))
    q = quantize_int8(rexnet_small, calib, tmp_path / "q.onnx", image_size=64)
    test = _fixed_set()
    a = agreement(predict_logits(rexnet_small, test), predict_logits(q, test))
    assert a["top1_agreement"] >= 0.95, a
    assert a["cosine_mean"] > 0.99, a


def test_bf16_agrees_with_fp32(rexnet_small: nn.Module) -> None:
    test = _fixed_set()
    b = to_bf16(rexnet_small)
    out = predict_logits(b, test)
    assert out.dtype == torch.float32
    a = agreement(predict_logits(rexnet_small, test), out)
    assert a["top1_agreement"] >= 0.95 and a["cosine_mean"] > 0.999, a


def test_agreement_metric() -> None:
    ref = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    a = agreement(ref, torch.tensor([[1.0, 0.1], [1.0, 0.0]]))
    assert a["top1_agreement"] == 0.5 and a["cosine_min"] < 0.01


def test_agreement_on_near_equal_logits_is_reported_as_meaningless() -> None:
    """Untrained weights give near-equal logits: the argmax is noise, so the report says n/a, not 0 %."""
    from rexnet.deploy.bench_report import agreement_lines

    flat = torch.ones(16, 10) + 1e-5 * torch.randn(16, 10)
    a = agreement(flat, flat + 1e-3 * torch.randn(16, 10))
    assert a["decisive_fraction"] == 0.0 and a["cosine_min"] > 0.9999
    clear = 5 * torch.eye(10)[torch.arange(16) % 10] + 0.1 * torch.randn(16, 10)  # every row decisive
    assert agreement(clear, clear)["decisive_fraction"] == 1.0
    text = "\n".join(agreement_lines({"source": "random", "bf16": a}))
    assert "n/a (fp32 logits near-equal" in text and "| bf16 | 0.00 %" not in text
