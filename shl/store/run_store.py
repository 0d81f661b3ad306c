"""``RunStore``: writes and reads one run directory (the format is ``layout``'s; its state is ``state``'s)."""

from __future__ import annotations

import json
import math
import shutil
import time
from pathlib import Path
from typing import Any

import yaml

from ..errors import ShlError
from .files import atomic_write
from .layout import CONFIG, DONE, FAILED, FORMAT_VERSION, LOG, MARKER, META, METRICS, SAMPLES, TERMINAL, TIMINGS
from .state import RunState, count_rows, inspect_run, is_owned, manifest, only_marker_tmp, read_meta


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
        if is_owned(d) or only_marker_tmp(d):
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
        with open(self.dir / name, "a") as f:
            f.write(line + "\n")

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
        path = self.dir / METRICS
        if not path.is_file():
            return []
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]

    def meta(self) -> dict[str, Any]:
        return read_meta(self.dir)
