"""Device and mixed-precision helpers shared by training, evaluation and deployment (base level: torch only)."""

from __future__ import annotations

import contextlib
import functools
import platform
from pathlib import Path

import torch

from .errors import InputError

__all__ = ["resolve_device", "cpu_has_native_bf16", "autocast", "cpu_field", "cpu_model", "cpu_flags"]


def resolve_device(device: str | torch.device | None = "auto", local_rank: int = 0) -> torch.device:
    """``auto`` -> the local CUDA device if there is one, else CPU.

    Raises:
        InputError: An unparsable device, or CUDA asked for where there is none (or not that many).
    """
    if device is None or device == "auto":
        return torch.device(f"cuda:{local_rank}") if torch.cuda.is_available() else torch.device("cpu")
    try:
        dev = torch.device(device)
    except RuntimeError:
        raise InputError(f"bad device {device!r}; expected auto, cpu, cuda or cuda:N") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise InputError(f"device {device!r} asked for, but no CUDA GPU is available here; use --device cpu or auto")
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise InputError(f"device {device!r}: only {torch.cuda.device_count()} CUDA device(s) here")
    return dev


def cpu_field(key: str) -> str | None:
    """The first ``key`` line of ``/proc/cpuinfo`` (``model name``, ``flags``, ``cpu MHz``, ...); ``None`` if absent."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.split(":", 1)[0].strip() == key:
                return line.split(":", 1)[1].strip()
    except OSError:  # not Linux
        pass
    return None


def cpu_model() -> str:
    """The CPU's model name, as benchmark reports name the machine."""
    return cpu_field("model name") or platform.processor() or platform.machine() or "unknown CPU"


def cpu_flags() -> set[str]:
    """The CPU's ISA flags (empty where ``/proc/cpuinfo`` is missing)."""
    return set((cpu_field("flags") or "").split())


@functools.lru_cache(maxsize=1)
def cpu_has_native_bf16() -> bool:
    """Whether this CPU computes bf16 natively (AVX512-BF16 or AMX), where bf16 autocast pays off."""
    flags = cpu_flags()
    return "avx512_bf16" in flags or "amx_bf16" in flags


def autocast(device: torch.device, amp: str) -> contextlib.AbstractContextManager:
    """Autocast for ``amp`` in ``none | bf16 | fp16 | auto``.

    ``auto``: on CPU bf16 where the CPU has native bf16 (:func:`cpu_has_native_bf16`), else none; on GPU bf16
    where supported, else fp16.
    """
    if amp == "auto":
        if device.type == "cpu":
            amp = "bf16" if cpu_has_native_bf16() else "none"
        else:
            amp = "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    if amp == "none":
        return contextlib.nullcontext()
    if amp == "fp16" and device.type == "cpu":
        amp = "bf16"  # fp16 autocast on CPU is slow and unscaled; bf16 is the CPU mixed precision
    dtype = torch.bfloat16 if amp == "bf16" else torch.float16
    return torch.autocast(device_type=device.type, dtype=dtype)
