"""Machine description and the benchmark's outputs: ``bench.json``, ``bench.md``, ``latency_vs_macs.png``."""

from __future__ import annotations

import datetime as _dt
import json
import platform
from pathlib import Path
from typing import Any

import torch

__all__ = ["machine_info", "write_reports", "markdown_report"]


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:  # pragma: no cover - not Linux
        pass
    return platform.processor() or "unknown"


def _cpu_flags() -> set[str]:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return set(line.split(":", 1)[1].split())
    except OSError:  # pragma: no cover
        pass
    return set()


def _cpu_ghz() -> float:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("cpu MHz"):
                return float(line.split(":", 1)[1]) / 1e3
    except (OSError, ValueError):  # pragma: no cover
        pass
    return 2.0


def machine_info() -> dict[str, Any]:
    """CPU model, cores, ISA features, library versions, date and the estimated fp32 peak.

    The fp32 peak is ``threads x GHz x 32`` GMAC/s: two AVX-512 FMA units of 16 fp32 lanes per
    core (a server Xeon; halve it for one FMA unit, use 16 for AVX2-only CPUs).
    """
    flags = _cpu_flags()
    lanes = 16 if "avx512f" in flags else 8 if "avx2" in flags else 4
    threads = torch.get_num_threads()
    ghz = _cpu_ghz()
    versions = {"python": platform.python_version(), "torch": torch.__version__}
    for mod in ("torchvision", "timm", "onnx", "onnxruntime", "numpy"):
        try:
            versions[mod] = __import__(mod).__version__
        except ImportError:
            versions[mod] = None
    return dict(
        cpu=_cpu_model(),
        threads=threads,
        ghz=ghz,
        isa=sorted(f for f in flags if f in {"avx2", "avx512f", "avx512_bf16", "avx512_vnni", "amx_bf16",
                                              "amx_int8", "avx_vnni"}),
        fp32_peak_gmacs=threads * ghz * lanes * 2,
        versions=versions,
        date=_dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        platform=platform.platform(),
    )


def _fmt(v: Any, spec: str = ".2f") -> str:
    return "–" if v is None else format(v, spec)


def markdown_report(res: dict[str, Any]) -> str:
    """The results as Markdown tables (inference, training, agreement, machine)."""
    m, cfg = res["machine"], res["config"]
    r_thr = res["ratios"].get("throughput_vs_timm", {})
    r_lat = res["ratios"].get("latency_vs_timm", {})
    bl, bt = cfg["batch_latency"], cfg["batch_throughput"]
    lines = [
        f"# Benchmark: {cfg['model']} at {cfg['image_size']}px",
        "",
        f"{m['date']}; {m['cpu']}, {m['threads']} threads; load (1/5/15 min) before {m['load_before']}, "
        f"after {m['load_after']}; {cfg['rounds']} interleaved rounds, medians; {res['seconds']} s in all.",
        "Versions: " + ", ".join(f"{k} {v}" for k, v in m["versions"].items()) + ".",
        f"fp32 peak (estimated): {m['fp32_peak_gmacs']:.0f} GMAC/s. Ratios (× timm) are per-round ratios to "
        "`timm eager` in the same round, median over rounds (latency: lower is better; throughput: higher). "
        f"OMP_WAIT_POLICY={m.get('omp_wait_policy')}. Peak mem: resident memory added during one call.",
        "",
        f"| model | precision | params (M) | GMACs | b{bl} latency (ms) | × timm | b{bt} throughput (img/s) | × timm "
        f"| GMAC/s | % fp32 peak | peak mem b{bt} (MiB) |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in res["inference"]:
        frac = r.get("fraction_of_fp32_peak")
        lines.append(
            f"| {r['name']} | {r['precision']} | {_fmt(r['params'] / 1e6 if r['params'] else None)} "
            f"| {_fmt(r['macs'] / 1e9 if r.get('macs') else None, '.3f')} | {_fmt(r.get('latency_ms'), '.1f')} "
            f"| {_fmt(r_lat.get(r['name']))} | {_fmt(r.get('throughput'), '.1f')} | {_fmt(r_thr.get(r['name']))} "
            f"| {_fmt(r.get('gmacs_per_s'), '.1f')} | {_fmt(frac * 100 if frac else None, '.1f')} "
            f"| {_fmt(r.get(f'peak_mem_mib_b{bt}'), '.0f')} |"
        )
    if res["training"]:
        tr = res["ratios"].get("train_throughput_vs_timm", {})
        tm = res["ratios"].get("train_peak_mem_vs_timm", {})
        lines += ["", f"Training step (forward + backward + SGD, batch {cfg['train_batch']}, "
                  f"{cfg['train_rounds']} rounds, medians):", "",
                  "| model | img/s | × timm | peak mem (MiB) | × timm |", "|---|---:|---:|---:|---:|"]
        for r in res["training"]:
            lines.append(f"| {r['name']} | {r['throughput']:.2f} | {_fmt(tr.get(r['name']))} "
                         f"| {_fmt(r['peak_mem_mib'], '.0f')} | {_fmt(tm.get(r['name']))} |")
    agr = res.get("agreement") or {}
    if len(agr) > 1:
        lines += ["", f"Agreement with fp32 eager on {agr.get('source')}:", "",
                  "| path | top-1 agreement | cosine (mean) | cosine (min) | max abs diff |",
                  "|---|---:|---:|---:|---:|"]
        for name, a in agr.items():
            if name != "source":
                lines.append(f"| {name} | {a['top1_agreement'] * 100:.2f} % | {a['cosine_mean']:.6f} "
                             f"| {a['cosine_min']:.6f} | {a['max_abs_diff']:.3g} |")
    acc = res.get("accuracy") or {}
    if len(acc) > 1:
        lines += ["", f"Top-1 accuracy on {acc.get('source')}:", "", "| path | top-1 |", "|---|---:|"]
        lines += [f"| {k} | {v * 100:.2f} % |" for k, v in acc.items() if k != "source"]
    return "\n".join(lines) + "\n"


def _plot(res: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    colors = {"ours": "tab:red", "timm": "tab:blue", "torchvision": "tab:green"}
    for r in res["inference"]:
        if r.get("macs") and r.get("latency_ms"):
            ax.scatter(r["macs"] / 1e9, r["latency_ms"], color=colors.get(r["group"], "gray"),
                       marker="o" if r["precision"] == "fp32" else "s")
            ax.annotate(r["name"], (r["macs"] / 1e9, r["latency_ms"]), fontsize=7, xytext=(3, 3),
                        textcoords="offset points")
    ax.set_xlabel("GMACs per image")
    ax.set_ylabel(f"batch-{res['config']['batch_latency']} latency (ms, median)")
    ax.set_title(f"Latency vs MACs at {res['config']['image_size']}px — {res['machine']['cpu']}", fontsize=9)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def write_reports(res: dict[str, Any], out: Path) -> dict[str, Path]:
    """Write ``bench.json``, ``bench.md`` and ``latency_vs_macs.png`` into ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    paths = {"json": out / "bench.json", "md": out / "bench.md", "plot": out / "latency_vs_macs.png"}
    paths["json"].write_text(json.dumps(res, indent=2, default=str))
    paths["md"].write_text(markdown_report(res))
    _plot(res, paths["plot"])
    return paths
