"""The run store: one directory per run, plain files a researcher can open. This package owns the format.

- ``layout``: the names (files, statuses, ``runs/``, run directory names) and the format's description;
- ``files``: atomic writes, leftover temporary files, checksums, claiming a directory for shl's output;
- ``state``: ownership, integrity and status of a run directory as verified on read (``inspect_run``);
- ``run_store``: ``RunStore``, which writes and reads one run directory.

It imports no torch, so analysis can use it. Import the names from here (``from shl.store import RunStore``).
"""

from __future__ import annotations

from .ablation_record import AblationRecord, read_ablation_record
from .files import (
    append_line, atomic_write, check_claimable, claim_dir, is_plain_dir, is_plain_file, parse_json, read_bytes_nofollow, read_json_object,
    read_lines, read_text_nofollow, remove_stale_tmp, sha256_file, temp_path,
)
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
    RUN_ENTRIES,
    RUNNING,
    RUNS_DIR,
    SAMPLES,
    TERMINAL,
    TERMINAL_OK,
    TIMINGS,
    TMP_NAME,
    UNMANIFESTED,
    UNTRUSTED,
    WRITER_LOCK,
    USABLE,
    parse_run_dirname,
    run_dirname,
)
from .placement import check_out_dir, enclosing_run
from .run_store import RunStore
from .state import (
    RunState,
    count_rows,
    inspect_run,
    is_owned,
    manifest,
    marker_version,
    only_marker_tmp,
    read_meta,
    recorded_times,
    round_files,
    verify_done,
)
from .writer import RunBusy, WriterLock, writer_of

__all__ = [
    "ABSENT", "AblationRecord", "CONFIG", "CORRUPT", "DIR_MARKER", "DONE", "FAILED", "FAILED_STATUSES", "FOREIGN", "FORMAT_VERSION",
    "INCOMPLETE", "LOG", "MARKER", "META", "METRICS", "OUT_RECORD", "RUNNING", "RUNS_DIR", "RUN_ENTRIES", "RunBusy",
    "RunState", "RunStore", "SAMPLES", "TERMINAL", "TERMINAL_OK", "TIMINGS", "TMP_NAME", "UNMANIFESTED", "UNTRUSTED",
    "USABLE", "WRITER_LOCK", "WriterLock", "append_line", "atomic_write", "check_claimable", "check_out_dir", "claim_dir", "count_rows", "enclosing_run", "inspect_run",
    "is_owned", "is_plain_dir", "is_plain_file", "manifest", "marker_version", "only_marker_tmp", "parse_json",
    "parse_run_dirname", "read_ablation_record", "read_bytes_nofollow", "read_json_object", "read_lines", "read_meta", "read_text_nofollow", "recorded_times", "remove_stale_tmp", "round_files",
    "run_dirname", "sha256_file", "temp_path", "verify_done", "writer_of",
]
