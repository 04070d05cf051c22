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
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from .._config import Config, check_range
from .._env import THREAD_BOUNDS
from .._memory import check_inference_memory
from ..errors import InputError
from ..zoo import get_plan, list_models
from .bench_files import file_candidates
from .bench_report import check_report_paths, machine_info, write_reports
from .candidates import Candidate, build_candidates, build_train_candidates, foreign_macs

__all__ = ["BenchConfig", "TINY", "run_bench", "peak_memory_mib"]

_log = logging.getLogger(__name__)


_AT_LEAST_ONE = ("image_size", "batch_latency", "batch_throughput", "rounds", "latency_iters", "train_batch")


@dataclass
class BenchConfig(Config):
    """What :func:`run_bench` measures (default: the full 224px run; :data:`TINY` for a smoke run).

    Coerced and checked like every :class:`~rexnet._config.Config`; ``rexnet bench`` has one flag per field.

    Example:
        >>> BenchConfig(rounds="3", only="ours eager,timm eager").only
        ('ours eager', 'timm eager')
    """

    kind = "bench option"

    model: str = field(default="rexnet_100", metadata={"help": "our model"})
    timm_model: str = field(
        default="rexnet_100", metadata={"help": "timm's model to compare with (and to train side by side)"}
    )
    image_size: int = field(default=224, metadata={"help": "input size for latency/throughput and training"})
    batch_latency: int = field(default=1, metadata={"help": "batch size of the latency runs"})
    batch_throughput: int = field(default=32, metadata={"help": "batch size of the throughput runs"})
    rounds: int = field(default=5, metadata={"help": "interleaved timing rounds (medians are over these)"})
    latency_iters: int = field(
        default=10, metadata={"help": "calls per round at batch_latency (their mean is one sample)"}
    )
    warmup: int = field(default=2, metadata={"help": "untimed calls per candidate before the rounds"})
    compile: bool = field(
        default=True, metadata={"help": "include the torch.compile paths (ours and timm's); compiling takes minutes"}
    )
    compile_batch1: bool = field(
        default=False,
        metadata={
            "help": "also time the compiled paths at batch_latency (one more compilation each: shapes are static)"
        },
    )
    bf16: bool = field(default=True, metadata={"help": "include the bf16 paths"})
    int8: bool = field(default=True, metadata={"help": "include the int8 paths"})
    onnx: bool = field(default=True, metadata={"help": "include the onnxruntime paths"})
    torchvision: bool = field(
        default=True, metadata={"help": "include torchvision's mobilenet_v2, mobilenet_v3_large and efficientnet_b0"}
    )
    timm: bool = field(default=True, metadata={"help": "include timm's model (the reference; without it no ratios)"})
    train: bool = field(default=True, metadata={"help": "measure training steps too (ours vs timm)"})
    train_batch: int = field(default=32, metadata={"help": "training-step batch size"})
    train_rounds: int = field(default=3, metadata={"help": "training-step rounds"})
    calib_images: int = field(
        default=256, metadata={"help": "images for int8 calibration (random unless calib_data is given)"}
    )
    calib_data: str | None = field(
        default=None,
        metadata={
            "help": "calibrate int8 on this dataset (e.g. digits) and, with a training checkpoint, report int8/bf16 "
            "accuracy on it (None: random images)"
        },
    )
    threads: int | None = field(
        default=None,
        metadata={"help": "torch/onnxruntime threads (None: all cores torch sees)", **THREAD_BOUNDS},
    )
    fp32_peak_gmacs: float | None = field(
        default=None,
        metadata={"help": "the CPU's fp32 peak in GMAC/s (None: threads x GHz x MACs/cycle of its ISA, see cpu_peak)"},
    )
    only: tuple[str, ...] = field(
        default=(), metadata={"metavar": "NAME", "help": "only candidates whose name contains one of these"}
    )
    openvino: bool = field(
        default=True, metadata={"help": "include the OpenVINO paths, ours and the peer's (skipped when not installed)"}
    )
    peers: bool = field(
        default=True,
        metadata={"help": "run every runtime on the peer's (timm) model too: onnxruntime fp32/int8, OpenVINO"},
    )

    def validate(self) -> None:
        for key in (*_AT_LEAST_ONE, "train_rounds", "calib_images"):
            check_range(key, getattr(self, key), 1)
        check_range("warmup", self.warmup, 0)
        check_range("fp32_peak_gmacs", self.fp32_peak_gmacs, 0, open_low=True, none_means="the CPU's own")


#: A configuration for tests and smoke runs: seconds, not minutes.
TINY = BenchConfig(
    image_size=64,
    batch_throughput=4,
    rounds=2,
    latency_iters=2,
    warmup=1,
    compile=False,
    torchvision=False,
    train_batch=4,
    train_rounds=1,
    calib_images=8,
)


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


