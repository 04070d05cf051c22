"""The benchmark's contestants: our inference paths, timm's ReXNet, torchvision's light models."""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..zoo import load_model
from .compiled import FrozenCompiled, compile_model
from .fuse import fuse
from .onnx_core import OnnxModel, export_onnx
from .quant import agreement, predict_logits, pt2e_available, quantize_int8, quantize_int8_pt2e, to_bf16

__all__ = ["Candidate", "FixedBatch", "build_candidates", "build_train_candidates", "foreign_macs", "count_params"]

_log = logging.getLogger(__name__)


def _identity(x: torch.Tensor) -> torch.Tensor:
    return x


def _channels_last(x: torch.Tensor) -> torch.Tensor:
    return x.contiguous(memory_format=torch.channels_last)


@dataclass
class Candidate:
    """One thing to time.

    Attributes:
        name: Row label (``ours fused``, ``timm eager``, ...).
        group: ``ours``, ``timm`` or ``torchvision``.
        precision: ``fp32``, ``bf16`` or ``int8``.
        fn: Called with a prepared input.
        prepare: Turns an NCHW float32 batch into ``fn``'s input (layout, dtype), untimed.
        batches: Batch sizes it runs at (compiled bf16 skips batch 1 to save compile time).
        params: Parameter count of the model it runs.
        macs: MACs per image (``None``: counted from ``module`` with torch's FLOP counter).
        module: The eager module (for MAC counting).
    """

    name: str
    group: str
    precision: str
    fn: Callable[[Any], Any]
    prepare: Callable[[torch.Tensor], Any] = _identity
    batches: frozenset[int] = field(default_factory=lambda: frozenset({1, 32}))
    params: int = 0
    macs: int | None = None
    module: nn.Module | None = None


def count_params(model: nn.Module) -> int:
    """Number of parameters."""
    return sum(p.numel() for p in model.parameters())


