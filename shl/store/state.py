"""What a run directory holds, verified on read: ownership, the integrity of a finished run, and its status.

Ownership: shl deletes or overwrites a directory only when SHL_RUN.json says shl made it. A directory that
holds only the marker's temporary file (a kill between ``mkdir`` and the marker's rename) is also shl's.

Integrity: a run counts as finished only when DONE.json parses and every file in its manifest is present with
the recorded size and checksum; otherwise it is ``corrupt`` (never silently used, never silently redone).

Statuses (``inspect_run(dir).status``): complete | stopped | starved (finished; see TERMINAL), failed | nan
(FAILED.json), corrupt (a finished run that fails verification), running (unfinished, its writer alive),
incomplete (ours, killed before an end marker),
foreign (a directory shl did not write), absent.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .files import is_plain_dir, is_plain_file, read_json_object, read_lines, sha256_file
from .layout import (
    ABSENT, CONFIG, CORRUPT, DIR_MARKER, DONE, FAILED, FAILED_STATUSES, FOREIGN, FORMAT_VERSION, INCOMPLETE, MARKER, META,
    METRICS, RUNNING, TERMINAL, TMP_NAME, UNMANIFESTED, WRITER_LOCK, parse_run_dirname,
)
from .writer import writer_of

MAX_ROUNDS = 1000  # the config's own bound on loop.rounds


def marker_version(directory: Path) -> int | None:
    """The run-format version in a directory's SHL_RUN.json (a regular file, never a link); None when there is no
    valid marker."""
    marker, _ = read_json_object(Path(directory) / MARKER)
    if not marker or marker.get("format") != "shl-run":
        return None
    version = marker.get("version")
    return version if isinstance(version, int) and not isinstance(version, bool) else None


def is_owned(directory: Path) -> bool:
    """True when this shl made this directory: a real directory (not a link) whose marker parses and names a run
    format this shl knows (a newer format is another shl's: never deleted, never redone)."""
    d = Path(directory)
    version = marker_version(d) if is_plain_dir(d) else None
    return version is not None and 1 <= version <= FORMAT_VERSION


def only_marker_tmp(directory: Path) -> bool:
    """True when the directory holds nothing but the marker's temporary file(s) and the writer's lock: shl's,
    killed before the marker's rename."""
    names = [p.name for p in directory.iterdir()]
    return bool(names) and all(
        n == WRITER_LOCK or ((m := TMP_NAME.match(n)) is not None and m.group("target") == MARKER) for n in names)


@dataclass(frozen=True)
class RunState:
    """What a run directory holds, as verified on read: ``status`` (see the module docstring) and ``reason``
    (why a run is corrupt, failed or foreign; the message of a finished run)."""

    status: str
    reason: str = ""
    done: dict[str, Any] | None = None


def manifest(directory: Path) -> dict[str, dict[str, Any]]:
    """Size and sha256 of every regular file under ``directory`` except log.txt, the end markers, the writer's
    lock and temporary files (symbolic links are neither followed nor listed)."""
    out = {}
    for p in sorted(Path(directory).rglob("*")):
        rel = p.relative_to(directory).as_posix()
        if is_plain_file(p) and rel not in UNMANIFESTED and not TMP_NAME.match(p.name):
            out[rel] = {"size": p.stat().st_size, "sha256": sha256_file(p)}
    return out


def round_files(rounds: int) -> list[str]:
    """The files a run that finished ``rounds`` heal rounds must hold: per round i < rounds, its steering vector
    and its adapter (config and weights)."""
    out = []
    for i in range(rounds):
        out += [f"vectors/round_{i}.safetensors", f"adapters/r{i}/adapter_config.json",
                f"adapters/r{i}/adapter_model.safetensors"]
    return out


def count_rows(path: Path) -> int:
    """Non-blank lines of a JSONL file (0 for a missing file or one that is not a regular file)."""
    return sum(1 for line in read_lines(path) if line.strip())


def verify_done(directory: Path, done: dict[str, Any]) -> str:
    """"" when the finished run is intact, else the first problem found (one short phrase)."""
    if done.get("version") != FORMAT_VERSION or not isinstance(done.get("manifest"), dict):
        return f"{DONE} has no integrity record (written by another shl version)"
    if done.get("status") not in TERMINAL:
        return f"{DONE} has an unknown status {done.get('status')!r}"
    files = done["manifest"]
    rounds = done.get("rounds")
    if not isinstance(rounds, int) or isinstance(rounds, bool) or not 0 <= rounds <= MAX_ROUNDS:
        return f"{DONE} records no valid number of rounds ({str(rounds)[:20]!r}; at most {MAX_ROUNDS})"
    for required in (MARKER, CONFIG, META, METRICS, *round_files(rounds)):
        if required not in files:
            return f"{DONE} manifest lacks {required}, which its {rounds} recorded round(s) require"
    for rel, rec in files.items():
        p = directory / rel
        if not is_plain_file(p):
            return f"{rel} is missing" if not p.exists() and not p.is_symlink() else f"{rel} is not a regular file"
        if not isinstance(rec, dict) or p.stat().st_size != rec.get("size"):
            return f"{rel} has changed size"
        try:
            if sha256_file(p) != rec.get("sha256"):
                return f"{rel} fails its checksum"
        except OSError:
            return f"{rel} is unreadable"
    rows = count_rows(directory / METRICS)
    if rows != done.get("metrics_rows"):
        return f"metrics.jsonl has {rows} rows, {DONE} records {done.get('metrics_rows')}"
    if rows < rounds + 1:
        return f"metrics.jsonl has {rows} rows, fewer than the {rounds} recorded round(s) need ({rounds + 1})"
    return _name_matches_record(directory)


def _name_matches_record(directory: Path) -> str:
    """"" unless the directory is an ablation's run directory (named ``<arm>__seed<k>__<hash>`` in a ``runs/``
    folder shl marked) whose name disagrees with the arm, seed or config hash its own meta.json records (a run
    directory renamed or copied under another run's name)."""
    parsed = parse_run_dirname(directory.name)
    if parsed is None or not is_plain_file(directory.parent / DIR_MARKER):
        return ""
    arm, seed, prefix = parsed
    meta, _ = read_json_object(directory / META)
    meta = meta or {}
    recorded = (meta.get("arm"), meta.get("seed"), str(meta.get("config_hash", ""))[: len(prefix)])
    if recorded != (arm, seed, prefix):
        return (f"its name says arm '{arm}' seed {seed} hash {prefix}, but its meta.json records arm "
                f"'{recorded[0]}' seed {recorded[1]} hash {recorded[2]} (renamed or copied from another run)")
    return ""


def inspect_run(directory: str | Path) -> RunState:
    """Read and verify a run directory's state (cheap for small runs: every manifest file is hashed)."""
    d = Path(directory)
    if d.is_symlink():
        return RunState(FOREIGN, "is a symbolic link; shl never follows links in its store")
    if not d.exists():
        return RunState(ABSENT)
    if not d.is_dir():
        return RunState(FOREIGN, "is a file, not a run directory")
    if not is_owned(d):
        version = marker_version(d)
        if version is not None and version > FORMAT_VERSION:
            return RunState(FOREIGN, f"was written by a newer shl (run format {version}; this shl reads up to "
                                     f"{FORMAT_VERSION}); upgrade shl to read or redo it")
        if is_plain_file(d / MARKER) or (d / MARKER).is_symlink():
            return RunState(FOREIGN, f"has an {MARKER} that is not shl's run marker")
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
    holder = writer_of(d)
    if holder:
        return RunState(RUNNING, f"is still running ({holder})")
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
