"""Machine description and the benchmark's outputs: ``bench.json``, ``bench.md``, ``latency_vs_macs.png``."""

from __future__ import annotations

import datetime as _dt
import importlib.metadata
import platform
from pathlib import Path
from typing import Any

import torch

from .._device import cpu_field, cpu_flags, cpu_model
from .._files import atomic_write, check_output, write_figure, write_json
from .._table import format_table
from ..errors import InputError

__all__ = ["machine_info", "cpu_peak", "check_report_paths", "report_paths", "write_reports", "markdown_report"]


def _cpu_ghz() -> float:
    try:
        return float(cpu_field("cpu MHz") or "2000") / 1e3
    except ValueError:  # pragma: no cover
        return 2.0


def _vendor() -> str:
    return cpu_field("vendor_id") or "unknown"


def cpu_peak(
    threads: int | None = None, flags: set[str] | None = None, vendor: str | None = None, ghz: float | None = None
) -> dict[str, Any]:
    """The CPU's peak multiply-accumulate rate (GMAC/s) in fp32, bf16 and int8, from its ISA flags.

    ``peak = threads x GHz x MACs per cycle per core``, one thread per core, at the clock
    ``/proc/cpuinfo`` reports (nominal under a hypervisor; turbo is not counted). MACs per cycle:

    * fp32: FMA units x vector lanes. Intel with AVX-512: 2 x 16. AMD Zen 4 (AVX-512 without
      ``avx512_vp2intersect``/``avx_vnni``): AVX-512 runs on two 256-bit pipes, 2 x 8. AMD Zen 5
      (AVX-512 with ``avx_vnni``): 2 x 16. AVX2 + FMA: 2 x 8. Else 4.
    * bf16: AMX-BF16 512 per core (Sapphire Rapids tile unit); AVX512-BF16 ``vdpbf16ps`` 2x fp32;
      otherwise no native bf16 (= fp32 rate).
    * int8: AMX-INT8 1024; VNNI ``vpdpbusd`` 4x fp32; otherwise 2x fp32 (``vpmaddubsw`` chains).

    Returns:
        ``fp32``, ``bf16``, ``int8`` (GMAC/s), ``macs_per_cycle`` per precision and ``how``,
        the derivation in words.
    """
    flags = cpu_flags() if flags is None else flags
    vendor = _vendor() if vendor is None else vendor
    threads = threads or torch.get_num_threads()
    ghz = ghz or _cpu_ghz()
    amd = vendor == "AuthenticAMD"
    if "avx512f" in flags:
        if amd and "avx_vnni" not in flags and "avx512_vp2intersect" not in flags:
            fp32, isa = 16, "AVX-512 on AMD Zen 4 (2 FMA pipes x 256 bit = 16 fp32 MAC/cycle)"
        else:
            fp32, isa = 32, "AVX-512 (2 FMA units x 16 fp32 lanes = 32 MAC/cycle)"
    elif "avx2" in flags and "fma" in flags:
        fp32, isa = 16, "AVX2 + FMA (2 x 8 lanes = 16 MAC/cycle)"
    else:
        fp32, isa = 4, "no AVX2/FMA (4 MAC/cycle assumed)"
    if "amx_bf16" in flags:
        bf16, bf16_how = 512, "AMX-BF16 512 MAC/cycle"
    elif "avx512_bf16" in flags:
        bf16, bf16_how = 2 * fp32, "AVX512-BF16 = 2x fp32"
    else:
        bf16, bf16_how = fp32, "no native bf16 = fp32"
    if "amx_int8" in flags:
        int8, int8_how = 1024, "AMX-INT8 1024 MAC/cycle"
    elif "avx512_vnni" in flags or "avx_vnni" in flags:
        int8, int8_how = 4 * fp32, "VNNI = 4x fp32"
    else:
        int8, int8_how = 2 * fp32, "no VNNI = 2x fp32"
    per = {"fp32": fp32, "bf16": bf16, "int8": int8}
    how = (
        f"{threads} threads (one per core) x {ghz:.2f} GHz (/proc/cpuinfo) x MACs/cycle/core: fp32 {isa}; "
        f"bf16 {bf16_how}; int8 {int8_how}"
    )
    return {**{k: threads * ghz * v for k, v in per.items()}, "macs_per_cycle": per, "how": how}


