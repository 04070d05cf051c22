"""Side-by-side CPU benchmark: our inference paths vs timm's ReXNet and torchvision's light models.

Everything runs in one process. Each measurement is *interleaved*: every round times each
candidate once (in rotating order), after a warm-up; the reported figure is the median over
rounds, so load from other processes hits all candidates alike. Ratios are against timm's
``rexnet_100`` eager model measured in the same rounds.
"""

from __future__ import annotations

import ctypes
import gc
import logging
import os
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import torch

from .._memory import check_inference_memory
from ..errors import RexnetError
from ..zoo import get_plan, list_models
from .bench_report import machine_info, write_reports
from .candidates import Candidate, build_candidates, build_train_candidates, foreign_macs

__all__ = ["BenchConfig", "TINY", "run_bench", "peak_memory_mib"]

_log = logging.getLogger(__name__)


@dataclass
class BenchConfig:
    """What :func:`run_bench` measures.

    Attributes:
        model: Our variant.
        timm_model: timm's model to compare with (and to train side by side).
        image_size: Input size for latency/throughput and training.
        batch_latency / batch_throughput: Batch sizes of the latency and throughput runs.
        rounds: Interleaved timing rounds (medians are over these).
        latency_iters: Calls per round at batch ``batch_latency`` (their mean is one sample).
        warmup: Untimed calls per candidate before the rounds.
        compile: Include the ``torch.compile`` paths (ours and timm's); compiling takes minutes.
        compile_batch1: Also time the compiled paths at batch ``batch_latency`` (one more
            compilation each: shapes are static).
        bf16 / int8 / onnx: Include those paths.
        torchvision: Include mobilenet_v2, mobilenet_v3_large, efficientnet_b0.
        timm: Include timm's rexnet_100 (the reference; without it no ratios).
        train: Measure training steps (ours vs timm) too.
        train_batch / train_rounds: Training-step batch and rounds.
        calib_images: Images for int8 calibration (random unless ``calib_data`` is given).
        calib_data: Dataset name for calibration (``digits``); ``None`` uses random images.
        threads: torch/onnxruntime threads (default: all cores torch sees).
        fp32_peak_gmacs: The CPU's fp32 peak in GMAC/s; ``None`` derives it from the CPU
            (:func:`~rexnet.deploy.bench_report.cpu_peak`: threads x GHz x MACs/cycle of its ISA).
        openvino: Include the OpenVINO paths (ours and the peer's; skipped when not installed).
        peers: Run every runtime on the peer's (timm) model too: onnxruntime fp32/int8, OpenVINO.
        only: Restrict to candidate names containing one of these strings (empty: all).
    """

    model: str = "rexnet_100"
    timm_model: str = "rexnet_100"
    image_size: int = 224
    batch_latency: int = 1
    batch_throughput: int = 32
    rounds: int = 5
    latency_iters: int = 10
    warmup: int = 2
    compile: bool = True
    compile_batch1: bool = False
    bf16: bool = True
    int8: bool = True
    onnx: bool = True
    torchvision: bool = True
    timm: bool = True
    train: bool = True
    train_batch: int = 32
    train_rounds: int = 3
    calib_images: int = 256
    calib_data: str | None = None
    threads: int | None = None
    fp32_peak_gmacs: float | None = None
    only: tuple[str, ...] = field(default_factory=tuple)
    openvino: bool = True
    peers: bool = True

    def __post_init__(self) -> None:
        for key in ("image_size", "batch_latency", "batch_throughput", "rounds", "latency_iters", "train_batch",
                    "train_rounds", "calib_images"):
            if getattr(self, key) < 1:
                raise RexnetError(f"{key} must be >= 1, got {getattr(self, key)}")
        if self.warmup < 0:
            raise RexnetError(f"warmup must be >= 0, got {self.warmup}")
        if self.threads is not None and self.threads < 1:
            raise RexnetError(f"threads must be >= 1 (or None for all cores), got {self.threads}")


#: A configuration for tests and smoke runs: seconds, not minutes.
TINY = BenchConfig(image_size=64, batch_throughput=4, rounds=2, latency_iters=2, warmup=1,
                   compile=False, torchvision=False, train_batch=4, train_rounds=1, calib_images=8)


def _status_bytes(key: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key):
                return int(line.split()[1]) * 1024
    raise OSError(key)


def peak_memory_mib(fn: Callable[[], Any]) -> float | None:
    """Peak resident memory (MiB) that ``fn`` adds on top of what the process held before.

    Linux only: frees cached heap (``malloc_trim``), resets the kernel's high-water mark
    (``/proc/self/clear_refs``), runs ``fn`` and reads ``VmHWM - VmRSS(before)``. It sees every
    allocator (torch, oneDNN scratch, onnxruntime's arena). ``None`` where unsupported.
    """
    try:
        gc.collect()
        ctypes.CDLL("libc.so.6").malloc_trim(0)
        base = _status_bytes("VmRSS")
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        return None
    fn()
    return max(0, _status_bytes("VmHWM") - base) / 2**20


