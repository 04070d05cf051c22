"""Reading and writing weights safely: ``.safetensors`` or weights-only ``.pth``, never plain pickle."""

from __future__ import annotations

import glob
import json
import os
import pickle
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

import torch

from ..errors import CheckpointError

__all__ = ["read_state_dict", "safe_torch_load", "write_safetensors", "atomic_torch_save", "unwrap_state_dict"]

_CONTAINER_KEYS = ("state_dict", "model", "model_state", "state_dict_ema", "model_ema", "module")


def unwrap_state_dict(obj: Any) -> dict[str, torch.Tensor]:
    """Find the tensor dict inside common checkpoint containers and strip a DDP ``module.`` prefix."""
    if isinstance(obj, dict) and not any(isinstance(v, torch.Tensor) for v in obj.values()):
        for key in _CONTAINER_KEYS:
            if isinstance(obj.get(key), dict):
                return unwrap_state_dict(obj[key])
        raise CheckpointError(f"no state dict found in checkpoint; top-level keys: {sorted(map(str, obj))[:10]}")
    if not isinstance(obj, dict):
        raise CheckpointError(f"checkpoint holds a {type(obj).__name__}, not a state dict")
    sd = {k: v for k, v in obj.items() if isinstance(v, torch.Tensor)}
    if sd and all(k.startswith("module.") for k in sd):
        sd = {k[len("module.") :]: v for k, v in sd.items()}
    return sd


def read_state_dict(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Load a state dict from ``.safetensors`` or ``.pth``/``.pt`` without executing code.

    ``.pth`` files are read with ``torch.load(weights_only=True)``: a pickle that would
    construct arbitrary objects is refused.

    Returns:
        The tensors and the file's string metadata (empty for ``.pth``).

    Raises:
        CheckpointError: Missing, truncated, corrupt or unsafe file.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    if path.suffix == ".safetensors":
        from safetensors import safe_open

        try:
            with safe_open(str(path), framework="pt") as f:
                meta = dict(f.metadata() or {})
                return {k: f.get_tensor(k) for k in f.keys()}, meta
        except Exception as e:  # safetensors raises its own error types for corrupt headers
            raise CheckpointError(f"cannot read {path}: not a valid safetensors file ({e})") from e
    return unwrap_state_dict(safe_torch_load(path)), {}


def safe_torch_load(path: str | os.PathLike, *, mmap: bool = False) -> Any:
    """``torch.load(weights_only=True)`` on CPU, with every failure as a clear :class:`CheckpointError`.

    The one place rexnet calls ``torch.load``. ``mmap=True`` maps the tensors instead of reading
    them (cheap when only a few fields are looked at).

    Raises:
        CheckpointError: Missing, truncated or corrupt file, or a pickle that would execute code.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(9)
    if not head.startswith((b"PK\x03\x04", b"\x80")):  # torch.save's zip, or a legacy pickle
        what = "an empty file" if not size else f"{size:,} bytes that are neither torch.save's zip format nor a pickle"
        if head[8:9] == b"{":
            what += "; it looks like safetensors: name it .safetensors"
        raise CheckpointError(f"cannot read {path}: not a PyTorch checkpoint ({what})")
    try:
        return torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
    except pickle.UnpicklingError as e:
        # torch's message suggests weights_only=False; that is exactly what must not be done with an unknown file
        detail = next((ln.strip() for ln in str(e).splitlines() if "WeightsUnpickler error" in ln), "")
        raise CheckpointError(
            f"refused to load {path}: it is not a weights-only checkpoint (loading it would execute code, or it "
            f"is corrupt){'. Detail: ' + detail if detail else ''}"
        ) from e
    except (RuntimeError, EOFError, OSError, ValueError) as e:
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise CheckpointError(f"cannot read {path} ({size:,} bytes): truncated or corrupt checkpoint ({first})") from e


def _atomic_write(path: Path, write: Callable[[BinaryIO], Any]) -> None:
    """Write ``path`` all or nothing: ``write(f)`` fills a binary file that replaces ``path`` once complete."""
    path.parent.mkdir(parents=True, exist_ok=True)
    _remove_orphans(path)
    mask = os.umask(0)
    os.umask(mask)
    mode = 0o666 & ~mask  # the result follows the umask like any other file (temp files start at 0600)
    if _write_unnamed(path, write, mode):
        return
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{os.getpid()}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fchmod(f.fileno(), mode)
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _write_unnamed(path: Path, write: Callable[[BinaryIO], Any], mode: int) -> bool:
    """Write into an unnamed file (Linux ``O_TMPFILE``) and give it a name only once it is complete.

    A writer killed with SIGKILL then leaves nothing behind: the kernel frees an unnamed file when
    its last descriptor closes. The finished file is linked under a temp name and renamed over
    ``path`` (a link cannot replace). Returns False where ``O_TMPFILE`` is not supported (other
    systems, some file systems), and the caller falls back to a named temp file.
    """
    flag = getattr(os, "O_TMPFILE", 0)
    if not flag:
        return False
    try:
        fd = os.open(path.parent, flag | os.O_WRONLY, mode)
    except OSError:
        return False
    tmp = None
    with os.fdopen(fd, "wb") as f:
        try:
            write(f)
            f.flush()
            os.fchmod(fd, mode)
            os.fsync(fd)
            tmp = path.parent / f".{path.name}.{os.getpid()}.{os.urandom(4).hex()}.tmp"
            # linkat(AT_SYMLINK_FOLLOW) names the file behind the descriptor; CPython calls linkat (not link,
            # which would try to link the /proc symlink itself) only when a directory descriptor is given
            root = os.open("/", os.O_RDONLY)
            try:
                os.link(f"/proc/self/fd/{fd}", tmp, src_dir_fd=root, follow_symlinks=True)
            except OSError:  # no /proc, or a file system that refuses: write it again through a named file
                tmp = None
                return False
            finally:
                os.close(root)
            os.replace(tmp, path)
            return True
        except BaseException:
            if tmp is not None:
                tmp.unlink(missing_ok=True)
            raise


def _remove_orphans(path: Path) -> None:
    """Delete temp files a killed writer of ``path`` left behind (named ``.NAME.PID.*.tmp``, PID not running)."""
    for tmp in path.parent.glob(f".{glob.escape(path.name)}.*.tmp"):
        pid = tmp.name[len(path.name) + 2 :].split(".", 1)[0]
        if not pid.isdigit():
            continue
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            tmp.unlink(missing_ok=True)
        except PermissionError:
            pass


def write_safetensors(
    state_dict: dict[str, torch.Tensor], path: str | os.PathLike, metadata: dict[str, Any] | None = None
) -> Path:
    """Write tensors to ``path`` atomically (temp file + rename); metadata values are JSON-encoded."""
    from safetensors.torch import save as save_safetensors

    path = Path(path)
    tensors = {k: v.detach().contiguous().cpu() for k, v in state_dict.items()}
    meta = {k: v if isinstance(v, str) else json.dumps(v) for k, v in (metadata or {}).items()}
    _atomic_write(path, lambda f: f.write(save_safetensors(tensors, metadata=meta)))
    return path


def atomic_torch_save(obj: Any, path: str | os.PathLike) -> Path:
    """``torch.save`` to a temp file then rename, so a crash never leaves a partial file."""
    path = Path(path)
    _atomic_write(path, lambda f: torch.save(obj, f))
    return path