def _interleaved(
    cands: list[Candidate], inputs: dict[str, torch.Tensor], rounds: int, iters: int, warmup: int
) -> dict[str, list[float]]:
    """Seconds per call for each candidate, one sample per round, rounds interleaved."""
    samples: dict[str, list[float]] = {c.name: [] for c in cands}
    with torch.inference_mode():
        for c in cands:
            for _ in range(warmup):
                c.fn(inputs[c.name])
        for r in range(rounds):
            order = cands[r % len(cands) :] + cands[: r % len(cands)]
            for c in order:
                x = inputs[c.name]
                t0 = time.perf_counter()
                for _ in range(iters):
                    c.fn(x)
                samples[c.name].append((time.perf_counter() - t0) / iters)
            _log.info("round %d/%d done", r + 1, rounds)
    return samples


def _train_interleaved(
    cands: list[Candidate], x: torch.Tensor, y: torch.Tensor, rounds: int, warmup: int
) -> tuple[dict[str, list[float]], dict[str, float]]:
    samples: dict[str, list[float]] = {c.name: [] for c in cands}
    peaks: dict[str, float] = {}
    for c in cands:
        for _ in range(warmup):
            c.fn((x, y))
        peaks[c.name] = peak_memory_mib(lambda c=c: c.fn((x, y)))
    for r in range(rounds):
        for c in cands[r % len(cands) :] + cands[: r % len(cands)]:
            t0 = time.perf_counter()
            c.fn((x, y))
            samples[c.name].append(time.perf_counter() - t0)
    return samples, peaks


def _load() -> list[float]:
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except OSError:  # pragma: no cover - not on Linux
        return []


def run_bench(
    config: BenchConfig | None = None,
    out: str | os.PathLike | None = None,
    checkpoint: str | os.PathLike | None = None,
    *,
    overwrite: bool = False,
    files: Sequence[tuple[str | os.PathLike, str]] = (),
) -> dict[str, Any]:
    """Run the side-by-side benchmark and (with ``out``) write ``bench.json``, ``bench.md``, ``latency_vs_macs.png``.

    Args:
        config: What to measure (default: the full 224px run; :data:`TINY` for a smoke run).
        out: Output folder; nothing is written when ``None``.
        checkpoint: Weights for our model (e.g. from ``rexnet train``); random otherwise. With a
            training checkpoint and ``calib_data``, int8/bf16 accuracy on that data is reported.
        overwrite: Replace reports in ``out`` that this run did not write (checked before timing).
        files: Exported files to time alongside, as ``(path, runtime)`` (``onnxruntime``, ``openvino``).

    Returns:
        The results dict that ``bench.json`` holds: ``config``, ``machine``, ``inference``
        (one row per candidate), ``training``, ``agreement`` and ``ratios``.

    Example:
        >>> from rexnet.deploy import TINY, run_bench
        >>> res = run_bench(TINY, "/tmp/bench")  # doctest: +SKIP
    """
    cfg = config or BenchConfig()
    if out is not None:  # refuse a finished report before minutes of timing, not after
        check_report_paths(Path(out), overwrite)
    if cfg.timm or cfg.peers:
        import timm

        if not timm.is_model(cfg.timm_model):
            raise InputError(f"unknown timm model {cfg.timm_model!r}; e.g. rexnet_100 (see timm.list_models())")
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    torch.manual_seed(0)
    t_start, load_before = time.time(), _load()
    if cfg.model in list_models():  # refuse sizes that would not fit before building a dozen copies
        check_inference_memory(
            get_plan(cfg.model), cfg.image_size, 1000, max(cfg.batch_throughput, cfg.batch_latency), what=cfg.model
        )
    cands, extra = build_candidates(cfg, checkpoint)
    batches = {cfg.batch_latency, cfg.batch_throughput}
    cands += file_candidates(files, cfg.image_size, batches, cfg.threads)  # the user's own exports, same harness
    if not cands:
        raise InputError(f"no benchmark candidate left after only={cfg.only!r}")
    g = torch.Generator().manual_seed(0)
    rows = _time_inference(cfg, cands, g)
    minfo = machine_info()
    peak = cfg.fp32_peak_gmacs or minfo["fp32_peak_gmacs"]
    _add_peak_fractions(rows, minfo, peak)
    training = _time_training(cfg, g) if cfg.train else []
    results = dict(
        config=cfg.to_dict(),
        machine={
            **minfo,
            "fp32_peak_gmacs": peak,
            "load_before": load_before,
            "load_after": _load(),
            "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", "(unset: active spinning)"),
        },
        inference=rows,
        training=training,
        agreement=extra.get("agreement", {}),
        accuracy=extra.get("accuracy", {}),
        seconds=round(time.time() - t_start, 1),
    )
    results["ratios"] = _ratios(results)
    if out is not None:
        write_reports(results, Path(out), overwrite=overwrite)
    return results