def _interleaved(cands: list[Candidate], inputs: dict[str, torch.Tensor], rounds: int, iters: int,
                 warmup: int) -> dict[str, list[float]]:
    """Seconds per call for each candidate, one sample per round, rounds interleaved."""
    samples: dict[str, list[float]] = {c.name: [] for c in cands}
    with torch.inference_mode():
        for c in cands:
            for _ in range(warmup):
                c.fn(inputs[c.name])
        for r in range(rounds):
            order = cands[r % len(cands):] + cands[: r % len(cands)]
            for c in order:
                x = inputs[c.name]
                t0 = time.perf_counter()
                for _ in range(iters):
                    c.fn(x)
                samples[c.name].append((time.perf_counter() - t0) / iters)
            _log.info("round %d/%d done", r + 1, rounds)
    return samples


def _train_interleaved(cands: list[Candidate], x: torch.Tensor, y: torch.Tensor, rounds: int,
                       warmup: int) -> tuple[dict[str, list[float]], dict[str, float]]:
    samples: dict[str, list[float]] = {c.name: [] for c in cands}
    peaks: dict[str, float] = {}
    for c in cands:
        for _ in range(warmup):
            c.fn((x, y))
        peaks[c.name] = peak_memory_mib(lambda c=c: c.fn((x, y)))
    for r in range(rounds):
        for c in cands[r % len(cands):] + cands[: r % len(cands)]:
            t0 = time.perf_counter()
            c.fn((x, y))
            samples[c.name].append(time.perf_counter() - t0)
    return samples, peaks


def _load() -> list[float]:
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except OSError:  # pragma: no cover - not on Linux
        return []


def run_bench(config: BenchConfig | None = None, out: str | os.PathLike | None = None,
              checkpoint: str | os.PathLike | None = None) -> dict[str, Any]:
    """Run the side-by-side benchmark and (with ``out``) write ``bench.json``, ``bench.md``, ``latency_vs_macs.png``.

    Args:
        config: What to measure (default: the full 224px run; :data:`TINY` for a smoke run).
        out: Output folder; nothing is written when ``None``.
        checkpoint: Weights for our model (e.g. from ``rexnet train``); random otherwise. With a
            training checkpoint and ``calib_data``, int8/bf16 accuracy on that data is reported.

    Returns:
        The results dict that ``bench.json`` holds: ``config``, ``machine``, ``inference``
        (one row per candidate), ``training``, ``agreement`` and ``ratios``.

    Example:
        >>> from rexnet.deploy import TINY, run_bench
        >>> res = run_bench(TINY, "/tmp/bench")  # doctest: +SKIP
    """
    cfg = config or BenchConfig()
    if cfg.timm or cfg.peers:
        import timm

        if not timm.is_model(cfg.timm_model):
            raise RexnetError(f"unknown timm model {cfg.timm_model!r}; e.g. rexnet_100 (see timm.list_models())")
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    torch.manual_seed(0)
    t_start = time.time()
    load_before = _load()
    if cfg.model in list_models():  # refuse sizes that would not fit before building a dozen copies
        check_inference_memory(get_plan(cfg.model), cfg.image_size, 1000,
                               max(cfg.batch_throughput, cfg.batch_latency), what=cfg.model)
    cands, extra = build_candidates(cfg, checkpoint)
    if not cands:
        raise RexnetError(f"no benchmark candidate left after only={cfg.only!r}")
    size, g = cfg.image_size, torch.Generator().manual_seed(0)
    rows: dict[str, dict[str, Any]] = {}
    for c in cands:
        macs = c.macs if c.macs is not None else foreign_macs(c.module, size)
        rows[c.name] = dict(name=c.name, group=c.group, precision=c.precision, params=c.params, macs=macs)
    for key, batch, iters in (("latency_ms", cfg.batch_latency, cfg.latency_iters),
                              ("throughput", cfg.batch_throughput, 1)):
        _log.info("timing batch %d", batch)
        x = torch.randn(batch, 3, size, size, generator=g)
        active = [c for c in cands if batch in c.batches]
        if not active:
            continue
        inputs = {c.name: c.prepare(x) for c in active}
        samples = _interleaved(active, inputs, cfg.rounds, iters, cfg.warmup)
        for c in active:
            med = statistics.median(samples[c.name])
            row = rows[c.name]
            if key == "latency_ms":
                row["latency_ms"] = med * 1e3
                row["latency_ms_min"] = min(samples[c.name]) * 1e3
                row["latency_samples_s"] = samples[c.name]
            else:
                row["throughput"] = batch / med
                row["throughput_min_s"] = min(samples[c.name])
                row["samples_s"] = samples[c.name]
        for c in active:
            rows[c.name][f"peak_mem_mib_b{batch}"] = peak_memory_mib(
                lambda c=c, x=inputs[c.name]: torch.inference_mode()(c.fn)(x))
    minfo = machine_info()
    peak = cfg.fp32_peak_gmacs or minfo["fp32_peak_gmacs"]
    scale = peak / minfo["fp32_peak_gmacs"]  # an explicit fp32 peak scales the bf16/int8 peaks alike
    for row in rows.values():
        if row.get("throughput") and row.get("macs"):
            row["gmacs_per_s"] = row["throughput"] * row["macs"] / 1e9
            row["fraction_of_fp32_peak"] = row["gmacs_per_s"] / peak
            own = minfo["peak_gmacs"].get(row["precision"], minfo["fp32_peak_gmacs"]) * scale
            row["fraction_of_own_peak"] = row["gmacs_per_s"] / own
    training: dict[str, Any] = {}
    if cfg.train:
        tcands = build_train_candidates(cfg)
        xt = torch.randn(cfg.train_batch, 3, size, size, generator=g)
        yt = torch.randint(0, 1000, (cfg.train_batch,), generator=g)
        tsamples, peaks = _train_interleaved(tcands, xt, yt, cfg.train_rounds, 1)
        for c in tcands:
            training[c.name] = dict(name=c.name, throughput=cfg.train_batch / statistics.median(tsamples[c.name]),
                                    peak_mem_mib=peaks[c.name], samples_s=tsamples[c.name])
    results = dict(
        config={k: list(v) if isinstance(v, tuple) else v for k, v in asdict(cfg).items()},
        machine={**minfo, "fp32_peak_gmacs": peak, "load_before": load_before, "load_after": _load(),
                 "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", "(unset: active spinning)")},
        inference=list(rows.values()),
        training=list(training.values()),
        agreement=extra.get("agreement", {}),
        accuracy=extra.get("accuracy", {}),
        seconds=round(time.time() - t_start, 1),
    )
    results["ratios"] = _ratios(results)
    if out is not None:
        write_reports(results, Path(out))
    return results


