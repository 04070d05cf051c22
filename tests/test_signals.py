"""A dangling alternate signal stack (left by OpenVINO's CPU plugin) must not turn Ctrl-C into a segfault."""

from __future__ import annotations

import subprocess
import sys

import pytest

from rexnet._signals import repair_altstack

# In a child process: point the main thread's alternate signal stack at memory that is then unmapped (what the
# plugin leaves behind), optionally repair, then deliver SIGINT to a Python handler (installed with SA_ONSTACK).
_CHILD = """
import ctypes, mmap, os, signal, sys
from rexnet._signals import _StackT, repair_altstack
libc = ctypes.CDLL(None, use_errno=True)
size = 64 * 1024
libc.mmap.restype = ctypes.c_void_p
libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long]
addr = libc.mmap(None, size, mmap.PROT_READ | mmap.PROT_WRITE, mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS, -1, 0)
assert libc.sigaltstack(ctypes.byref(_StackT(addr, 0, size)), None) == 0
assert libc.munmap(ctypes.c_void_p(addr), ctypes.c_size_t(size)) == 0
print("repaired", repair_altstack() if sys.argv[1] == "repair" else None, flush=True)
got = []
signal.signal(signal.SIGINT, lambda s, f: got.append(s))
os.kill(os.getpid(), signal.SIGINT)
print("handled", got, flush=True)
"""

linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="sigaltstack and /proc are Linux's")


@linux_only
def test_dangling_altstack_crashes_without_repair_and_not_with_it():
    bad = subprocess.run([sys.executable, "-c", _CHILD, "none"], capture_output=True, text=True, timeout=60)
    assert bad.returncode == -11, (bad.returncode, bad.stdout, bad.stderr)  # the defect this guards against
    good = subprocess.run([sys.executable, "-c", _CHILD, "repair"], capture_output=True, text=True, timeout=60)
    assert good.returncode == 0, good.stderr
    assert "repaired True" in good.stdout and "handled [2]" in good.stdout


@linux_only
def test_a_valid_altstack_is_left_alone():
    assert repair_altstack() is False  # pytest's faulthandler stack (or none) is mapped: nothing to do
