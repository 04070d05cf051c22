"""The benchmark harness on a tiny configuration: what it measures and writes (not a timed test), and BenchConfig."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

import pytest

from rexnet._config import ConfigError, flag_overrides
from rexnet.cli import build_parser, main
from rexnet.deploy import TINY, BenchConfig, peak_memory_mib, tiny_config
from rexnet.deploy.bench import run_bench
from rexnet.plan import count_macs
from rexnet.zoo import get_plan


def _harness_config(**overrides: object) -> BenchConfig:
    """The harness, not the models, is under test: our smallest variant and a small timm model at 32 px."""
    return tiny_config(
        model="rexnet_060",
        timm_model="mobilenetv3_small_050",
        image_size=32,
        batch_throughput=2,
        rounds=2,
        latency_iters=1,
        warmup=0,
        **overrides,
    )


def test_tiny_bench_measures_every_path_and_writes_files(tmp_path: Path) -> None:
    cfg = _harness_config(
        calib_images=4,
        train_batch=2,
        openvino=False,
    )
    res = run_bench(cfg, tmp_path)
    assert (tmp_path / "latency_vs_macs.png").read_bytes()[:4] == b"\x89PNG"
    data = json.loads((tmp_path / "bench.json").read_text())
    assert data["config"] == cfg.to_dict() and data["config"]["model"] == "rexnet_060"
    rows = {r["name"]: r for r in data["inference"]}
    assert {
        "ours eager",
        "ours fused",
        "ours onnxruntime",
        "ours bf16",
        "ours int8 onnxruntime",
        "timm eager",
        "timm onnxruntime",
        "timm int8 onnxruntime",
    } <= set(rows)
    assert rows["ours eager"]["macs"] == count_macs(get_plan("rexnet_060"), 32, 1000)
    linux = sys.platform.startswith("linux")
    for name, r in rows.items():
        assert r["params"] > 0 and r["macs"] > 0, name
        assert r["throughput"] > 0 and len(r["samples_s"]) == cfg.rounds, name
        if "latency_ms" in r:
            assert r["latency_ms"] >= r["latency_ms_min"] > 0, name
        assert 0 < r["gmacs_per_s"] and 0 < r["fraction_of_fp32_peak"], name
        if linux:  # onnxruntime reuses its arena after warm-up (0 MiB added); PyTorch eager allocates activations
            peaks = [r[f"peak_mem_mib_b{b}"] for b in (cfg.batch_latency, cfg.batch_throughput)]
            assert all(p >= 0 for p in peaks) and ("eager" not in name or min(peaks) > 0), (name, peaks)
    assert rows["ours eager"]["latency_ms"] > 0 and rows["timm eager"]["latency_ms"] > 0
    train = {r["name"]: r for r in data["training"]}
    assert {"ours", "timm"} <= set(train)
    for name, r in train.items():
        assert r["throughput"] > 0 and len(r["samples_s"]) == cfg.train_rounds, name
        assert not linux or r["peak_mem_mib"] > 0, name
    ratios = res["ratios"]
    assert ratios["throughput_vs_timm"]["timm eager"] == pytest.approx(1.0)  # paired against itself
    assert ratios["throughput_vs_timm"]["ours eager"] > 0 and ratios["train_throughput_vs_timm"]["timm"] == 1.0
    assert data["machine"]["cpu"] and data["machine"]["fp32_peak_gmacs"] > 0
    md = (tmp_path / "bench.md").read_text()
    assert all(f"| {name} |" in md for name in rows)


def test_cli_bench_tiny(tmp_path: Path, capsys) -> None:
    rc = main(
        [
            "bench",
            "--tiny",
            "--allow-spinning",
            "--out",
            str(tmp_path),
            "-m",
            "rexnet_060",
            "--image-size",
            "32",
            "--rounds",
            "1",
            "--no-train",
            "--only",
            "ours eager",
            "ours fused",
        ]
    )
    assert rc == 0
    data = json.loads((tmp_path / "bench.json").read_text())
    assert (
        data["config"]
        == TINY.replace(
            model="rexnet_060", image_size=32, rounds=1, train=False, only=("ours eager", "ours fused")
        ).to_dict()
    )
    rows = {r["name"]: r for r in data["inference"]}
    assert set(rows) == {"ours eager", "ours fused"}  # --only was honoured
    assert data["training"] == []  # --no-train was honoured
    macs = count_macs(get_plan("rexnet_060"), 32, 1000)
    for r in rows.values():
        assert r["macs"] == macs and r["throughput"] > 0 and r["latency_ms"] > 0
    md = (tmp_path / "bench.md").read_text()
    assert "| ours eager |" in md and "| ours fused |" in md
    # the terminal gets a short table, not the raw JSON (which stays in bench.json)
    printed = capsys.readouterr().out
    table = printed.splitlines()
    assert table[0].split()[:3] == ["model", "precision", "GMACs"] and "{" not in printed
    assert any(line.startswith("ours eager ") for line in table) and len(table) < 12


def test_place_labels_keeps_stacked_labels_apart() -> None:
    from rexnet.deploy.bench_report import place_labels

    # five labels on one point (one model, five runtimes): every pair of label boxes must be disjoint
    sizes = [(40.0, 8.0)] * 5
    offsets = place_labels([(100.0, 100.0)] * 5, sizes)
    boxes = [(100 + dx if dx >= 0 else 100 + dx - 40, 100 + dy, 40, 8) for dx, dy in offsets]
    for i, (x, y, w, h) in enumerate(boxes):
        for x2, y2, w2, h2 in boxes[i + 1 :]:
            assert not (x < x2 + w2 and x2 < x + w and y < y2 + h2 and y2 < y + h)
    assert offsets[0] == (3.0, 3.0)  # a lone label keeps the usual place


def test_bench_flags_are_generated_from_the_config() -> None:
    p = build_parser()
    dests = {a.dest for a in _bench_parser(p)._actions}
    assert {f"cfg_{f.name}" for f in dataclasses.fields(BenchConfig)} <= dests
    args = p.parse_args(
        [
            "bench",
            "-o",
            "x",
            "-m",
            "rexnet_060",
            "--warmup",
            "0",
            "--no-int8",
            "--fp32-peak-gmacs",
            "100",
            "--only",
            "ours eager",
            "timm eager",
        ]
    )
    cfg = BenchConfig().replace(**flag_overrides(args))
    assert (cfg.model, cfg.warmup, cfg.int8, cfg.fp32_peak_gmacs) == ("rexnet_060", 0, False, 100.0)
    assert cfg.only == ("ours eager", "timm eager") and cfg.compile  # not given: the default


def _bench_parser(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    return next(a for a in p._actions if isinstance(a, argparse._SubParsersAction)).choices["bench"]


def test_bench_help_names_the_defaults_and_the_tiny_ones(capsys) -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(["bench", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "--image-size IMAGE_SIZE input size for latency/throughput and training (default: 224; --tiny: 64)" in text
    assert "--compile, --no-compile" in text and "(default: on; --tiny: off)" in text


@pytest.mark.parametrize(
    "overrides, match",
    [
        ({"roundz": 3}, r"unknown bench option 'roundz'; expected one of: .*rounds"),
        ({"rounds": "few"}, r"bad value for rounds: 'few'"),
        ({"rounds": 0}, r"rounds must be >= 1, got 0"),
        ({"warmup": -1}, r"warmup must be >= 0, got -1"),
        ({"threads": 0}, r"threads must be in \[1, \d+\] \(the cores this process may use\), got 0"),
        ({"compile": "perhaps"}, r"bad value for compile: 'perhaps'"),
        ({"image_size": 2.5}, r"bad value for image_size: 2\.5"),
        ({"fp32_peak_gmacs": 0}, r"fp32_peak_gmacs must be > 0"),
        ({"model": None}, r"model cannot be None"),
    ],
)
def test_bench_config_refuses_bad_keys_and_values(overrides, match) -> None:
    with pytest.raises(ConfigError, match=match):
        tiny_config(**overrides)
    with pytest.raises(ConfigError, match=match):
        BenchConfig.from_dict(overrides)


def test_bench_config_coerces_and_tiny_stays_put() -> None:
    cfg = tiny_config(rounds="3", threads="none", only="ours eager,timm eager", bf16="off")
    assert (cfg.rounds, cfg.threads, cfg.only, cfg.bf16) == (3, None, ("ours eager", "timm eager"), False)
    assert TINY.rounds == 2 and TINY.only == () and TINY.bf16  # replace copies
    assert BenchConfig.from_dict(cfg.to_dict()) == cfg


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
    cfg = _harness_config(
        int8=False,
        train=False,
        only=("ours fused", "ours openvino", "timm eager", "timm openvino"),
    )
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
    spr = cpu_peak(
        2, {"avx2", "fma", "avx512f", "avx512_bf16", "avx512_vnni", "amx_bf16", "amx_int8"}, "GenuineIntel", 2.6
    )
    assert spr["macs_per_cycle"] == {"fp32": 32, "bf16": 512, "int8": 1024}
    assert cpu_peak(1, {"avx2", "fma"}, "GenuineIntel", 3.0)["macs_per_cycle"]["int8"] == 32


def test_cli_bench_times_the_users_onnx_and_openvino_files(tmp_path: Path, capsys) -> None:
    from rexnet.deploy import export_model

    onnx = export_model("rexnet_060", tmp_path / "m.onnx", "onnx", image_size=64, verify=False).path
    ir = export_model("rexnet_060", tmp_path / "ir", "openvino", image_size=64, verify=False).path
    out = tmp_path / "bench"
    args = ["bench", "--tiny", "--allow-spinning", "--out", str(out), "-m", "rexnet_060", "--image-size", "32"]
    args += [
        "--rounds",
        "1",
        "--no-train",
        "--only",
        "ours eager",
        "--onnx-file",
        str(onnx),
        "--openvino-file",
        str(ir),
    ]
    assert main(args) == 0
    rows = {r["name"]: r for r in json.loads((out / "bench.json").read_text())["inference"]}
    onnx_row, ir_row = rows[f"{Path(onnx).name} (onnxruntime)"], rows[f"{Path(ir).name} (openvino)"]
    assert set(rows) == {"ours eager", onnx_row["name"], ir_row["name"]}
    for r in (onnx_row, ir_row):  # timed side by side by the same harness; the sidecar named the model
        assert r["latency_ms"] > 0 and r["throughput"] > 0 and r["group"] == "file"
        assert r["macs"] == count_macs(get_plan("rexnet_060"), 64, 1000)  # its own 64 px, from the sidecar
    assert onnx_row["name"] in capsys.readouterr().out
