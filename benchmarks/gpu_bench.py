"""GPU throughput for issue 6: training (AMP bf16 + channels-last + torch.compile) and inference.

Run by ``benchmarks/gpu.sh`` on a CUDA machine; prints a Markdown table and writes JSON.

    python benchmarks/gpu_bench.py --out benchmarks/results/gpu --train-batch 256 --infer-batch 256
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import timm
import torch
from torch import nn

import rexnet


def _time(fn, iters: int, warmup: int) -> float:
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(iters):
        fn()
    torch.cuda.synchronize()
    return (time.perf_counter() - t0) / iters


def train_throughput(model: nn.Module, batch: int, size: int, compile_: bool, iters: int) -> dict:
    model = model.cuda().train().to(memory_format=torch.channels_last)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, nesterov=True)
    net = torch.compile(model) if compile_ else model
    x = torch.randn(batch, 3, size, size, device="cuda").contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 1000, (batch,), device="cuda")
    loss_fn = nn.CrossEntropyLoss()

    def step() -> None:
        with torch.autocast("cuda", dtype=torch.bfloat16):
            loss = loss_fn(net(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    torch.cuda.reset_peak_memory_stats()
    sec = _time(step, iters, warmup=3)
    return dict(img_s=batch / sec, peak_mem_gib=torch.cuda.max_memory_allocated() / 2**30)


@torch.inference_mode()
def infer_throughput(net, batch: int, size: int, dtype: torch.dtype, iters: int) -> dict:
    x = torch.randn(batch, 3, size, size, device="cuda", dtype=dtype).contiguous(memory_format=torch.channels_last)
    torch.cuda.reset_peak_memory_stats()
    sec = _time(lambda: net(x), iters, warmup=3)
    return dict(img_s=batch / sec, peak_mem_gib=torch.cuda.max_memory_allocated() / 2**30)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--out", default="benchmarks/results/gpu")
    p.add_argument("--model", default="rexnet_100")
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--train-batch", type=int, default=256)
    p.add_argument("--infer-batch", type=int, default=256)
    p.add_argument("--iters", type=int, default=20)
    p.add_argument("--no-compile", action="store_true")
    a = p.parse_args()
    torch.backends.cudnn.benchmark = True
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    comp = not a.no_compile
    res: dict = {"device": torch.cuda.get_device_name(), "torch": torch.__version__, "config": vars(a)}
    res["train ours"] = train_throughput(rexnet.create_model(a.model), a.train_batch, a.size, comp, a.iters)
    res["train timm"] = train_throughput(timm.create_model(a.model), a.train_batch, a.size, comp, a.iters)
    base = rexnet.create_model(a.model).cuda().eval()
    fused = rexnet.fuse(base)
    res["infer ours fused fp32"] = infer_throughput(fused, a.infer_batch, a.size, torch.float32, a.iters)
    fused16 = rexnet.fuse(base).to(torch.bfloat16)
    res["infer ours fused bf16"] = infer_throughput(fused16, a.infer_batch, a.size, torch.bfloat16, a.iters)
    if comp:
        res["infer ours fused bf16 compiled"] = infer_throughput(
            torch.compile(fused16, mode="max-autotune-no-cudagraphs"), a.infer_batch, a.size, torch.bfloat16, a.iters
        )
    tm = timm.create_model(a.model).cuda().eval().to(memory_format=torch.channels_last)
    res["infer timm fp32"] = infer_throughput(tm, a.infer_batch, a.size, torch.float32, a.iters)
    res["infer timm bf16"] = infer_throughput(tm.to(torch.bfloat16), a.infer_batch, a.size, torch.bfloat16, a.iters)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "gpu_bench.json").write_text(json.dumps(res, indent=2))
    print(f"{res['device']}, torch {res['torch']}, {a.model} at {a.size}px\n")
    print("| run | img/s | peak mem (GiB) |\n|---|---:|---:|")
    for k, v in res.items():
        if isinstance(v, dict) and "img_s" in v:
            print(f"| {k} | {v['img_s']:.0f} | {v['peak_mem_gib']:.2f} |")


if __name__ == "__main__":
    main()