def _best(rows: dict[str, dict[str, Any]], group: str, key: str, higher: bool) -> str | None:
    """The row of ``group`` with the best median ``key`` (throughput: highest; latency: lowest)."""
    cands = [r for r in rows.values() if r["group"] == group and r.get(key)]
    if not cands:
        return None
    return (max if higher else min)(cands, key=lambda r: r[key])["name"]


def _ratios(res: dict[str, Any]) -> dict[str, Any]:
    """Ratios vs timm eager (throughput: ours / timm; latency: ours / timm, lower is better), and
    the best of our paths against the best of the peer's (timm group) paths."""
    rows = {r["name"]: r for r in res["inference"]}
    ref = rows.get("timm eager")
    out: dict[str, Any] = {}
    if ref:
        for name, r in rows.items():
            # paired: the ratio within each round, then the median over rounds (robust to load drift)
            if r.get("samples_s") and ref.get("samples_s"):
                out.setdefault("throughput_vs_timm", {})[name] = statistics.median(
                    t / s for s, t in zip(r["samples_s"], ref["samples_s"]))
            if r.get("latency_samples_s") and ref.get("latency_samples_s"):
                out.setdefault("latency_vs_timm", {})[name] = statistics.median(
                    s / t for s, t in zip(r["latency_samples_s"], ref["latency_samples_s"]))
    for label, key, samples, higher in (("throughput", "throughput", "samples_s", True),
                                        ("latency", "latency_ms", "latency_samples_s", False)):
        ours, peer = _best(rows, "ours", key, higher), _best(rows, "timm", key, higher)
        if ours and peer:
            a, b = rows[ours][samples], rows[peer][samples]
            # speed ratio (> 1: ours faster), paired per round like the rest
            out.setdefault("best_ours_vs_best_peer", {})[label] = dict(
                ours=ours, peer=peer, ratio=statistics.median(p / o for o, p in zip(a, b)))
    train = {r["name"]: r for r in res["training"]}
    tref = train.get("timm")
    if tref:
        for name, r in train.items():
            out.setdefault("train_throughput_vs_timm", {})[name] = r["throughput"] / tref["throughput"]
            if tref["peak_mem_mib"] and r["peak_mem_mib"] is not None:
                out.setdefault("train_peak_mem_vs_timm", {})[name] = r["peak_mem_mib"] / tref["peak_mem_mib"]
    return out


def passive_omp_env() -> dict[str, str] | None:
    """The environment to re-run the benchmark under when OpenMP workers would busy-wait.

    torch's OpenMP workers spin between parallel regions by default; on a machine shared with
    other jobs that makes every op wait for a descheduled spinner (10x swings at batch 1).
    ``OMP_WAIT_POLICY=PASSIVE`` must be set before torch loads, so the CLI re-executes itself
    with it. Returns ``None`` when it is already set.
    """
    if "OMP_WAIT_POLICY" in os.environ:
        return None
    return {**os.environ, "OMP_WAIT_POLICY": "PASSIVE"}


def tiny_config(**overrides: Any) -> BenchConfig:
    """:data:`TINY` with ``overrides`` applied."""
    return replace(TINY, **overrides)


