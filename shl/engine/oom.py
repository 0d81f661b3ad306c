"""CUDA out-of-memory errors as one line naming the config knob to lower (never an OOM traceback).

``oom_as_run_error()`` wraps a run: a ``torch.OutOfMemoryError`` becomes a ``RunError`` (status ``failed``) whose
message names the knob of the stage that ran out of memory, found from the engine module the error came from
(evaluation before generation: the evaluators generate with ``eval.batch_size``).
"""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from ..errors import RunError

# engine module -> (stage, knob); the first module found in the traceback, in this order, names the knob
KNOBS: tuple[tuple[str, str, str], ...] = (
    ("heal.py", "heal", "heal.batch_size (or heal.chunk_positions; or set heal.gradient_checkpointing: true)"),
    ("evaluate.py", "evaluation", "eval.batch_size"),
    ("extract.py", "extraction", "steer.batch_size"),
    ("filtering.py", "filtering (scoring)", "generate.batch_size (the filters' scorer batch size)"),
    ("generate.py", "generation", "generate.batch_size"),
    ("dose.py", "dose probing", "generate.batch_size"),
    ("scoring.py", "scoring", "generate.batch_size / eval.batch_size"),
)
FALLBACK = "generate.batch_size, eval.batch_size or heal.batch_size"


def knob_for(exc: BaseException) -> tuple[str, str]:
    """(stage, knob) for an out-of-memory error, from the engine modules in its traceback."""
    files: list[str] = []
    tb = exc.__traceback__
    while tb is not None:
        path = Path(tb.tb_frame.f_code.co_filename)
        if path.parent.name == "engine":
            files.append(path.name)
        tb = tb.tb_next
    for name, stage, knob in KNOBS:
        if name in files:
            return stage, knob
    return "run", FALLBACK


def oom_message(exc: BaseException) -> str:
    stage, knob = knob_for(exc)
    return f"{stage}: CUDA out of memory; lower {knob}"


@contextmanager
def oom_as_run_error() -> Iterator[None]:
    import torch

    try:
        yield
    except torch.OutOfMemoryError as exc:
        message = oom_message(exc)
        del exc
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        raise RunError(message, status="failed") from None
