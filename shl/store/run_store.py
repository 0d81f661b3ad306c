"""``RunStore``: writes and reads one run directory (the format is ``layout``'s; its state is ``state``'s)."""

from __future__ import annotations

import contextlib
import json
import math
import shutil
import time
from pathlib import Path
from typing import Any, Iterator

import yaml

from ..errors import ShlError
from .files import append_line, atomic_write, is_plain_dir, read_lines
from .layout import (
    CONFIG, DIR_MARKER, DONE, FAILED, FORMAT_VERSION, LOG, MARKER, META, METRICS, OUT_RECORD, RUN_ENTRIES, SAMPLES,
    TERMINAL, TIMINGS, TMP_NAME, WRITER_LOCK,
)
from .state import RunState, count_rows, inspect_run, is_owned, manifest, only_marker_tmp, read_meta
from .writer import RunBusy, WriterLock, writer_of


def _clean(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


class RunStore:
    """Writes and reads one run directory."""

    def __init__(self, run_dir: str | Path):
        self.dir = Path(run_dir)
        self._lock: WriterLock | None = None

    # ------------------------------------------------------------------ state
    def state(self) -> RunState:
        return inspect_run(self.dir)

    def status(self) -> str:
        return self.state().status

    def is_done(self) -> bool:
        return self.status() in TERMINAL

    def check_writable(self) -> None:
        """A one-line ShlError unless shl may write here: a new or empty directory, or a run directory this shl
        wrote (never a symbolic link, a file, a user's folder, or a run of a newer shl)."""
        d = self.dir
        if d.is_symlink():
            raise ShlError(f"{d}: is a symbolic link; shl never follows links in its store (choose another --out)")
        if not d.exists():
            return
        if not d.is_dir():
            raise ShlError(f"{d}: is a file, not a run directory; refusing to overwrite it (choose another --out)")
        if is_owned(d) or only_marker_tmp(d) or not any(d.iterdir()):
            return
        state = inspect_run(d)
        reason = state.reason if state.status == "foreign" else f"was not written by shl (no {MARKER})"
        raise ShlError(f"{d}: {reason}; refusing to delete or overwrite it (choose another --out)")

    @contextlib.contextmanager
    def writing(self) -> Iterator["RunStore"]:
        """Hold the run directory's writer lock for the block (``RunBusy`` when a live process holds it): the
        only way a run is executed into a directory, so two processes never write one run."""
        self.check_writable()
        lock = WriterLock(self.dir).acquire()
        self._lock = lock
        try:
            yield self
        finally:
            self._lock = None
            lock.release()

    def reset(self) -> None:
        """Remove a previous attempt that shl owns so the run starts from scratch. Only a run's own entries are
        removed, never through a symbolic link; a directory shl did not write, one another live process is
        writing, or one that holds anything else (a nested ablation, a user's file) is refused with one line."""
        self.check_writable()
        d = self.dir
        if not d.exists():
            return
        holder = None if self._lock is not None else writer_of(d)
        if holder:
            raise RunBusy(f"{d}: is being written by another live process ({holder}); wait for it to finish")
        entries = list(d.iterdir())
        extra = [p for p in entries if p.name not in RUN_ENTRIES and not TMP_NAME.match(p.name)]
        nested = [p for p in d.rglob("*") if p.name in (DIR_MARKER, OUT_RECORD) or (p.name == MARKER and p.parent != d)]
        if extra or nested:
            what = (extra or nested)[0]
            raise ShlError(f"{d}: holds {what.relative_to(d)}, which is not part of a run; refusing to delete the "
                           "run directory (move that away first)")
        for p in entries:
            if p.name == WRITER_LOCK:
                continue
            if is_plain_dir(p):
                shutil.rmtree(p)
            else:
                p.unlink(missing_ok=True)

    # ------------------------------------------------------------------ writing
    def start(self, config: dict[str, Any], meta: dict[str, Any]) -> None:
        """Claim the directory (marker first), then write the config and meta. The directory must be new,
        empty, or an attempt of shl's own."""
        self.reset()
        self.dir.mkdir(parents=True, exist_ok=True)
        atomic_write(self.dir / MARKER, json.dumps({"format": "shl-run", "version": FORMAT_VERSION,
                                                     "created": time.time()}, indent=2))
        atomic_write(self.dir / CONFIG, yaml.safe_dump(config, sort_keys=False))
        atomic_write(self.dir / META, json.dumps({**meta, "started": time.time()}, indent=2))
        for name in (METRICS, TIMINGS, SAMPLES, LOG):
            atomic_write(self.dir / name, "")

    def update_meta(self, **fields: Any) -> None:
        """Add fields known only once the run is under way (device, dtype, resolved LoRA targets) to meta.json."""
        atomic_write(self.dir / META, json.dumps({**self.meta(), **fields}, indent=2))

    def append_metrics(self, row: dict[str, Any]) -> None:
        self._append(METRICS, json.dumps(_clean(row), sort_keys=False))

    def append_timings(self, row: dict[str, Any]) -> None:
        self._append(TIMINGS, json.dumps(_clean(row), sort_keys=False))

    def append_samples(self, rows: list[dict[str, Any]]) -> None:
        for row in rows:
            self._append(SAMPLES, json.dumps(_clean(row), ensure_ascii=False))

    def log(self, line: str) -> None:
        self._append(LOG, line.rstrip("\n"))

    def _append(self, name: str, line: str) -> None:
        append_line(self.dir / name, line)

    def save_vectors(self, round_index: int, vectors: dict[int, Any]) -> None:
        from safetensors.torch import save

        data = save({f"layer_{k}": v.detach().float().contiguous().cpu() for k, v in vectors.items()})
        atomic_write(self.dir / "vectors" / f"round_{round_index}.safetensors", data)

    def adapters_dir(self) -> Path:
        return self.dir / "adapters"

    def finish(self, status: str, message: str, rounds: int) -> None:
        rows = count_rows(self.dir / METRICS)
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
        return [json.loads(line) for line in read_lines(self.dir / METRICS) if line.strip()]

    def meta(self) -> dict[str, Any]:
        return read_meta(self.dir)
