"""Writing outputs so that a crash, a full disk or a kill never leaves a half-written file in place of a good one.

Everything is written beside its target under a temporary name and renamed over it at the end; a rename
within one directory is atomic. ``check_writable`` fails early, before hours of work, with advice.
"""

from __future__ import annotations

import errno
import os
import shutil
import uuid
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path


class OutputError(OSError):
    """The output location cannot be written; the message says what to do."""


def _advice(path: Path, err: OSError) -> str:
    if err.errno == errno.ENOSPC:
        return f"no space left while writing {path}: free disk space or choose another output_dir"
    if err.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return f"cannot write to {path} ({err.strerror}): choose a writable output_dir"
    return f"cannot write {path} ({err}): check output_dir"


def check_writable(directory: str | Path) -> Path:
    """Create ``directory`` if needed and prove that a file can be written in it."""
    directory = Path(directory)
    probe = directory / f".write-probe-{uuid.uuid4().hex}"
    try:
        directory.mkdir(parents=True, exist_ok=True)
        probe.write_bytes(b"ok")
        probe.unlink()
    except OSError as err:
        raise OutputError(err.errno, _advice(directory, err)) from err
    return directory


@contextmanager
def replacing(target: str | Path):
    """Yield a temporary path beside ``target``; on success it replaces ``target`` (file or directory)."""
    target = Path(target)
    tmp = target.with_name(f".tmp-{uuid.uuid4().hex[:8]}-{target.name}")
    try:
        yield tmp
        if tmp.is_dir() and target.is_dir():
            old = target.with_name(f".old-{uuid.uuid4().hex[:8]}-{target.name}")
            os.replace(target, old)
            os.replace(tmp, target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, target)
    except OSError as err:
        raise OutputError(err.errno, _advice(target, err)) from err
    finally:
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        elif tmp.exists():
            tmp.unlink()


def write_text(path: str | Path, text: str) -> Path:
    with replacing(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def write_with(path: str | Path, writer: Callable[[Path], object]) -> Path:
    """``writer(tmp_path)`` writes the content (e.g. ``frame.to_csv``); the result replaces ``path``."""
    with replacing(path) as tmp:
        writer(tmp)
    return Path(path)
