"""One writer per run directory: the process that executes a run holds ``.shl-writer.lock`` in it (an advisory
``flock``) from before it clears the directory until the run's last file is written.

Anything else that would write, reset or read a run as finished first asks ``writer_of``: a run held by a live
process (another ``shl run``, a worker of another ablation, a Ray task) is never reset, redone or exported.
The lock dies with its process, so a killed writer never leaves a run locked.
"""

from __future__ import annotations

import errno
import fcntl
import os
import socket
import stat
from pathlib import Path

from ..errors import ShlError
from .files import is_plain_dir
from .layout import WRITER_LOCK

_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_NONBLOCK = getattr(os, "O_NONBLOCK", 0)


class RunBusy(ShlError):
    """The run directory is being written by another live process."""


def _holder(fd: int) -> str:
    text = os.pread(fd, 200, 0).decode(errors="replace").strip()
    return text or "another process"


def writer_of(directory: str | Path) -> str | None:
    """Who writes this run directory now (``pid N on HOST``), or None when no live process holds its lock."""
    d = Path(directory)
    if not is_plain_dir(d):
        return None
    try:
        fd = os.open(d / WRITER_LOCK, os.O_RDONLY | _NOFOLLOW | _CLOEXEC | _NONBLOCK)
    except OSError:
        return None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return _holder(fd)
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


class WriterLock:
    """Held by the one process that writes a run directory (``with WriterLock(dir): ...``); ``RunBusy`` (one
    line naming the holder) when another live process holds it. The directory is created if needed."""

    def __init__(self, directory: str | Path):
        self.dir = Path(directory)
        self.fd: int | None = None

    def acquire(self) -> "WriterLock":
        if self.dir.is_symlink():
            raise ShlError(f"{self.dir}: is a symbolic link; shl never follows links in its store")
        self.dir.mkdir(parents=True, exist_ok=True)
        path = self.dir / WRITER_LOCK
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | _NOFOLLOW | _CLOEXEC | _NONBLOCK, 0o666)
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise ShlError(f"{path}: is a symbolic link; shl never follows links in its store") from None
            raise
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            raise ShlError(f"{path}: is not a regular file; shl needs its lock file there (remove it)")
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _holder(fd)
            os.close(fd)
            raise RunBusy(f"{self.dir}: is being written by another live process ({holder}); "
                          "wait for it to finish") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()} on {socket.gethostname()}".encode(), 0)
        self.fd = fd
        return self

    def release(self) -> None:
        if self.fd is not None:
            try:
                os.ftruncate(self.fd, 0)
            except OSError:
                pass
            os.close(self.fd)
            self.fd = None

    def __enter__(self) -> "WriterLock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()
