"""What every part of tracking shares: the record's file name and one-line warnings."""

from __future__ import annotations

import sys
from typing import Any, Callable



RECORD = "tracked.jsonl"
"""In an ablation's output directory: one JSON line per run or report a tracker logged."""

Warn = Callable[[str], None]


def warn_stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _one_line(text: Any, limit: int = 300) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


