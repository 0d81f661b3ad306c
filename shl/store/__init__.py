"""The run store: one directory per run, plain files a researcher can open. This package owns the format.

- ``layout``: the names (files, statuses, ``runs/``, run directory names) and the format's description;
- ``files``: atomic writes, leftover temporary files, checksums, claiming a directory for shl's output;
- ``state``: ownership, integrity and status of a run directory as verified on read (``inspect_run``);
- ``run_store``: ``RunStore``, which writes and reads one run directory.

It imports no torch, so analysis can use it. Import the names from here (``from shl.store import RunStore``).
"""

from __future__ import annotations

from .files import atomic_write, claim_dir, read_json_object, remove_stale_tmp, sha256_file
from .layout import (
    ABSENT,
    CONFIG,
    CORRUPT,
    DIR_MARKER,
    DONE,
    FAILED,
    FAILED_STATUSES,
    FOREIGN,
    FORMAT_VERSION,
    INCOMPLETE,
    LOG,
    MARKER,
    META,
    METRICS,
    OUT_RECORD,
    RUNS_DIR,
    SAMPLES,
    TERMINAL,
    TERMINAL_OK,
    TIMINGS,
    TMP_NAME,
    UNMANIFESTED,
    UNTRUSTED,
    USABLE,
    parse_run_dirname,
    run_dirname,
)
from .run_store import RunStore
from .state import (
    RunState,
    count_rows,
    inspect_run,
    is_owned,
    manifest,
    only_marker_tmp,
    read_meta,
    recorded_times,
    verify_done,
)

__all__ = [
    "ABSENT", "CONFIG", "CORRUPT", "DIR_MARKER", "DONE", "FAILED", "FAILED_STATUSES", "FOREIGN", "FORMAT_VERSION",
    "INCOMPLETE", "LOG", "MARKER", "META", "METRICS", "OUT_RECORD", "RUNS_DIR", "RunState", "RunStore", "SAMPLES",
    "TERMINAL", "TERMINAL_OK", "TIMINGS", "TMP_NAME", "UNMANIFESTED", "UNTRUSTED", "USABLE", "atomic_write",
    "claim_dir", "count_rows", "inspect_run", "is_owned", "manifest", "only_marker_tmp", "parse_run_dirname",
    "read_json_object", "read_meta", "recorded_times", "remove_stale_tmp", "run_dirname", "sha256_file",
    "verify_done",
]
