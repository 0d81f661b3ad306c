"""The run store: one directory per run, plain files a researcher can open. This module owns the format.

    <run_dir>/
      SHL_RUN.json     written FIRST: shl's ownership marker {"format": "shl-run", "version": 2}
      config.yaml      the fully resolved config
      meta.json        experiment, arm, seed, config hash, plugin list, versions, start time
      metrics.jsonl    one JSON object per round (round 0 = the base model before any heal); deterministic
      timings.jsonl    wall time per stage and round (not covered by the determinism promise)
      samples.jsonl    completions worth reading (steered kept/dropped, evaluation samples)
      vectors/round_<i>.safetensors   steering vectors per layer
      adapters/<name>/                PEFT adapters (save_pretrained format)
      log.txt          what a researcher needs to judge the run
      DONE.json        written last and atomically: status, message, rounds, metrics row count, and a manifest
                       (size and sha256) of every file above except log.txt
      FAILED.json      {"status": "failed"|"nan", "error", "traceback"} when the run raised

Ownership: shl deletes or overwrites a directory only when SHL_RUN.json says shl made it. A directory that
holds only the marker's temporary file (a kill between ``mkdir`` and the marker's rename) is also shl's.

Integrity: a run counts as finished only when DONE.json parses and every file in its manifest is present with
the recorded size and checksum; otherwise it is ``corrupt`` (never silently used, never silently redone).

Statuses (``inspect_run(dir).status``): complete | stopped | starved (finished; see TERMINAL), failed | nan
(FAILED.json), corrupt (a finished run that fails verification), incomplete (ours, killed before a marker),
foreign (a directory shl did not write), absent. This module imports no torch, so analysis can use it.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from .errors import ShlError

FORMAT_VERSION = 2
MARKER = "SHL_RUN.json"
DONE = "DONE.json"
FAILED = "FAILED.json"
TERMINAL = frozenset({"complete", "stopped", "starved"})  # finished: an ablation does not redo these
USABLE = frozenset({"complete", "stopped"})  # finished with results that enter a comparison
TERMINAL_OK = tuple(sorted(TERMINAL))
UNMANIFESTED = frozenset({"log.txt", DONE, FAILED})
_TMP = re.compile(r"^\..+\.tmp$")


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_FILE_MODE = 0o666 & ~_umask()


def atomic_write(path: Path, text: str | bytes) -> None:
    """Write ``path`` through a temporary file in the same directory and a rename, with the normal umask."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, _FILE_MODE)
        with os.fdopen(fd, "wb") as f:
            f.write(text.encode() if isinstance(text, str) else text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def remove_stale_tmp(directory: Path) -> list[Path]:
    """Delete shl's leftover temporary files (``.<name>.<random>.tmp``) in one directory shl owns."""
    removed = []
    if not Path(directory).is_dir():
        return removed
    for p in Path(directory).iterdir():
        if _TMP.match(p.name) and p.is_file():
            p.unlink(missing_ok=True)
            removed.append(p)
    return removed


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _clean(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


def _read_json_object(path: Path) -> tuple[dict[str, Any] | None, str]:
    """(object, "") or (None, reason)."""
    try:
        obj = json.loads(path.read_text())
    except FileNotFoundError:
        return None, "missing"
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        return None, f"unreadable ({type(exc).__name__})"
    if not isinstance(obj, dict):
        return None, f"not a JSON object ({type(obj).__name__})"
    return obj, ""


def is_owned(directory: Path) -> bool:
    """True when shl made this directory: its marker parses and names shl's run format."""
    marker, _ = _read_json_object(Path(directory) / MARKER)
    return bool(marker) and marker.get("format") == "shl-run" and isinstance(marker.get("version"), int)


def _only_marker_tmp(directory: Path) -> bool:
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
        if p.is_file() and rel not in UNMANIFESTED and not _TMP.match(p.name):
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
    for required in (MARKER, "config.yaml", "meta.json", "metrics.jsonl"):
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
        rows = count_rows(directory / "metrics.jsonl")
    except (OSError, UnicodeDecodeError):
        return "metrics.jsonl is unreadable"
    if rows != done.get("metrics_rows"):
        return f"metrics.jsonl has {rows} rows, {DONE} records {done.get('metrics_rows')}"
    return ""


def inspect_run(directory: str | Path) -> RunState:
    """Read and verify a run directory's state (cheap for small runs: every manifest file is hashed)."""
    d = Path(directory)
    if not d.exists():
        return RunState("absent")
    if not d.is_dir():
        return RunState("foreign", "is a file, not a run directory")
    if not is_owned(d):
        if not any(d.iterdir()) or _only_marker_tmp(d):
            return RunState("incomplete", "created but never started")
        return RunState("foreign", f"is not a run directory written by shl (no {MARKER} marker)")
    if (d / DONE).exists():
        done, why = _read_json_object(d / DONE)
        if done is None:
            return RunState("corrupt", f"{DONE} is {why}")
        problem = verify_done(d, done)
        if problem:
            return RunState("corrupt", problem, done)
        return RunState(str(done["status"]), str(done.get("message", "")), done)
    if (d / FAILED).exists():
        failed, why = _read_json_object(d / FAILED)
        if failed is None:
            return RunState("failed", f"{FAILED} is {why}")
        status = failed.get("status") if failed.get("status") in ("failed", "nan") else "failed"
        return RunState(status, str(failed.get("error", "")))
    return RunState("incomplete", "killed before it finished")


class RunStore:
    """Writes and reads one run directory."""

    def __init__(self, run_dir: str | Path):
        self.dir = Path(run_dir)

    # ------------------------------------------------------------------ state
    def state(self) -> RunState:
        return inspect_run(self.dir)

    def status(self) -> str:
        return self.state().status

    def is_done(self) -> bool:
        return self.status() in TERMINAL

    def reset(self) -> None:
        """Remove a previous attempt that shl owns so the run starts from scratch. Anything shl did not write
        (no marker) is never deleted: a one-line ShlError instead."""
        d = self.dir
        if not d.exists():
            return
        if not d.is_dir():
            raise ShlError(f"{d}: is a file, not a run directory; refusing to overwrite it (choose another --out)")
        if is_owned(d) or _only_marker_tmp(d):
            shutil.rmtree(d)
            return
        if any(d.iterdir()):
            raise ShlError(
                f"{d}: exists and was not written by shl (no {MARKER}); refusing to delete or overwrite it "
                "(choose another --out)"
            )

    # ------------------------------------------------------------------ writing
    def start(self, config: dict[str, Any], meta: dict[str, Any]) -> None:
        """Claim the directory (marker first), then write the config and meta. The directory must be new,
        empty, or an attempt of shl's own."""
        self.reset()
        self.dir.mkdir(parents=True, exist_ok=True)
        atomic_write(self.dir / MARKER, json.dumps({"format": "shl-run", "version": FORMAT_VERSION,
                                                     "created": time.time()}, indent=2))
        atomic_write(self.dir / "config.yaml", yaml.safe_dump(config, sort_keys=False))
        atomic_write(self.dir / "meta.json", json.dumps({**meta, "started": time.time()}, indent=2))
        for name in ("metrics.jsonl", "timings.jsonl", "samples.jsonl", "log.txt"):
            atomic_write(self.dir / name, "")

    def update_meta(self, **fields: Any) -> None:
        """Add fields known only once the run is under way (device, dtype, resolved LoRA targets) to meta.json."""
        atomic_write(self.dir / "meta.json", json.dumps({**self.meta(), **fields}, indent=2))

    def append_metrics(self, row: dict[str, Any]) -> None:
        self._append("metrics.jsonl", json.dumps(_clean(row), sort_keys=False))

    def append_timings(self, row: dict[str, Any]) -> None:
        self._append("timings.jsonl", json.dumps(_clean(row), sort_keys=False))

    def append_samples(self, rows: list[dict[str, Any]]) -> None:
        for row in rows:
            self._append("samples.jsonl", json.dumps(_clean(row), ensure_ascii=False))

    def log(self, line: str) -> None:
        self._append("log.txt", line.rstrip("\n"))

    def _append(self, name: str, line: str) -> None:
        with open(self.dir / name, "a") as f:
            f.write(line + "\n")

    def save_vectors(self, round_index: int, vectors: dict[int, Any]) -> None:
        from safetensors.torch import save

        data = save({f"layer_{k}": v.detach().float().contiguous().cpu() for k, v in vectors.items()})
        atomic_write(self.dir / "vectors" / f"round_{round_index}.safetensors", data)

    def adapters_dir(self) -> Path:
        return self.dir / "adapters"

    def finish(self, status: str, message: str, rounds: int) -> None:
        rows = count_rows(self.dir / "metrics.jsonl")
        record = {"version": FORMAT_VERSION, "status": status, "message": message, "rounds": rounds,
                  "metrics_rows": rows, "finished": time.time(), "manifest": manifest(self.dir)}
        atomic_write(self.dir / DONE, json.dumps(record, indent=2))

    def fail(self, status: str, error: str, traceback: str) -> None:
        atomic_write(
            self.dir / FAILED,
            json.dumps({"status": status, "error": error, "traceback": traceback, "finished": time.time()}, indent=2),
        )

    # ------------------------------------------------------------------ reading
    def metrics(self) -> list[dict[str, Any]]:
        path = self.dir / "metrics.jsonl"
        if not path.is_file():
            return []
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]

    def meta(self) -> dict[str, Any]:
        obj, _ = _read_json_object(self.dir / "meta.json")
        return obj or {}


# ---------------------------------------------------------------------------------------------- directories


OUT_RECORD = "shl-ablation.yaml"
DIR_MARKER = ".shl-dir"


def claim_dir(directory: Path, what: str) -> None:
    """Make ``directory`` shl's (a marker file inside), or confirm it already is. A non-empty directory shl
    did not make is refused with one line: shl never writes into a user's folder of the same name."""
    d = Path(directory)
    if d.exists() and not d.is_dir():
        raise ShlError(f"{d}: is a file, but shl needs a directory here for {what}; move it or choose another --out")
    if d.is_dir() and (d / DIR_MARKER).is_file():
        return
    if d.is_dir() and any(p.name != DIR_MARKER and not _TMP.match(p.name) for p in d.iterdir()):
        raise ShlError(
            f"{d}: exists and was not made by shl (no {DIR_MARKER}); refusing to write {what} into it "
            "(move it or choose another --out)"
        )
    d.mkdir(parents=True, exist_ok=True)
    atomic_write(d / DIR_MARKER, f"shl {what} (format {FORMAT_VERSION}); shl may write and replace files here\n")