def _time_inference(cfg: BenchConfig, cands: list[Candidate], g: torch.Generator) -> list[dict[str, Any]]:
    """One row per candidate: size, median latency at ``batch_latency``, throughput at ``batch_throughput``,
    and the peak memory of one call at each batch."""
    size = cfg.image_size
    rows: dict[str, dict[str, Any]] = {}
    for c in cands:
        macs = c.macs if c.macs is not None else foreign_macs(c.module, size)
        rows[c.name] = dict(name=c.name, group=c.group, precision=c.precision, params=c.params, macs=macs)
    for key, batch, iters in (
        ("latency_ms", cfg.batch_latency, cfg.latency_iters),
        ("throughput", cfg.batch_throughput, 1),
    ):
        _log.info("timing batch %d", batch)
        x = torch.randn(batch, 3, size, size, generator=g)
        active = [c for c in cands if batch in c.batches]
        if not active:
            continue
        inputs = {c.name: c.prepare(x) for c in active}
        samples = _interleaved(active, inputs, cfg.rounds, iters, cfg.warmup)
        for c in active:
            med, row = statistics.median(samples[c.name]), rows[c.name]
            if key == "latency_ms":
                row.update(
                    latency_ms=med * 1e3, latency_ms_min=min(samples[c.name]) * 1e3, latency_samples_s=samples[c.name]
                )
            else:
                row.update(throughput=batch / med, throughput_min_s=min(samples[c.name]), samples_s=samples[c.name])
        for c in active:
            rows[c.name][f"peak_mem_mib_b{batch}"] = peak_memory_mib(
                lambda c=c, x=inputs[c.name]: torch.inference_mode()(c.fn)(x)
            )
    return list(rows.values())


def _add_peak_fractions(rows: list[dict[str, Any]], minfo: dict[str, Any], peak: float) -> None:
    """GMAC/s of each throughput row, as a fraction of the fp32 peak and of its own precision's peak."""
    scale = peak / minfo["fp32_peak_gmacs"]  # an explicit fp32 peak scales the bf16/int8 peaks alike
    for row in rows:
        if row.get("throughput") and row.get("macs"):
            row["gmacs_per_s"] = row["throughput"] * row["macs"] / 1e9
            row["fraction_of_fp32_peak"] = row["gmacs_per_s"] / peak
            own = minfo["peak_gmacs"].get(row["precision"], minfo["fp32_peak_gmacs"]) * scale
            row["fraction_of_own_peak"] = row["gmacs_per_s"] / own


def _time_training(cfg: BenchConfig, g: torch.Generator) -> list[dict[str, Any]]:
    """Training-step throughput and peak memory, ours vs timm, interleaved."""
    size = cfg.image_size
    tcands = build_train_candidates(cfg)
    xt = torch.randn(cfg.train_batch, 3, size, size, generator=g)
    yt = torch.randint(0, 1000, (cfg.train_batch,), generator=g)
    tsamples, peaks = _train_interleaved(tcands, xt, yt, cfg.train_rounds, 1)
    return [
        dict(
            name=c.name,
            throughput=cfg.train_batch / statistics.median(tsamples[c.name]),
            peak_mem_mib=peaks[c.name],
            samples_s=tsamples[c.name],
        )
        for c in tcands
    ]


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
                    t / s for s, t in zip(r["samples_s"], ref["samples_s"])
                )
            if r.get("latency_samples_s") and ref.get("latency_samples_s"):
                out.setdefault("latency_vs_timm", {})[name] = statistics.median(
                    s / t for s, t in zip(r["latency_samples_s"], ref["latency_samples_s"])
                )
    for label, key, samples, higher in (
        ("throughput", "throughput", "samples_s", True),
        ("latency", "latency_ms", "latency_samples_s", False),
    ):
        ours, peer = _best(rows, "ours", key, higher), _best(rows, "timm", key, higher)
        if ours and peer:
            a, b = rows[ours][samples], rows[peer][samples]
            # speed ratio (> 1: ours faster), paired per round like the rest
            out.setdefault("best_ours_vs_best_peer", {})[label] = dict(
                ours=ours, peer=peer, ratio=statistics.median(p / o for o, p in zip(a, b))
            )
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
    """:data:`TINY` with ``overrides`` applied (checked: unknown keys and bad values raise ``ConfigError``)."""
    return TINY.replace(**overrides)
