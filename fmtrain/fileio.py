"""Atomic file writes: a crash mid-write never leaves a half-written file behind."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from fmtrain.errors import RunDirError


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` via a temporary file in the same folder and a rename.

    Raises:
        RunDirError: the folder is full, read-only or not ours to write; the message names the
            file, the space it needs and what to do. ``path`` is left as it was.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise cannot_write(path, len(data), exc) from None
    try:
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
        finally:
            os.close(fd)
        # mkstemp creates 0600 files; give the result the permissions a plain open() would.
        os.chmod(tmp, 0o666 & ~_current_umask())
        os.replace(tmp, path)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise cannot_write(path, len(data), exc) from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def cannot_write(path: Path, size: int, exc: OSError) -> RunDirError:
    """The one-line error for a failed write of ``size`` bytes to ``path``, with the fixes that apply."""
    folder = Path(path).parent
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        free = _free_bytes(folder)
        return RunDirError(
            f"{path}: no space left to write it ({_size(size)} needed, {_size(free)} free on {folder}); "
            "free some space, keep fewer checkpoints (train.checkpoint.keep_last) "
            "or write the run elsewhere (--run-dir)"
        )
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return RunDirError(
            f"{path}: may not write it ({exc.strerror}); make {folder} writable or write the run elsewhere (--run-dir)"
        )
    return RunDirError(f"{path}: cannot write it ({exc.strerror or exc})")


def _free_bytes(folder: Path) -> int | None:
    for candidate in (folder, *folder.parents):
        try:
            return shutil.disk_usage(candidate).free
        except OSError:
            continue
    return None


def _size(n: int | None) -> str:
    if n is None:
        return "unknown"
    if n < 1024:
        return f"{n} bytes"
    exponent = min(3, (n.bit_length() - 1) // 10)
    return f"{n / 1024 ** exponent:.1f} {('KB', 'MB', 'GB')[exponent - 1]}"


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: Path, payload: Any) -> None:
    """Write ``payload`` as indented JSON to ``path`` atomically."""
    atomic_write_text(path, json.dumps(payload, indent=2, sort_keys=False, default=_jsonable) + "\n")


def _jsonable(value: Any) -> Any:
    # numpy scalars and arrays reach here from metrics; avoid importing numpy for the check.
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def sha256_of(path: Path) -> str:
    """SHA-256 of a file, or of a folder's files (their relative paths and contents, in order)."""
    path = Path(path)
    digest = hashlib.sha256()
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    for file in files:
        if file != path:
            digest.update(str(file.relative_to(path)).encode() + b"\0")
        with open(file, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()
