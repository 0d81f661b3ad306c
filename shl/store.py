"""The run store: one directory per run, plain files a researcher can open.

    <run_dir>/
      config.yaml      the fully resolved config
      meta.json        experiment, arm, seed, config hash, plugin list, versions, start time
      metrics.jsonl    one JSON object per round (round 0 = the base model before any heal)
      samples.jsonl    completions worth reading (steered kept/dropped, evaluation samples)
      vectors/round_<i>.safetensors   steering vectors per layer
      adapters/<name>/                PEFT adapters (save_pretrained format)
      log.txt          what a researcher needs to judge the run
      DONE.json        written last and atomically: {"status": complete|stopped|starved, "message", "rounds"}
      FAILED.json      {"status": "failed"|"nan", "error", "traceback"} when the run raised

A run directory with neither marker is incomplete (killed) and is redone from scratch.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

from .errors import ShlError

DONE = "DONE.json"
FAILED = "FAILED.json"
TERMINAL_OK = ("complete", "stopped", "starved")


def atomic_write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _clean(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


class RunStore:
    def __init__(self, run_dir: str | Path):
        self.dir = Path(run_dir)

    # ------------------------------------------------------------------ state
    def status(self) -> str:
        """complete | stopped | starved | failed | nan | incomplete | absent"""
        if (self.dir / DONE).is_file():
            return json.loads((self.dir / DONE).read_text()).get("status", "complete")
        if (self.dir / FAILED).is_file():
            return json.loads((self.dir / FAILED).read_text()).get("status", "failed")
        return "incomplete" if self.dir.exists() else "absent"

    def is_done(self) -> bool:
        return (self.dir / DONE).is_file()

    def looks_like_run(self) -> bool:
        return any((self.dir / name).exists() for name in ("config.yaml", "meta.json", "metrics.jsonl", DONE, FAILED))

    def reset(self) -> None:
        """Remove a previous incomplete or failed attempt so the run starts from scratch. A non-empty directory
        that is not a run directory is never deleted (``--out .`` must not wipe a project)."""
        if not self.dir.exists():
            return
        if not self.dir.is_dir() or (any(self.dir.iterdir()) and not self.looks_like_run()):
            raise ShlError(f"{self.dir}: exists and is not a run directory; refusing to overwrite it (choose another --out)")
        shutil.rmtree(self.dir)

    # ------------------------------------------------------------------ writing
    def start(self, config: dict[str, Any], meta: dict[str, Any]) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        atomic_write(self.dir / "config.yaml", yaml.safe_dump(config, sort_keys=False))
        atomic_write(self.dir / "meta.json", json.dumps({**meta, "started": time.time()}, indent=2))
        for name in ("metrics.jsonl", "samples.jsonl", "log.txt"):
            (self.dir / name).write_text("")

    def append_metrics(self, row: dict[str, Any]) -> None:
        self._append("metrics.jsonl", json.dumps(_clean(row), sort_keys=False))

    def append_samples(self, rows: list[dict[str, Any]]) -> None:
        for row in rows:
            self._append("samples.jsonl", json.dumps(_clean(row), ensure_ascii=False))

    def log(self, line: str) -> None:
        self._append("log.txt", line.rstrip("\n"))

    def _append(self, name: str, line: str) -> None:
        with open(self.dir / name, "a") as f:
            f.write(line + "\n")

    def save_vectors(self, round_index: int, vectors: dict[int, Any]) -> None:
        from safetensors.torch import save_file

        (self.dir / "vectors").mkdir(exist_ok=True)
        save_file(
            {f"layer_{k}": v.detach().float().contiguous().cpu() for k, v in vectors.items()},
            str(self.dir / "vectors" / f"round_{round_index}.safetensors"),
        )

    def adapters_dir(self) -> Path:
        return self.dir / "adapters"

    def finish(self, status: str, message: str, rounds: int) -> None:
        atomic_write(
            self.dir / DONE,
            json.dumps({"status": status, "message": message, "rounds": rounds, "finished": time.time()}, indent=2),
        )

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
        path = self.dir / "meta.json"
        return json.loads(path.read_text()) if path.is_file() else {}
