"""The one output policy: every file rexnet writes goes through :func:`atomic_write` (or its variants).

Two rules, the same for every writer (training, detection, rank study, search, export, convert,
bench, eval ``-o``, predict ``-o``):

* **Atomic.** A file appears complete or not at all: it is written to a temp file in the same
  folder (an unnamed ``O_TMPFILE`` one where Linux allows, so even ``kill -9`` leaves nothing),
  fsynced, then renamed over the target. Files a library must write by path (ONNX, OpenVINO's
  ``.xml``/``.bin`` pair, TorchScript) are written to temp names and renamed together.
* **Nothing finished is replaced without being asked.** A path that exists may be replaced only if
  this process wrote it, or it lies in a run folder this process holds (:func:`hold_folder`, taken
  by the run machinery with the run lock), or the caller passes ``overwrite=True``
  (``--overwrite``). Otherwise :class:`~rexnet.errors.OutputExistsError` names the path.

Special files (FIFOs, devices, sockets) are refused as inputs and outputs: reading one can block
forever.

Example:
    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> _ = atomic_write(d / "a.txt", "one")
    >>> _ = atomic_write(d / "a.txt", "two")  # written by this process: may be replaced
    >>> forget_written(d / "a.txt")           # as if another run had written it
    >>> atomic_write(d / "a.txt", "three")
    Traceback (most recent call last):
    ...
    rexnet.errors.OutputExistsError: ... already exists and was not written by this run; pass --overwrite to replace it
"""

from __future__ import annotations

import contextlib
import csv
import glob
import io
import json
import math
import os
import stat
import tempfile
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, BinaryIO

from .errors import InputError, OutputExistsError

__all__ = [
    "atomic_write",
    "atomic_write_paths",
    "write_json",
    "write_csv",
    "write_figure",
    "dumps_json",
    "check_output",
    "nearest_folder",
    "check_regular_file",
    "hold_folder",
    "release_folder",
    "mark_written",
    "forget_written",
]

_written: set[str] = set()  # real paths this process wrote
_held: set[str] = set()  # run folders this process holds (under the run lock)


def _real(path: Path) -> str:
    return os.path.realpath(path)


def mark_written(path: str | os.PathLike) -> None:
    """Record that this process wrote ``path`` (so it may replace it again)."""
    _written.add(_real(Path(path)))


def forget_written(path: str | os.PathLike) -> None:
    """Forget that this process wrote ``path`` (tests use it to play another run)."""
    _written.discard(_real(Path(path)))


def hold_folder(folder: str | os.PathLike) -> None:
    """Declare ``folder`` a run folder this process owns: files in it may be replaced (call with the lock held)."""
    _held.add(_real(Path(folder)))


def release_folder(folder: str | os.PathLike) -> None:
    """Undo :func:`hold_folder`."""
    _held.discard(_real(Path(folder)))


def _in_held_folder(real: str) -> bool:
    return any(real == d or real.startswith(d + os.sep) for d in _held)


def check_regular_file(path: str | os.PathLike, what: str = "file") -> Path:
    """``path`` if it is a regular file (or a link to one); FIFOs, devices, sockets and folders are refused.

    Raises:
        InputError: Missing, a folder, or a special file (the message names which).
    """
    p = Path(path)
    try:
        mode = p.stat().st_mode
    except FileNotFoundError:
        raise InputError(f"{what} not found: {p}") from None
    except OSError as e:
        raise InputError(f"cannot read {what} {p}: {e.strerror or e}") from None
    if stat.S_ISDIR(mode):
        raise InputError(f"{what} {p} is a folder, not a file")
    if not stat.S_ISREG(mode):
        kind = "FIFO" if stat.S_ISFIFO(mode) else "socket" if stat.S_ISSOCK(mode) else "device"
        raise InputError(f"{what} {p} is a {kind}, not a regular file; refusing to read it (it could block forever)")
    return p