def machine_info() -> dict[str, Any]:
    """CPU model, cores, ISA features, library versions, date and the peak MAC rates (:func:`cpu_peak`)."""
    flags = cpu_flags()
    threads = torch.get_num_threads()
    ghz = _cpu_ghz()
    peak = cpu_peak(threads, flags, _vendor(), ghz)
    versions = {"python": platform.python_version(), "torch": torch.__version__}
    for dist in ("torchvision", "timm", "onnx", "onnxruntime", "openvino", "nncf", "numpy"):
        try:  # from the installed metadata: importing nncf would send its usage telemetry
            versions[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            versions[dist] = None
    return dict(
        cpu=cpu_model(),
        vendor=_vendor(),
        threads=threads,
        ghz=ghz,
        isa=sorted(
            f
            for f in flags
            if f in {"avx2", "avx512f", "avx512_bf16", "avx512_vnni", "amx_bf16", "amx_int8", "avx_vnni"}
        ),
        fp32_peak_gmacs=peak["fp32"],
        peak_gmacs={k: peak[k] for k in ("fp32", "bf16", "int8")},
        peak_how=peak["how"],
        versions=versions,
        date=_dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        platform=platform.platform(),
    )


def _fmt(v: Any, spec: str = ".2f") -> str:
    return "–" if v is None else format(v, spec)


def agreement_lines(agr: dict[str, Any]) -> list[str]:
    """The agreement table: one row per reduced-precision path (``n/a`` where the fp32 argmax is noise)."""
    lines: list[str] = []
    if len(agr) > 1:
        lines += [
            "",
            f"Agreement with fp32 eager on {agr.get('source')}:",
            "",
            "| path | top-1 agreement | cosine (mean) | cosine (min) | max abs diff |",
            "|---|---:|---:|---:|---:|",
        ]
        for name, a in agr.items():
            if name != "source":
                top1 = f"{a['top1_agreement'] * 100:.2f} %"
                if a.get("decisive_fraction", 1.0) < 0.5:  # near-equal fp32 logits: argmax is noise
                    top1 = "n/a (fp32 logits near-equal: untrained weights?)"
                lines.append(
                    f"| {name} | {top1} | {a['cosine_mean']:.6f} | {a['cosine_min']:.6f} | {a['max_abs_diff']:.3g} |"
                )
    return lines


def summary_table(res: dict[str, Any]) -> str:
    """The inference results as a plain-text table for the terminal (the full numbers stay in ``bench.json``)."""
    cfg = res["config"]
    r_thr = res["ratios"].get("throughput_vs_timm", {})
    r_lat = res["ratios"].get("latency_vs_timm", {})
    headers = [
        "model",
        "precision",
        "GMACs",
        f"b{cfg['batch_latency']} ms",
        "x timm",
        f"b{cfg['batch_throughput']} img/s",
        "x timm",
    ]
    rows = [
        [
            r["name"],
            r["precision"],
            _fmt(r["macs"] / 1e9 if r.get("macs") else None, ".3f"),
            _fmt(r.get("latency_ms"), ".1f"),
            _fmt(r_lat.get(r["name"])),
            _fmt(r.get("throughput"), ".1f"),
            _fmt(r_thr.get(r["name"])),
        ]
        for r in res["inference"]
    ]
    return format_table(headers, rows)


def place_labels(points: list[tuple[float, float]], sizes: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """Offsets (in points) that keep each label's box off the labels placed before it.

    ``points`` are the markers in display units (points), ``sizes`` each label's (width, height). A
    greedy search over rings of candidate offsets, nearest first: simple, deterministic, no dependency.
    """
    placed: list[tuple[float, float, float, float]] = []
    offsets = []
    candidates = [(3.0, 3.0), (3.0, -12.0), (-3.0, 3.0), (-3.0, -12.0)]
    for ring in range(1, 8):
        d = 10.0 * ring
        candidates += [(3.0, 3.0 + d), (3.0, 3.0 - d - 12.0), (d, 3.0), (-d, 3.0), (d, 3.0 + d), (-d, 3.0 - d)]
    for (x, y), (w, h) in zip(points, sizes):
        choice = candidates[0]
        for dx, dy in candidates:
            x0 = x + dx if dx >= 0 else x + dx - w  # a label left of its point ends at the point
            box = (x0, y + dy, x0 + w, y + dy + h)
            if not any(box[0] < b[2] and b[0] < box[2] and box[1] < b[3] and b[1] < box[3] for b in placed):
                choice = (dx, dy)
                break
        dx, dy = choice
        x0 = x + dx if dx >= 0 else x + dx - w
        placed.append((x0, y + dy, x0 + w, y + dy + h))
        offsets.append(choice)
    return offsets


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
        f"Peak (derived from the CPU): fp32 {m['fp32_peak_gmacs']:.0f} GMAC/s"
        + (
            f", bf16 {m['peak_gmacs']['bf16']:.0f}, int8 {m['peak_gmacs']['int8']:.0f} ({m['peak_how']})"
            if m.get("peak_gmacs")
            else ""
        )
        + ". Ratios (× timm) are per-round ratios to "
        "`timm eager` in the same round, median over rounds (latency: lower is better; throughput: higher). "
        f"OMP_WAIT_POLICY={m.get('omp_wait_policy')}. Peak mem: resident memory added during one call.",
        "",
        f"| model | precision | params (M) | GMACs | b{bl} latency (ms) | × timm | b{bt} throughput (img/s) | × timm "
        f"| GMAC/s | % fp32 peak | % own-precision peak | peak mem b{bt} (MiB) |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in res["inference"]:
        frac = r.get("fraction_of_fp32_peak")
        lines.append(
            f"| {r['name']} | {r['precision']} | {_fmt(r['params'] / 1e6 if r['params'] else None)} "
            f"| {_fmt(r['macs'] / 1e9 if r.get('macs') else None, '.3f')} | {_fmt(r.get('latency_ms'), '.1f')} "
            f"| {_fmt(r_lat.get(r['name']))} | {_fmt(r.get('throughput'), '.1f')} | {_fmt(r_thr.get(r['name']))} "
            f"| {_fmt(r.get('gmacs_per_s'), '.1f')} | {_fmt(frac * 100 if frac else None, '.1f')} "
            f"| {_fmt(r['fraction_of_own_peak'] * 100 if r.get('fraction_of_own_peak') else None, '.1f')} "
            f"| {_fmt(r.get(f'peak_mem_mib_b{bt}'), '.0f')} |"
        )
    best = res["ratios"].get("best_ours_vs_best_peer", {})
    for label, batch in (("throughput", bt), ("latency", bl)):
        if label in best:
            b = best[label]
            lines.append(
                f"\n**Best ours ÷ best peer at batch {batch}: {b['ratio']:.2f}×** "
                f"(`{b['ours']}` vs `{b['peer']}`; speed, paired per round, median)."
            )
    if res["training"]:
        tr = res["ratios"].get("train_throughput_vs_timm", {})
        tm = res["ratios"].get("train_peak_mem_vs_timm", {})
        lines += [
            "",
            f"Training step (forward + backward + SGD, batch {cfg['train_batch']}, "
            f"{cfg['train_rounds']} rounds, medians):",
            "",
            "| model | img/s | × timm | peak mem (MiB) | × timm |",
            "|---|---:|---:|---:|---:|",
        ]
        for r in res["training"]:
            lines.append(
                f"| {r['name']} | {r['throughput']:.2f} | {_fmt(tr.get(r['name']))} "
                f"| {_fmt(r['peak_mem_mib'], '.0f')} | {_fmt(tm.get(r['name']))} |"
            )
    lines += agreement_lines(res.get("agreement") or {})
    acc = res.get("accuracy") or {}
    if len(acc) > 1:
        lines += ["", f"Top-1 accuracy on {acc.get('source')}:", "", "| path | top-1 |", "|---|---:|"]
        lines += [f"| {k} | {v * 100:.2f} % |" for k, v in acc.items() if k != "source"]
    return "\n".join(lines) + "\n"


def _plot(res: dict[str, Any], path: Path, overwrite: bool = False) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    colors = {"ours": "tab:red", "timm": "tab:blue", "torchvision": "tab:green"}
    shown = [r for r in res["inference"] if r.get("macs") and r.get("latency_ms")]
    for r in shown:
        ax.scatter(
            r["macs"] / 1e9,
            r["latency_ms"],
            color=colors.get(r["group"], "gray"),
            marker="o" if r["precision"] == "fp32" else "s",
        )
    # labels placed apart: many runtimes of one model share its MACs, so their points stack
    xy = [(r["macs"] / 1e9, r["latency_ms"]) for r in shown]
    to_points = 72.0 / fig.dpi
    pts = [(px * to_points, py * to_points) for px, py in ax.transData.transform(xy)] if xy else []
    offsets = place_labels(pts, [(len(r["name"]) * 4.2, 8.0) for r in shown])  # 7 pt text: ~4.2 pt a character
    for r, (x, y), (dx, dy) in zip(shown, xy, offsets):
        arrow = None if (dx, dy) == (3.0, 3.0) else {"arrowstyle": "-", "lw": 0.4, "color": "gray"}
        ax.annotate(
            r["name"],
            (x, y),
            fontsize=7,
            xytext=(dx, dy),
            textcoords="offset points",
            ha="left" if dx >= 0 else "right",
            arrowprops=arrow,
        )
    ax.set_xlabel("GMACs per image")
    ax.set_ylabel(f"batch-{res['config']['batch_latency']} latency (ms, median)")
    ax.set_title(f"Latency vs MACs at {res['config']['image_size']}px — {res['machine']['cpu']}", fontsize=9)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    try:
        write_figure(fig, path, overwrite=overwrite, what="bench output", dpi=120)
    finally:
        plt.close(fig)


def report_paths(out: Path) -> dict[str, Path]:
    """The files :func:`write_reports` writes into ``out``."""
    return {"json": out / "bench.json", "md": out / "bench.md", "plot": out / "latency_vs_macs.png"}


def check_report_paths(out: Path, overwrite: bool = False) -> dict[str, Path]:
    """:func:`report_paths` checked under the output policy (call it before the benchmark runs).

    Raises:
        OutputExistsError: A report exists, was not written by this run, and ``overwrite`` is false.
        InputError: ``out`` is a file.
    """
    if out.exists() and not out.is_dir():
        raise InputError(f"bench output {out} is a file; give a folder")
    paths = report_paths(out)
    for p in paths.values():
        check_output(p, overwrite=overwrite, what="bench output")
    return paths


def write_reports(res: dict[str, Any], out: Path, *, overwrite: bool = False) -> dict[str, Path]:
    """Write ``bench.json`` (strict JSON), ``bench.md`` and ``latency_vs_macs.png`` into ``out``, each atomically."""
    paths = check_report_paths(out, overwrite)
    write_json(res, paths["json"], overwrite=overwrite, what="bench output")
    atomic_write(paths["md"], markdown_report(res), overwrite=overwrite, what="bench output")
    _plot(res, paths["plot"], overwrite)
    return paths
