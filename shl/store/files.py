"""Writing and reading shl's files safely: atomic writes, leftover temporary files, checksums, JSON objects, and
claiming a directory for shl's output (never writing into a user's folder)."""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import stat
import tempfile
from pathlib import Path
from typing import Any, Iterable, Iterator

from ..errors import ShlError
from .layout import DIR_MARKER, FORMAT_VERSION, TMP_NAME, TMP_TAG

_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_FILE_MODE = 0o666 & ~_umask()


def _new_temp(path: Path) -> tuple[int, str]:
    """A new temporary file beside ``path`` (``.<name>.shl-<random>.tmp``, the only temporary names shl ever
    cleans up), open for writing, with the normal umask: (descriptor, its path)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}{TMP_TAG}", suffix=".tmp")
    os.fchmod(fd, _FILE_MODE)
    return fd, tmp


@contextlib.contextmanager
def temp_path(path: Path) -> Iterator[Path]:
    """A new, empty temporary file beside ``path`` for a writer that needs a path (``torch.save``); renamed onto
    ``path`` when the block succeeds (a symbolic link there is replaced, never followed), removed when it raises."""
    path = Path(path)
    fd, tmp = _new_temp(path)
    os.close(fd)
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def atomic_write(path: Path, text: str | bytes) -> None:
    """Write ``path`` through a temporary file in the same directory and a rename, with the normal umask. A
    symbolic link at ``path`` is replaced, never followed."""
    path = Path(path)
    fd, tmp = _new_temp(path)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(text.encode() if isinstance(text, str) else text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def append_line(path: Path, line: str) -> None:
    """Append one line to a file shl made; a symbolic link there is refused (``OSError``), never followed."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | _NOFOLLOW, 0o666)
    with os.fdopen(fd, "a") as f:
        f.write(line + "\n")


def is_plain_file(path: Path) -> bool:
    """True for a regular file that is not a symbolic link."""
    try:
        return stat.S_ISREG(os.lstat(path).st_mode)
    except OSError:
        return False


def is_plain_dir(path: Path) -> bool:
    """True for a directory that is not a symbolic link."""
    try:
        return stat.S_ISDIR(os.lstat(path).st_mode)
    except OSError:
        return False


def read_bytes_nofollow(path: Path) -> bytes:
    """The bytes of a regular file. A symbolic link, a FIFO, a device or a directory there is an ``OSError``
    (never followed, never blocked on)."""
    fd = os.open(path, os.O_RDONLY | _NOFOLLOW | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    with os.fdopen(fd, "rb") as f:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(errno.EINVAL, "not a regular file", str(path))
        return f.read()


def read_text_nofollow(path: Path) -> str:
    """The text of a regular file (UTF-8), refusing a symbolic link or any other kind of file (``OSError``)."""
    return read_bytes_nofollow(path).decode("utf-8")


def read_lines(path: Path) -> list[str]:
    """The lines of a regular file shl wrote line by line (JSONL), undecodable bytes replaced; [] when the file
    is missing or is not a regular file (a link, a FIFO...)."""
    try:
        return read_bytes_nofollow(path).decode("utf-8", errors="replace").splitlines()
    except OSError:
        return []


def parse_json(text: str) -> Any:
    """``json.loads``, with nesting too deep to parse reported as ``ValueError`` like any malformed text."""
    try:
        return json.loads(text)
    except RecursionError:
        raise ValueError("nested too deeply") from None


def remove_stale_tmp(directory: Path, targets: Iterable[str] | None = None) -> list[Path]:
    """Delete shl's leftover temporary files in one directory shl marked: regular files named
    ``.<target>.shl-<random>.tmp`` (and, with ``targets``, only for those target names). Never through a
    symbolic link, neither the directory nor a file."""
    removed: list[Path] = []
    d = Path(directory)
    if not is_plain_dir(d):
        return removed
    allowed = None if targets is None else set(targets)
    for p in d.iterdir():
        m = TMP_NAME.match(p.name)
        if m and (allowed is None or m.group("target") in allowed) and is_plain_file(p):
            p.unlink(missing_ok=True)
            removed.append(p)
    return removed


def sha256_file(path: Path) -> str:
    """The sha256 of a regular file (``OSError`` for anything else: never blocks on a FIFO)."""
    h = hashlib.sha256()
    fd = os.open(path, os.O_RDONLY | _NOFOLLOW | getattr(os, "O_NONBLOCK", 0))
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise OSError(errno.EINVAL, "not a regular file", str(path))
    with os.fdopen(fd, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def read_json_object(path: Path) -> tuple[dict[str, Any] | None, str]:
    """(object, "") or (None, reason): "missing", "unreadable (<error>)" or "not a JSON object (<type>)"."""
    try:
        obj = parse_json(read_text_nofollow(path))
    except FileNotFoundError:
        return None, "missing"
    except OSError as exc:
        if Path(path).is_symlink():
            return None, "a symbolic link (shl never follows links in its own files)"
        if exc.errno == errno.EINVAL:
            return None, "not a regular file"
        return None, f"unreadable ({type(exc).__name__})"
    except (UnicodeDecodeError, ValueError) as exc:
        return None, f"unreadable ({type(exc).__name__})"
    if not isinstance(obj, dict):
        return None, f"not a JSON object ({type(obj).__name__})"
    return obj, ""


def check_claimable(directory: Path, what: str) -> None:
    """The one-line ShlError ``claim_dir`` would raise for ``directory``, without creating anything."""
    d = Path(directory)
    if d.is_symlink():
        raise ShlError(f"{d}: is a symbolic link; shl does not follow links for {what} (move it or choose another --out)")
    if d.exists() and not d.is_dir():
        raise ShlError(f"{d}: is a file, but shl needs a directory here for {what}; move it or choose another --out")
    if d.is_dir() and not is_plain_file(d / DIR_MARKER) and any(
            p.name != DIR_MARKER and not TMP_NAME.match(p.name) for p in d.iterdir()):
        raise ShlError(
            f"{d}: exists and was not made by shl (no {DIR_MARKER}); refusing to write {what} into it "
            "(move it or choose another --out)"
        )


def claim_dir(directory: Path, what: str) -> None:
    """Make ``directory`` shl's (a marker file inside), or confirm it already is. A non-empty directory shl
    did not make is refused with one line: shl never writes into a user's folder of the same name."""
    d = Path(directory)
    if d.is_symlink():
        raise ShlError(f"{d}: is a symbolic link; shl does not follow links for {what} (move it or choose another --out)")
    if d.exists() and not d.is_dir():
        raise ShlError(f"{d}: is a file, but shl needs a directory here for {what}; move it or choose another --out")
    if d.is_dir() and is_plain_file(d / DIR_MARKER):
        remove_stale_tmp(d, targets={DIR_MARKER})  # a marker write a kill interrupted before the marker existed
        return
    if d.is_dir() and any(p.name != DIR_MARKER and not TMP_NAME.match(p.name) for p in d.iterdir()):
        raise ShlError(
            f"{d}: exists and was not made by shl (no {DIR_MARKER}); refusing to write {what} into it "
            "(move it or choose another --out)"
        )
    d.mkdir(parents=True, exist_ok=True)
    atomic_write(d / DIR_MARKER, f"shl {what} (format {FORMAT_VERSION}); shl may write and replace files here\n")
    remove_stale_tmp(d, targets={DIR_MARKER})