def check_output(path: str | os.PathLike, *, overwrite: bool = False, what: str = "output") -> Path:
    """Check that ``path`` may be written under the output policy (nothing is created: checks come before work).

    Raises:
        OutputExistsError: ``path`` exists, was not written by this process, is not in a run folder
            this process holds, and ``overwrite`` is false.
        InputError: ``path`` is a folder or a special file, or its parent is a file.
    """
    p = Path(path)
    if p.is_dir():
        raise InputError(f"{what} {p} is a folder; give a file path")
    if p.exists() or p.is_symlink():
        mode = p.lstat().st_mode
        if not (stat.S_ISREG(mode) or stat.S_ISLNK(mode)):
            raise InputError(f"{what} {p} is a special file; refusing to write over it")
        real = _real(p)
        if not overwrite and real not in _written and not _in_held_folder(real):
            raise OutputExistsError(
                f"{what} {p} already exists and was not written by this run; pass --overwrite to replace it"
            )
    nearest_folder(p)
    return p


def nearest_folder(path: str | os.PathLike) -> Path:
    """The nearest existing folder above ``path`` (where its missing folders would be created).

    Raises:
        InputError: Something on the way is a file, not a folder.
    """
    p = Path(path)
    for parent in [p.parent, *p.parent.parents]:
        if parent.exists():
            if not parent.is_dir():
                raise InputError(f"cannot write {p}: {parent} is a file, not a folder")
            return parent
    return Path(".")


def _mode() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask  # the result follows the umask like any other file (temp files start at 0600)


def _tmp_name(path: Path, suffix: str = "") -> Path:
    return path.parent / f".{path.name}.{os.getpid()}.{os.urandom(4).hex()}.tmp{suffix}"


def atomic_write(
    path: str | os.PathLike,
    data: bytes | str | Callable[[BinaryIO], Any],
    *,
    overwrite: bool = False,
    what: str = "output",
) -> Path:
    """Write ``path`` all or nothing, under the output policy.

    Args:
        path: The file to write.
        data: Its bytes, its text (UTF-8), or ``write(f)`` filling a binary file object.
        overwrite: Replace a file this run did not write.
        what: How error messages call the file.

    Raises:
        OutputExistsError: See :func:`check_output`.
    """
    p = check_output(path, overwrite=overwrite, what=what)
    p.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    write = (lambda f: f.write(data)) if isinstance(data, bytes) else data
    _remove_orphans(p)
    mode = _mode()
    if not _write_unnamed(p, write, mode):
        fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.{os.getpid()}.", suffix=".tmp", dir=p.parent)
        try:
            with os.fdopen(fd, "wb") as f:
                write(f)
                f.flush()
                os.fchmod(f.fileno(), mode)
                os.fsync(f.fileno())
            os.replace(tmp, p)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    _fsync_dir(p.parent)
    mark_written(p)
    return p


def atomic_write_paths(
    paths: Mapping[str, str | os.PathLike] | str | os.PathLike,
    write_to: Callable[..., Any],
    *,
    overwrite: bool = False,
    what: str = "output",
) -> None:
    """Write files a library writes *by path* (ONNX, OpenVINO ``.xml``/``.bin``, TorchScript) atomically.

    ``write_to`` receives temp paths in the targets' folders (keeping each target's suffix) and
    writes them; they are then fsynced and renamed over the targets, the last-named target last
    (name the file readers open first, e.g. the ``.xml``, last). On any error the temp files go.

    Args:
        paths: One target path, or ``{role: target}``; ``write_to`` gets a path, or ``{role: temp}``.
        write_to: The library call.
    """
    single = not isinstance(paths, Mapping)
    targets = {"": paths} if single else dict(paths)  # type: ignore[dict-item]
    final = {k: check_output(v, overwrite=overwrite, what=what) for k, v in targets.items()}
    for p in final.values():
        p.parent.mkdir(parents=True, exist_ok=True)
    for p in final.values():
        _remove_orphans(p)  # temp files a killed writer of the same target left behind
    temps = {k: _tmp_name(p, p.suffix) for k, p in final.items()}
    try:
        write_to(temps[""] if single else dict(temps))
        for k, tmp in temps.items():
            if not tmp.is_file():
                raise InputError(f"the writer of {final[k]} produced no file")
            with open(tmp, "rb+") as f:
                os.fchmod(f.fileno(), _mode())
                os.fsync(f.fileno())
        for k in temps:
            os.replace(temps[k], final[k])
            mark_written(final[k])
        for d in {p.parent for p in final.values()}:
            _fsync_dir(d)
    finally:
        for tmp in temps.values():
            tmp.unlink(missing_ok=True)
            for extra in tmp.parent.glob(glob.escape(tmp.stem) + ".*"):  # side files a library adds (e.g. .bin)
                extra.unlink(missing_ok=True)


