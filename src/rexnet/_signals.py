"""Keep signal delivery safe after native libraries have swapped the alternate signal stack.

OpenVINO's CPU plugin (2026.4) installs its own alternate signal stack (``sigaltstack``) on the
thread that runs an inference, and puts the previous one back when the compiled model is freed.
With two models freed out of order, the thread is left pointing at a stack that has already been
unmapped. Python installs its handlers with ``SA_ONSTACK``, so the next SIGINT or SIGTERM (Ctrl-C)
makes the kernel kill the process with SIGSEGV while it tries to build the signal frame, instead of
running the handler. :func:`repair_altstack` disables a dangling alternate stack; the handlers then
run on the normal stack.
"""

from __future__ import annotations

import ctypes
import logging
import sys

__all__ = ["repair_altstack"]

_log = logging.getLogger(__name__)
_SS_DISABLE = 2


class _StackT(ctypes.Structure):
    _fields_ = [("ss_sp", ctypes.c_void_p), ("ss_flags", ctypes.c_int), ("ss_size", ctypes.c_size_t)]


def _mapped_writable(addr: int, size: int) -> bool:
    with open("/proc/self/maps") as f:
        for line in f:
            fields = line.split()
            lo, hi = (int(x, 16) for x in fields[0].split("-"))
            if lo <= addr and addr + size <= hi:
                return fields[1].startswith("rw")
    return False


def repair_altstack() -> bool:
    """Disable the calling thread's alternate signal stack if its memory is no longer mapped.

    Returns:
        True when a dangling stack was found and disabled; False otherwise (also on systems
        without ``/proc`` or ``sigaltstack``, where it does nothing).
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        current = _StackT()
        if libc.sigaltstack(None, ctypes.byref(current)) != 0 or not current.ss_sp or current.ss_flags & _SS_DISABLE:
            return False
        if _mapped_writable(int(current.ss_sp), int(current.ss_size)):
            return False
        off = _StackT(None, _SS_DISABLE, 0)
        if libc.sigaltstack(ctypes.byref(off), None) != 0:
            return False
    except (OSError, AttributeError):
        return False
    _log.debug("disabled a dangling alternate signal stack at %#x", current.ss_sp)
    return True
