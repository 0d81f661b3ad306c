"""How far the running stage is: the engine's long loops (generation batches and tokens, dose probes, scoring
batches, heal steps with their loss) report ``tick(...)`` here; the run that is executing decides where the text
goes (``reporting``). Nothing here touches a stored result: progress is for people watching, never for files
covered by the determinism promise."""

from __future__ import annotations

from contextlib import contextmanager
from contextvars import ContextVar
from typing import Callable, Iterator

_sink: ContextVar[Callable[[str], None] | None] = ContextVar("shl_progress_sink", default=None)


@contextmanager
def reporting(sink: Callable[[str], None]) -> Iterator[None]:
    """Send the ``tick`` texts of the engine code run inside the block to ``sink``."""
    token = _sink.set(sink)
    try:
        yield
    finally:
        _sink.reset(token)


def active() -> bool:
    """Whether anyone listens (so loops can skip formatting text nobody reads)."""
    return _sink.get() is not None


def tick(text: str) -> None:
    """Report where the running stage is, e.g. ``generation batch 2/4, token 16/48``."""
    sink = _sink.get()
    if sink is not None:
        sink(text)