def _finite(obj: Any, where: str = "") -> None:
    if isinstance(obj, float) and not math.isfinite(obj):
        raise ValueError(f"non-finite number {obj} at {where or 'top level'}")
    if isinstance(obj, Mapping):
        for k, v in obj.items():
            _finite(v, f"{where}.{k}" if where else str(k))
    elif isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            _finite(v, f"{where}[{i}]")


def dumps_json(obj: Any, *, nonfinite: str = "null", indent: int | None = 2) -> str:
    """Strict JSON text (no bare ``NaN``/``Infinity``): non-finite floats become ``null`` (or raise).

    Args:
        nonfinite: ``"null"`` writes them as ``null``; ``"error"`` raises ``ValueError`` naming where.
        indent: As in :func:`json.dumps`; ``None`` gives one line (a JSON-lines record).

    Example:
        >>> dumps_json({"a": float("nan"), "b": [1.0, float("inf")]}, nonfinite="null").replace("\\n", "")
        '{  "a": null,  "b": [    1.0,    null  ]}'
    """
    if nonfinite == "error":
        _finite(obj)
    return json.dumps(_nulls(obj), indent=indent, default=str, allow_nan=False) + "\n"


def _nulls(obj: Any) -> Any:
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, Mapping):
        return {k: _nulls(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_nulls(v) for v in obj]
    return obj


def write_json(obj: Any, path: str | os.PathLike, *, overwrite: bool = False, what: str = "output") -> Path:
    """Write strict JSON atomically under the output policy (non-finite floats as ``null``)."""
    return atomic_write(path, dumps_json(obj), overwrite=overwrite, what=what)


def write_csv(
    rows: Iterable[Sequence[Any]], path: str | os.PathLike, *, overwrite: bool = False, what: str = "output"
) -> Path:
    """Write CSV rows (the header first) atomically under the output policy."""
    buf = io.StringIO(newline="")
    csv.writer(buf).writerows(rows)
    return atomic_write(path, buf.getvalue(), overwrite=overwrite, what=what)


#: The formats :func:`write_figure` takes from a path's suffix (others are written as PNG).
FIGURE_FORMATS = ("png", "pdf", "svg", "jpg", "jpeg")


def write_figure(
    fig: Any, path: str | os.PathLike, *, overwrite: bool = False, what: str = "figure", dpi: int = 100
) -> Path:
    """Draw a matplotlib figure in memory and write it atomically under the output policy.

    The format follows the suffix (:data:`FIGURE_FORMATS`, else PNG); matplotlib is not imported here.
    """
    fmt = Path(path).suffix.lstrip(".").lower()
    buf = io.BytesIO()
    fig.savefig(buf, format=fmt if fmt in FIGURE_FORMATS else "png", dpi=dpi)
    return atomic_write(path, buf.getvalue(), overwrite=overwrite, what=what)


def _fsync_dir(folder: Path) -> None:
    with contextlib.suppress(OSError):  # some file systems cannot fsync a directory
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


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
    """Delete temp files a killed writer of ``path`` left behind (named ``.NAME.PID.*.tmp*``, PID not running)."""
    for tmp in path.parent.glob(f".{glob.escape(path.name)}.*.tmp*"):
        pid = tmp.name[len(path.name) + 2 :].split(".", 1)[0]
        if not pid.isdigit():
            continue
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            tmp.unlink(missing_ok=True)
        except PermissionError:
            pass


@contextlib.contextmanager
def held_folder(folder: str | os.PathLike) -> Iterator[Path]:
    """``with held_folder(run):`` - :func:`hold_folder` for the block's duration."""
    hold_folder(folder)
    try:
        yield Path(folder)
    finally:
        release_folder(folder)
