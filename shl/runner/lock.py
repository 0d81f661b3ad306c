"""One ``shl ablate`` per output directory: an exclusive lock file (``.shl.lock``) that names its holder.

The lock is an advisory ``flock`` on the open file. Local worker processes receive a duplicate of the driver's
descriptor, so the lock is held as long as any process of the ablation lives: an ablation whose driver was
killed is stale only once its workers are gone too (they die with the driver on Linux; see
``executors.local_pool``). The file is opened without following links, so a link planted there never leads
shl to truncate a user's file.
"""

from __future__ import annotations

import errno
import fcntl
import os
import re
import socket
import stat
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Sequence

from ..errors import ShlError

LOCK = ".shl.lock"
WAIT_FOR_DYING_S = 10.0
"""How long a new ablation waits for the processes of a killed one (its driver gone) to exit."""
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_HOLDER = re.compile(r"^pid (?P<pid>\d+)(?: on (?P<host>[^\s;]+))?(?:; workers (?P<workers>[\d ]+))?")


class OutputLock:
    """The held lock of an output directory: ``fd`` (to share with worker processes) and ``note_workers``."""

    def __init__(self, path: Path, fd: int):
        self.path = path
        self.fd = fd
        self.workers: list[int] = []

    def _write(self) -> None:
        text = f"pid {os.getpid()} on {socket.gethostname()}"
        if self.workers:
            text += "; workers " + " ".join(map(str, self.workers))
        os.ftruncate(self.fd, 0)
        os.pwrite(self.fd, text.encode(), 0)

    def note_workers(self, pids: Sequence[int]) -> None:
        """Record the worker processes that hold the lock with this process (named if the driver is killed)."""
        self.workers = sorted({*self.workers, *map(int, pids)})
        self._write()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _holder_text(fd: int) -> str:
    return os.pread(fd, 400, 0).decode(errors="replace").strip()


def _busy_message(out: Path, text: str) -> str:
    m = _HOLDER.match(text)
    if not m:
        return f"{out}: another 'shl ablate' is running on this directory ({text or 'another process'})"
    pid = int(m.group("pid"))
    same_host = m.group("host") in (None, socket.gethostname())
    workers = [int(w) for w in (m.group("workers") or "").split()]
    if same_host and not _alive(pid):
        alive = [w for w in workers if _alive(w)] or workers
        return (f"{out}: the 'shl ablate' that held this directory (pid {pid}) was killed, but its worker processes "
                f"(pids {' '.join(map(str, alive)) or 'unknown'}) still hold it; wait for them to exit or kill them")
    return f"{out}: another 'shl ablate' is running on this directory ({text})"


def _open_lock(path: Path) -> int:
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | _NOFOLLOW | _CLOEXEC | getattr(os, "O_NONBLOCK", 0), 0o666)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise ShlError(f"{path}: is a symbolic link; shl never follows one for its lock file (remove it)") from None
        raise
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise ShlError(f"{path}: is not a regular file; shl needs its lock file there (remove it)")
    return fd


@contextmanager
def output_lock(out: Path, con=None) -> Iterator[OutputLock]:
    """Hold the output directory's lock for the block. A lock held by a live process is a one-line ShlError;
    one left by a killed ablation (its driver and workers gone) is taken over with a note. When the driver is
    dead but its workers still hold the lock, this waits up to WAIT_FOR_DYING_S seconds for them to exit."""
    out.mkdir(parents=True, exist_ok=True)
    path = out / LOCK
    fd = _open_lock(path)
    try:
        deadline = time.monotonic() + WAIT_FOR_DYING_S
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                text = _holder_text(fd)
                m = _HOLDER.match(text)
                dying = bool(m) and m.group("host") in (None, socket.gethostname()) and not _alive(int(m.group("pid")))
                if not dying or time.monotonic() > deadline:
                    raise ShlError(_busy_message(out, text)) from None
                time.sleep(0.2)
        stale = _holder_text(fd)
        if stale and con is not None:
            con.print(f"note: took over a stale lock on {out} left by a killed 'shl ablate' ({stale})", markup=False)
        lock = OutputLock(path, fd)
        lock._write()
        try:
            yield lock
        finally:
            os.ftruncate(fd, 0)
    finally:
        os.close(fd)
