"""The benchmark harness runs on a tiny configuration and writes its files (not a timed test)."""

from __future__ import annotations

import json
from pathlib import Path

from rexnet.cli import main
from rexnet.deploy import peak_memory_mib, tiny_config
from rexnet.deploy.bench import run_bench


def test_tiny_bench_writes_files(tmp_path: Path) -> None:
    # the harness, not the models, is under test: our smallest variant and a small timm model
    cfg = tiny_config(model="rexnet_060", timm_model="mobilenetv3_small_050", image_size=32, batch_throughput=2,
                      rounds=1, latency_iters=1, warmup=0, calib_images=4, train_batch=2)
    res = run_bench(cfg, tmp_path)
    for name in ("bench.json", "bench.md", "latency_vs_macs.png"):
        assert (tmp_path / name).is_file(), name
    data = json.loads((tmp_path / "bench.json").read_text())
    names = {r["name"] for r in data["inference"]}
    assert {"ours eager", "ours fused", "ours onnxruntime", "ours bf16", "ours int8 onnxruntime",
            "timm eager"} <= names
    assert {r["name"] for r in data["training"]} >= {"ours", "timm"}
    assert "throughput_vs_timm" in res["ratios"] and data["machine"]["cpu"]
    assert "| ours fused |" in (tmp_path / "bench.md").read_text()


def test_cli_bench_tiny(tmp_path: Path) -> None:
    rc = main(["bench", "--tiny", "--allow-spinning", "--out", str(tmp_path), "-m", "rexnet_060", "--image-size", "32",
               "--rounds", "1", "--no-train", "--only", "ours eager", "ours fused"])
    assert rc == 0 and (tmp_path / "bench.md").is_file()


def test_peak_memory() -> None:
    import torch

    mib = peak_memory_mib(lambda: torch.ones(64, 2**20).sum())
    assert mib is None or mib >= 200
