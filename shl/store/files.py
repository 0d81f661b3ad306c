"""Writing and reading shl's files safely: atomic writes, leftover temporary files, checksums, JSON objects, and
claiming a directory for shl's output (never writing into a user's folder)."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

from ..errors import ShlError
from .layout import DIR_MARKER, FORMAT_VERSION, TMP_NAME


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_FILE_MODE = 0o666 & ~_umask()


def atomic_write(path: Path, text: str | bytes) -> None:
    """Write ``path`` through a temporary file in the same directory and a rename, with the normal umask."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, _FILE_MODE)
        with os.fdopen(fd, "wb") as f:
            f.write(text.encode() if isinstance(text, str) else text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def remove_stale_tmp(directory: Path) -> list[Path]:
    """Delete shl's leftover temporary files (``.<name>.<random>.tmp``) in one directory shl owns."""
    removed = []
    if not Path(directory).is_dir():
        return removed
    for p in Path(directory).iterdir():
        if TMP_NAME.match(p.name) and p.is_file():
            p.unlink(missing_ok=True)
            removed.append(p)
    return removed


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def read_json_object(path: Path) -> tuple[dict[str, Any] | None, str]:
    """(object, "") or (None, reason): "missing", "unreadable (<error>)" or "not a JSON object (<type>)"."""
    try:
        obj = json.loads(path.read_text())
    except FileNotFoundError:
        return None, "missing"
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        return None, f"unreadable ({type(exc).__name__})"
    if not isinstance(obj, dict):
        return None, f"not a JSON object ({type(obj).__name__})"
    return obj, ""


def claim_dir(directory: Path, what: str) -> None:
    """Make ``directory`` shl's (a marker file inside), or confirm it already is. A non-empty directory shl
    did not make is refused with one line: shl never writes into a user's folder of the same name."""
    d = Path(directory)
    if d.exists() and not d.is_dir():
        raise ShlError(f"{d}: is a file, but shl needs a directory here for {what}; move it or choose another --out")
    if d.is_dir() and (d / DIR_MARKER).is_file():
        return
    if d.is_dir() and any(p.name != DIR_MARKER and not TMP_NAME.match(p.name) for p in d.iterdir()):
        raise ShlError(
            f"{d}: exists and was not made by shl (no {DIR_MARKER}); refusing to write {what} into it "
            "(move it or choose another --out)"
        )
    d.mkdir(parents=True, exist_ok=True)
    atomic_write(d / DIR_MARKER, f"shl {what} (format {FORMAT_VERSION}); shl may write and replace files here\n")
