"""What a run directory holds, verified on read: ownership, the integrity of a finished run, and its status.

Ownership: shl deletes or overwrites a directory only when SHL_RUN.json says shl made it. A directory that
holds only the marker's temporary file (a kill between ``mkdir`` and the marker's rename) is also shl's.

Integrity: a run counts as finished only when DONE.json parses and every file in its manifest is present with
the recorded size and checksum; otherwise it is ``corrupt`` (never silently used, never silently redone).

Statuses (``inspect_run(dir).status``): complete | stopped | starved (finished; see TERMINAL), failed | nan
(FAILED.json), corrupt (a finished run that fails verification), incomplete (ours, killed before a marker),
foreign (a directory shl did not write), absent.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .files import read_json_object, sha256_file
from .layout import (
    ABSENT, CONFIG, CORRUPT, DONE, FAILED, FAILED_STATUSES, FOREIGN, FORMAT_VERSION, INCOMPLETE, MARKER, META,
    METRICS, TERMINAL, TMP_NAME, UNMANIFESTED,
)


def is_owned(directory: Path) -> bool:
    """True when shl made this directory: its marker parses and names shl's run format."""
    marker, _ = read_json_object(Path(directory) / MARKER)
    return bool(marker) and marker.get("format") == "shl-run" and isinstance(marker.get("version"), int)


def only_marker_tmp(directory: Path) -> bool:
    """True when the directory holds nothing but the marker's temporary file(s): shl's, killed before the rename."""
    names = [p.name for p in directory.iterdir()]
    return bool(names) and all(n.startswith(f".{MARKER}.") and n.endswith(".tmp") for n in names)


@dataclass(frozen=True)
class RunState:
    """What a run directory holds, as verified on read: ``status`` (see the module docstring) and ``reason``
    (why a run is corrupt, failed or foreign; the message of a finished run)."""

    status: str
    reason: str = ""
    done: dict[str, Any] | None = None


def manifest(directory: Path) -> dict[str, dict[str, Any]]:
    """Size and sha256 of every file under ``directory`` except log.txt, the end markers and temporary files."""
    out = {}
    for p in sorted(Path(directory).rglob("*")):
        rel = p.relative_to(directory).as_posix()
        if p.is_file() and rel not in UNMANIFESTED and not TMP_NAME.match(p.name):
            out[rel] = {"size": p.stat().st_size, "sha256": sha256_file(p)}
    return out


def count_rows(path: Path) -> int:
    return sum(1 for line in Path(path).read_text().splitlines() if line.strip())


def verify_done(directory: Path, done: dict[str, Any]) -> str:
    """"" when the finished run is intact, else the first problem found (one short phrase)."""
    if done.get("version") != FORMAT_VERSION or not isinstance(done.get("manifest"), dict):
        return f"{DONE} has no integrity record (written by another shl version)"
    if done.get("status") not in TERMINAL:
        return f"{DONE} has an unknown status {done.get('status')!r}"
    files = done["manifest"]
    for required in (MARKER, CONFIG, META, METRICS):
        if required not in files:
            return f"{DONE} manifest lacks {required}"
    for rel, rec in files.items():
        p = directory / rel
        if not p.is_file():
            return f"{rel} is missing"
        if not isinstance(rec, dict) or p.stat().st_size != rec.get("size"):
            return f"{rel} has changed size"
        if sha256_file(p) != rec.get("sha256"):
            return f"{rel} fails its checksum"
    try:
        rows = count_rows(directory / METRICS)
    except (OSError, UnicodeDecodeError):
        return "metrics.jsonl is unreadable"
    if rows != done.get("metrics_rows"):
        return f"metrics.jsonl has {rows} rows, {DONE} records {done.get('metrics_rows')}"
    return ""


def inspect_run(directory: str | Path) -> RunState:
    """Read and verify a run directory's state (cheap for small runs: every manifest file is hashed)."""
    d = Path(directory)
    if not d.exists():
        return RunState(ABSENT)
    if not d.is_dir():
        return RunState(FOREIGN, "is a file, not a run directory")
    if not is_owned(d):
        if not any(d.iterdir()) or only_marker_tmp(d):
            return RunState(INCOMPLETE, "created but never started")
        return RunState(FOREIGN, f"is not a run directory written by shl (no {MARKER} marker)")
    if (d / DONE).exists():
        done, why = read_json_object(d / DONE)
        if done is None:
            return RunState(CORRUPT, f"{DONE} is {why}")
        problem = verify_done(d, done)
        if problem:
            return RunState(CORRUPT, problem, done)
        return RunState(str(done["status"]), str(done.get("message", "")), done)
    if (d / FAILED).exists():
        failed, why = read_json_object(d / FAILED)
        if failed is None:
            return RunState("failed", f"{FAILED} is {why}")
        status = failed.get("status") if failed.get("status") in FAILED_STATUSES else "failed"
        return RunState(status, str(failed.get("error", "")))
    return RunState(INCOMPLETE, "killed before it finished")


def read_meta(run_dir: str | Path) -> dict[str, Any]:
    """A run directory's meta.json object ({} when it is missing, unreadable or not an object)."""
    obj, _ = read_json_object(Path(run_dir) / META)
    return obj or {}


def recorded_times(run_dir: str | Path) -> list[float]:
    """The times (epoch seconds) a run directory records: its start (meta.json ``started``) and its end
    (``finished`` of DONE.json, then of FAILED.json); a time that is missing or not a number is left out."""
    d = Path(run_dir)
    times = []
    for name, key in ((META, "started"), (DONE, "finished"), (FAILED, "finished")):
        t = (read_json_object(d / name)[0] or {}).get(key)
        if isinstance(t, (int, float)) and not isinstance(t, bool):
            times.append(t)
    return times
