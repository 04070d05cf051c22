"""The benchmark harness runs on a tiny configuration and writes its files (not a timed test)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from rexnet.cli import main
from rexnet.deploy import peak_memory_mib, tiny_config
from rexnet.deploy.bench import run_bench
from rexnet.plan import count_macs
from rexnet.zoo import get_plan


def test_tiny_bench_writes_files(tmp_path: Path) -> None:
    # the harness, not the models, is under test: our smallest variant and a small timm model
    cfg = tiny_config(model="rexnet_060", timm_model="mobilenetv3_small_050", image_size=32, batch_throughput=2,
                      rounds=1, latency_iters=1, warmup=0, calib_images=4, train_batch=2, openvino=False)
    res = run_bench(cfg, tmp_path)
    for name in ("bench.json", "bench.md", "latency_vs_macs.png"):
        assert (tmp_path / name).is_file(), name
    data = json.loads((tmp_path / "bench.json").read_text())
    names = {r["name"] for r in data["inference"]}
    assert {"ours eager", "ours fused", "ours onnxruntime", "ours bf16", "ours int8 onnxruntime",
            "timm eager", "timm onnxruntime", "timm int8 onnxruntime"} <= names
    assert {r["name"] for r in data["training"]} >= {"ours", "timm"}
    assert "throughput_vs_timm" in res["ratios"] and data["machine"]["cpu"]
    assert "| ours fused |" in (tmp_path / "bench.md").read_text()


def test_cli_bench_tiny(tmp_path: Path) -> None:
    rc = main(["bench", "--tiny", "--allow-spinning", "--out", str(tmp_path), "-m", "rexnet_060", "--image-size", "32",
               "--rounds", "1", "--no-train", "--only", "ours eager", "ours fused"])
    assert rc == 0
    data = json.loads((tmp_path / "bench.json").read_text())
    rows = {r["name"]: r for r in data["inference"]}
    assert set(rows) == {"ours eager", "ours fused"}  # --only was honoured
    macs = count_macs(get_plan("rexnet_060"), 32, 1000)
    for r in rows.values():
        assert r["macs"] == macs and r["throughput"] > 0 and r["latency_ms"] > 0
    md = (tmp_path / "bench.md").read_text()
    assert "| ours eager |" in md and "| ours fused |" in md


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="peak memory is read from /proc (Linux)")
def test_peak_memory() -> None:
    import torch

    big = peak_memory_mib(lambda: torch.ones(64, 2**20).sum())  # 256 MiB
    small = peak_memory_mib(lambda: torch.ones(2**16).sum())  # 0.25 MiB
    assert big is not None and small is not None
    assert 200 <= big <= 1024 and small < 50


@pytest.mark.slow
def test_bench_peers_openvino_best_ratio_and_peaks(tmp_path: Path) -> None:
    pytest.importorskip("openvino")
    cfg = tiny_config(model="rexnet_060", timm_model="mobilenetv3_small_050", image_size=32, batch_throughput=2,
                      rounds=2, latency_iters=1, warmup=0, int8=False, train=False,
                      only=("ours fused", "ours openvino", "timm eager", "timm openvino"))
    res = run_bench(cfg, tmp_path)
    rows = {r["name"]: r for r in res["inference"]}
    assert {"ours openvino f32", "ours openvino bf16", "timm openvino f32", "timm openvino bf16"} <= set(rows)
    assert rows["ours openvino bf16"]["precision"] == "bf16"
    best = res["ratios"]["best_ours_vs_best_peer"]
    for label in ("throughput", "latency"):
        assert best[label]["ours"].startswith("ours ") and best[label]["peer"].startswith("timm ")
        assert best[label]["ratio"] > 0
    m = res["machine"]
    assert m["peak_gmacs"]["int8"] >= m["peak_gmacs"]["bf16"] >= m["peak_gmacs"]["fp32"] > 0 and m["peak_how"]
    r = rows["ours openvino bf16"]
    assert r["fraction_of_own_peak"] == pytest.approx(r["gmacs_per_s"] / m["peak_gmacs"]["bf16"])
    assert "Best ours ÷ best peer at batch 2" in (tmp_path / "bench.md").read_text()


def test_cpu_peak_rules() -> None:
    from rexnet.deploy.bench_report import cpu_peak

    zen4 = cpu_peak(2, {"avx2", "fma", "avx512f", "avx512_bf16", "avx512_vnni"}, "AuthenticAMD", 2.6)
    assert zen4["macs_per_cycle"] == {"fp32": 16, "bf16": 32, "int8": 64}
    assert zen4["fp32"] == pytest.approx(2 * 2.6 * 16)
    spr = cpu_peak(2, {"avx2", "fma", "avx512f", "avx512_bf16", "avx512_vnni", "amx_bf16", "amx_int8"},
                   "GenuineIntel", 2.6)
    assert spr["macs_per_cycle"] == {"fp32": 32, "bf16": 512, "int8": 1024}
    assert cpu_peak(1, {"avx2", "fma"}, "GenuineIntel", 3.0)["macs_per_cycle"]["int8"] == 32
