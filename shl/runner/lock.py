"""One ``shl ablate`` per output directory: an exclusive lock file that names its holder."""

from __future__ import annotations

import fcntl
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from ..errors import ShlError

LOCK = ".shl.lock"


@contextmanager
def output_lock(out: Path, con=None) -> Iterator[None]:
    """One ``shl ablate`` per output directory. The lock file names its holder while held and is emptied on a
    clean exit, so a holder named at acquisition time was killed: that is said in one line."""
    out.mkdir(parents=True, exist_ok=True)
    fd = os.open(out / LOCK, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = (out / LOCK).read_text().strip() or "another process"
            raise ShlError(f"{out}: another 'shl ablate' is running on this directory ({holder})") from None
        stale = os.pread(fd, 200, 0).decode(errors="replace").strip()
        if stale and con is not None:
            con.print(f"note: took over a stale lock on {out} left by a killed 'shl ablate' ({stale})", markup=False)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()}".encode(), 0)
        try:
            yield
        finally:
            os.ftruncate(fd, 0)
    finally:
        os.close(fd)
