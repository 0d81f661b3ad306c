"""Where shl may put an output directory: never inside a run directory (redoing that run deletes it whole), and
an ablation never in a run directory, nor a run in an ablation's output directory."""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import ShlError
from .layout import DIR_MARKER, MARKER, OUT_RECORD, RUNS_DIR


def enclosing_run(path: str | Path) -> Path | None:
    """The nearest proper ancestor of ``path`` (links resolved) that is a run directory (holds SHL_RUN.json), or
    None."""
    real = Path(os.path.realpath(path))
    for parent in real.parents:
        if os.path.lexists(parent / MARKER):
            return parent
    return None


def check_out_dir(out: str | Path, kind: str) -> None:
    """A one-line ShlError when ``out`` cannot hold a ``kind`` ("run", "ablation" or "export") output: inside a
    run directory; for an ablation, a run directory itself; for a run, an ablation's output directory."""
    out = Path(out)
    run = enclosing_run(out)
    if run is not None:
        raise ShlError(f"--out {out}: is inside the run directory {run}; shl deletes a run directory whole when it "
                       "redoes the run, so nothing else may live in it (choose another --out)")
    if kind == "ablation" and os.path.lexists(out / MARKER):
        raise ShlError(f"--out {out}: is a run directory (it holds {MARKER}); an ablation needs a directory of its "
                       "own (choose another --out)")
    if kind == "run" and (os.path.lexists(out / OUT_RECORD) or os.path.lexists(out / RUNS_DIR / DIR_MARKER)):
        raise ShlError(f"--out {out}: is an ablation's output directory; a run needs a directory of its own "
                       "(choose another --out)")
