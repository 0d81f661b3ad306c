"""The outcome of one run: what the engine returns and what an executor hands to the runner (plain data, no
torch, picklable)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

BUSY = "busy"
"""The status of a run that was not started because another live process is writing its directory."""


@dataclass
class RunResult:
    """``status`` (complete, stopped, starved, failed, nan; ``busy`` when another live process was writing the run
    directory, so nothing was written), a one-line ``message`` (the reason, for a run that did
    not finish), the heal rounds done, the metrics rows, and for a failed run the ``traceback`` (or, where none
    exists, e.g. a worker process that died, a line saying why), which the runner writes to FAILED.json when the
    worker could not."""

    status: str
    message: str
    rounds: int = 0
    metrics: list[dict[str, Any]] = field(default_factory=list)
    traceback: str = ""
    input_error: bool = False  # failed (or busy) because of the user's input, not a fault of the run
    fault: bool = False  # failed because of the environment (disk full, read-only filesystem): message names the path
