"""``tracked.jsonl``: which runs and reports each tracker logged, so nothing is logged twice."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .common import RECORD
from .refs import _key


def _read_record(out: Path) -> set[tuple[str, str, str]]:
    """(tracker key, "run" or "report", run id or report fingerprint) for everything logged so far."""
    seen: set[tuple[str, str, str]] = set()
    try:
        lines = (Path(out) / RECORD).read_text().splitlines()
    except (OSError, UnicodeDecodeError):
        return seen
    for line in lines:
        try:
            entry = json.loads(line)
            kind = "run" if "run" in entry else "report"
            seen.add((str(entry["key"]), kind, str(entry[kind])))
        except (ValueError, KeyError, TypeError):
            continue  # a torn line from a killed write: that entry counts as not logged
    return seen


def _append_record(out: Path | str, ref: dict[str, Any], kind: str, value: str) -> None:
    from ..store import append_line

    line = json.dumps({"tracker": ref["name"], "key": _key(ref), kind: value})
    try:
        append_line(Path(out) / RECORD, line)
    except OSError:
        pass  # without the record, a later catch-up may log the run again; the run itself is unaffected
