"""Progress a person can see, on a terminal or in a log: the running stage of a run and how far it is.

On a terminal the text replaces itself in place (a rich status line or progress bar field). Anywhere else (a
file, a pipe, a CI log) it becomes plain lines, at most one every ``every_s`` seconds, each with the seconds
since the start, so a long stage shows up without flooding the log (``SHL_PROGRESS_EVERY`` sets the interval)."""

from __future__ import annotations

import os
import time
from typing import Callable


def default_every() -> float:
    """``SHL_PROGRESS_EVERY``: seconds between progress lines off a terminal (default 5; 0 = every update)."""
    try:
        value = float(os.environ.get("SHL_PROGRESS_EVERY", "5"))
    except ValueError:
        return 5.0
    return value if value >= 0 else 5.0


class ProgressLines:
    """``update(text)``: show ``text`` live (``live``, on a terminal) or print it as a line when ``every_s``
    seconds have passed since the last printed line (``print_line``, elsewhere)."""

    def __init__(self, terminal: bool, live: Callable[[str], None], print_line: Callable[[str], None],
                 every_s: float | None = None):
        self.terminal = terminal
        self.live = live
        self.print_line = print_line
        self.every_s = default_every() if every_s is None else every_s
        self.t0 = time.monotonic()
        self.last = -float("inf")

    def update(self, text: str) -> None:
        if self.terminal:
            self.live(text)
            return
        now = time.monotonic()
        if now - self.last >= self.every_s:
            self.last = now
            self.print_line(f"[{now - self.t0:6.0f}s] {text}")