def foreign_macs(model: nn.Module | None, image_size: int) -> int | None:
    """MACs per image of a model without a plan (timm, torchvision): torch's FLOP counter / 2."""
    if model is None:
        return None
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        model.eval()(torch.zeros(1, 3, image_size, image_size))
    return int(counter.get_total_flops() // 2)


def _calibration(cfg: Any, model_name: str, size: int) -> tuple[list[torch.Tensor], Any]:
    """Calibration batches (and a validation bundle when real data is used)."""
    g = torch.Generator().manual_seed(1)
    if cfg.calib_data:
        from ..data import build_datasets
        from .calib import calibration_batches

        bundle = build_datasets(cfg.calib_data, size, train=False, model=model_name)
        return calibration_batches(cfg.calib_data, size, model_name, cfg.calib_images), bundle
    n = cfg.calib_images
    return [torch.randn(min(32, n - i), 3, size, size, generator=g) for i in range(0, n, 32)], None


class FixedBatch:
    """Calls a shape-specialised compiled model with batches padded to ``batch`` rows (one
    compilation per image size instead of one per batch size)."""

    def __init__(self, fn: Callable[[torch.Tensor], torch.Tensor], batch: int) -> None:
        self.fn, self.batch = fn, batch

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        n = x.shape[0]
        if n == self.batch:
            return self.fn(x)
        outs = []
        for chunk in x.split(self.batch):
            k = chunk.shape[0]
            if k < self.batch:
                chunk = torch.cat([chunk, chunk.new_zeros((self.batch - k, *chunk.shape[1:]))])
            outs.append(self.fn(chunk)[:k])
        return torch.cat(outs)


def build_candidates(cfg: Any, checkpoint: str | os.PathLike | None = None) -> tuple[list[Candidate], dict[str, Any]]:
    """Build every candidate ``cfg`` asks for, plus agreement/accuracy of our reduced-precision paths.

    Returns:
        ``(candidates, extra)``; ``extra`` has ``agreement`` (per path vs fp32 eager on a fixed
        random set, or on the validation data with ``cfg.calib_data``) and ``accuracy``.
    """
    size = cfg.image_size
    bt = {cfg.batch_latency, cfg.batch_throughput}
    model, meta = load_model(cfg.model, checkpoint=checkpoint)
    # calibration and agreement run at the size the checkpoint was trained at
    eval_size = size if checkpoint is None else meta.image_size
    nparams = count_params(model)
    from ..plan import plan_cost

    macs = plan_cost(model.plan, size).macs
    cands: list[Candidate] = []

    def want(name: str) -> bool:
        return not cfg.only or any(s in name for s in cfg.only)

    def ours(name: str, precision: str, fn: Callable, prepare: Callable = _identity, **kw: Any) -> Candidate:
        return Candidate(
            f"ours {name}", "ours", precision, fn, prepare, frozenset(kw.pop("batches", bt)), nparams, macs, model, **kw
        )

    fused = fuse(model)
    if want("ours eager"):
        cands.append(ours("eager", "fp32", model))
    if want("ours fused"):
        cands.append(ours("fused", "fp32", fused, _channels_last))
    cbt = bt if cfg.compile_batch1 else {cfg.batch_throughput}
    if cfg.compile and want("ours fused+compile"):
        cands.append(ours("fused+compile", "fp32", compile_model(model), _channels_last, batches=cbt))
    tmp = Path(tempfile.mkdtemp(prefix="rexnet_bench_"))
    onnx_fp32 = bf16 = int8 = None
    if cfg.onnx and want("ours onnxruntime"):
        onnx_fp32 = OnnxModel(export_onnx(model, tmp / "fp32.onnx", image_size=size), cfg.threads)
        cands.append(ours("onnxruntime", "fp32", onnx_fp32))
    if cfg.onnx and cfg.peers and want("ours onnxruntime unpadded"):
        # the model's own channel widths (the graph node for node like timm's): what padding buys
        plain = export_onnx(model, tmp / "fp32_unpadded.onnx", image_size=size, pad_to=0)
        cands.append(ours("onnxruntime unpadded", "fp32", OnnxModel(plain, cfg.threads)))
    if cfg.bf16 and want("ours bf16"):
        bf16 = to_bf16(model)
        cands.append(ours("bf16", "bf16", bf16))
        if cfg.compile:
            cands.append(
                ours("bf16+compile", "bf16", FrozenCompiled(bf16, dynamic=False), batches={cfg.batch_throughput})
            )
    calib, bundle = [], None
    if cfg.int8 or cfg.calib_data:
        calib, bundle = _calibration(cfg, cfg.model, eval_size)
    if cfg.int8 and want("ours int8 onnxruntime"):
        int8 = quantize_int8(model, calib, tmp / "int8.onnx", image_size=eval_size)
        cands.append(ours("int8 onnxruntime", "int8", OnnxModel(int8.path, cfg.threads)))
    int8_pt2e = None
    if cfg.int8 and cfg.compile and want("ours int8 pt2e+compile"):
        timed, int8_pt2e = _pt2e_paths(cfg, model, calib, size)
        if timed is not None:
            cands.append(ours("int8 pt2e+compile", "int8", timed, batches={cfg.batch_throughput}))
    ov = _openvino_paths(cfg, model, calib, eval_size, want, "ours")
    ov.update(_registered_paths(cfg, model, meta.name, calib, eval_size, want, tmp))
    for name, (precision, fn) in ov.items():
        cands.append(ours(name, precision, fn))
    if cfg.timm and any(want(f"timm {s}") for s in _PEER_PATHS):
        cands += _peer_candidates(cfg, want, calib, eval_size, bt, cbt, tmp)
    if cfg.torchvision:
        cands += _torchvision_candidates(want, bt)
    extra = _agreement(
        cfg,
        model,
        {
            "fused": fused,
            "onnxruntime fp32": onnx_fp32,
            "bf16": bf16,
            "int8 onnxruntime": int8,
            "int8 pt2e+compile": int8_pt2e,
            **{name: fn for name, (_, fn) in ov.items()},
        },
        bundle,
        eval_size,
    )
    return cands, extra


def _pt2e_paths(cfg: Any, model: nn.Module, calib: list[torch.Tensor], size: int) -> tuple[Any, Any]:
    """(timed graph, agreement graph) of the int8 PT2E + compile path, or ``(None, None)`` without torchao."""
    if not pt2e_available():
        _log.warning("torchao not installed: skipping the int8 PT2E + compile path")
        return None, None
    # static graphs: one for timing (calibrated on random images of the timing shape), one
    # calibrated on the calibration set (real data when given) for the agreement figures
    g3 = torch.Generator().manual_seed(3)
    timed = quantize_int8_pt2e(model, [torch.randn(cfg.batch_throughput, 3, size, size, generator=g3)])
    full = [x for x in calib if x.shape[0] == calib[0].shape[0]]
    return timed, FixedBatch(quantize_int8_pt2e(model, full), full[0].shape[0])


def _torchvision_candidates(want: Callable[[str], bool], batches: set[int]) -> list[Candidate]:
    import torchvision

    cands = []
    for arch in ("mobilenet_v2", "mobilenet_v3_large", "efficientnet_b0"):
        if want(f"torchvision {arch}"):
            tv = torchvision.models.get_model(arch, weights=None).eval()
            name = f"torchvision {arch}"
            cands.append(
                Candidate(name, "torchvision", "fp32", tv, _identity, frozenset(batches), count_params(tv), None, tv)
            )
    return cands


_PEER_PATHS = ("eager", "compiled", "onnxruntime", "int8 onnxruntime", "openvino")


def _openvino_paths(
    cfg: Any, model: nn.Module, calib: list[torch.Tensor], size: int, want: Callable[[str], bool], who: str
) -> dict[str, tuple[str, Callable]]:
    """OpenVINO f32 (hint f32), bf16 (hint bf16: OpenVINO's default on CPUs with bf16) and NNCF int8 (the
    IR's own hint: OpenVINO's default)."""
    from .openvino_ir import OpenVinoModel, openvino_available, to_openvino

    out: dict[str, tuple[str, Callable]] = {}
    if not cfg.openvino or not any(want(f"{who} openvino {p}") for p in ("f32", "bf16", "int8")):
        return out
    if not openvino_available(with_nncf=cfg.int8):
        _log.warning("openvino/nncf not installed: skipping the OpenVINO paths")
        return out
    base = to_openvino(model, "f32", image_size=size)
    for p, hint in (("f32", "f32"), ("bf16", "bf16")):
        if want(f"{who} openvino {p}") and (p == "f32" or cfg.bf16):
            out[f"openvino {p}"] = (p, OpenVinoModel(base, hint, cfg.threads))
    if cfg.int8 and want(f"{who} openvino int8") and calib:
        # fast bias correction: only bias values differ from the full one, not the speed
        q = to_openvino(model, "int8", calibration=calib, image_size=size, fast_bias_correction=True)
        out["openvino int8"] = ("int8", OpenVinoModel(q, threads=cfg.threads))
    return out


#: Runtimes of :data:`~rexnet.deploy.runtime.RUNTIMES` with builders of their own above (padded and
#: unpadded graphs, fast int8 calibration, the peer's model); every other runtime is timed generically.
_OWN_BUILDERS = frozenset({"onnxruntime", "openvino"})


def _registered_paths(
    cfg: Any, model: nn.Module, name: str, calib: list[torch.Tensor], size: int, want: Callable[[str], bool], tmp: Path
) -> dict[str, tuple[str, Callable]]:
    """``{"<runtime> <precision>": (precision, runner)}`` for every registered runtime without its own builder:
    the model written by the runtime's export format, then loaded by the runtime, as a user would."""
    from .export import EXPORT_FORMATS, ExportJob
    from .runtime import RUNTIMES

    out: dict[str, tuple[str, Callable]] = {}
    for rt_name, rt in RUNTIMES.items():
        if rt_name in _OWN_BUILDERS or rt.export_format is None:
            continue
        fmt = EXPORT_FORMATS[rt.export_format]
        skip = {"int8": not (cfg.int8 and calib), "bf16": not cfg.bf16}
        todo = [p for p in fmt.precisions if p in rt.precisions and not skip.get(p) and want(f"ours {rt_name} {p}")]
        if todo and not rt.available():
            _log.warning("%s not installed: skipping the %s paths", rt.requires, rt_name)
            continue
        for precision in todo:
            target = tmp / rt_name / precision
            target = target if fmt.suffix == "/" else target.with_suffix(fmt.suffix)
            path = fmt.write(ExportJob(model, target, name, size, precision=precision, calib=calib))
            out[f"{rt_name} {precision}"] = (precision, rt.load(path, cfg.threads))
    return out


def _peer_candidates(
    cfg: Any, want: Callable[[str], bool], calib: list[torch.Tensor], size: int, bt: set[int], cbt: set[int], tmp: Path
) -> list[Candidate]:
    """timm's model through every path we offer: eager, compile, onnxruntime fp32/int8, OpenVINO."""
    import timm

    tm = timm.create_model(cfg.timm_model, pretrained=False).eval()
    tparams = count_params(tm)

    def peer(name: str, precision: str, fn: Callable, batches: set[int] = bt) -> Candidate:
        return Candidate(f"timm {name}", "timm", precision, fn, _identity, frozenset(batches), tparams, None, tm)

    out = []
    if want("timm eager"):
        out.append(peer("eager", "fp32", tm))
    if cfg.compile and want("timm compiled"):
        out.append(peer("compiled", "fp32", torch.compile(tm), cbt))
    if not cfg.peers:
        return out
    if cfg.onnx and want("timm onnxruntime"):
        out.append(
            peer(
                "onnxruntime",
                "fp32",
                OnnxModel(export_onnx(tm, tmp / "timm.onnx", image_size=cfg.image_size, fused=False), cfg.threads),
            )
        )
    if cfg.int8 and want("timm int8 onnxruntime") and calib:
        # timed only: bias correction changes bias values, not speed
        q = quantize_int8(tm, calib, tmp / "timm_int8.onnx", image_size=size, bias_correction=False)
        out.append(peer("int8 onnxruntime", "int8", OnnxModel(q.path, cfg.threads)))
    for name, (precision, fn) in _openvino_paths(cfg, tm, calib, size, want, "timm").items():
        out.append(peer(name, precision, fn))
    return out


def _agreement(cfg: Any, model: nn.Module, paths: dict[str, Any], bundle: Any, size: int) -> dict[str, Any]:
    """Top-1 agreement and cosine vs fp32 eager; accuracy on the validation data when given."""
    g = torch.Generator().manual_seed(2)
    if bundle is not None:
        val = bundle.val
        xs = torch.stack([val[i][0] for i in range(len(val))])
        labels = torch.tensor([int(val[i][1]) for i in range(len(val))])
        source = f"{bundle.name} validation ({len(val)} images)"
    else:
        xs = torch.randn(max(8, min(128, cfg.calib_images)), 3, size, size, generator=g)
        labels, source = None, f"fixed random set ({len(xs)} images, N(0,1) pixels)"
    batches = list(xs.split(32))
    ref = predict_logits(model, batches)
    out: dict[str, Any] = {"source": source}
    acc: dict[str, Any] = {}
    if labels is not None:
        acc["fp32 eager"] = float((ref.argmax(1) == labels).float().mean())
    for name, fn in paths.items():
        if fn is None:
            continue
        logits = predict_logits(fn, batches)
        out[name] = agreement(ref, logits)
        if labels is not None:
            acc[name] = float((logits.argmax(1) == labels).float().mean())
    if acc:
        acc["source"] = source
    return {"agreement": out, "accuracy": acc}


def build_train_candidates(cfg: Any) -> list[Candidate]:
    """Training-step candidates: ours (NCHW and channels-last) vs timm, SGD + cross-entropy."""
    from ..zoo import create_model

    def step_fn(net: nn.Module, channels_last: bool) -> Callable[[Any], None]:
        net.train()
        if channels_last:
            net.to(memory_format=torch.channels_last)
        opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9)
        loss_fn = nn.CrossEntropyLoss()

        def step(batch: tuple[torch.Tensor, torch.Tensor]) -> None:
            x, y = batch
            if channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            loss = loss_fn(net(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

        return step

    torch.manual_seed(0)
    out = [
        Candidate("ours", "ours", "fp32", step_fn(create_model(cfg.model), False)),
        Candidate("ours channels_last", "ours", "fp32", step_fn(create_model(cfg.model), True)),
    ]
    if cfg.timm:
        import timm

        out.append(Candidate("timm", "timm", "fp32", step_fn(timm.create_model(cfg.timm_model), False)))
    return out
