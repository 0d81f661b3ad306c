"""The names of the run-directory format: files, statuses and directory names (no I/O here).

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

An ablation's output directory holds ``shl-ablation.yaml`` and its run directories under ``runs/``, named by
``run_dirname``; a directory shl made for other output (``runs/``, ``report/``) holds a ``.shl-dir`` marker.
"""

from __future__ import annotations

import re

FORMAT_VERSION = 2
MARKER = "SHL_RUN.json"
DONE = "DONE.json"
FAILED = "FAILED.json"
CONFIG = "config.yaml"
META = "meta.json"
METRICS = "metrics.jsonl"
TIMINGS = "timings.jsonl"
SAMPLES = "samples.jsonl"
LOG = "log.txt"
TMP_TAG = ".shl-"
TMP_NAME = re.compile(r"^\.(?P<target>.+)\.shl-[a-z0-9_]{8}\.tmp$")
"""shl's temporary files: ``.<target name>.shl-<8 random characters>.tmp`` (``atomic_write``, ``temp_path``). Only
names of this shape, in directories shl marked, are ever cleaned up: a user's ``.notes.tmp`` never matches."""
WRITER_LOCK = ".shl-writer.lock"
"""In a run directory: the lock its writer holds while the run executes (never in a manifest)."""
UNMANIFESTED = frozenset({LOG, DONE, FAILED, WRITER_LOCK})
RUN_ENTRIES = frozenset({MARKER, CONFIG, META, METRICS, TIMINGS, SAMPLES, LOG, DONE, FAILED, WRITER_LOCK, "vectors",
                         "adapters"})
"""Everything a run directory may hold (besides shl's temporary files). A directory holding anything else is not
a plain run directory, and shl never deletes it."""

# statuses of a run directory (``inspect_run(dir).status``)
CORRUPT = "corrupt"
FOREIGN = "foreign"
INCOMPLETE = "incomplete"
RUNNING = "running"  # unfinished, and a live process holds its writer lock
ABSENT = "absent"
TERMINAL = frozenset({"complete", "stopped", "starved"})  # finished: an ablation does not redo these
USABLE = frozenset({"complete", "stopped"})  # finished with results that enter a comparison
UNTRUSTED = frozenset({CORRUPT, FOREIGN})  # failing its integrity check, or not shl's: never read
TERMINAL_OK = tuple(sorted(TERMINAL))
FAILED_STATUSES = ("failed", "nan")  # what FAILED.json may record

OUT_RECORD = "shl-ablation.yaml"
DIR_MARKER = ".shl-dir"
RUNS_DIR = "runs"
"""An ablation's output directory holds its run directories in this folder."""
_RUN_DIRNAME = re.compile(r"^(?P<arm>.+)__seed(?P<seed>-?\d+)__(?P<hash>[^_]+)$")


def run_dirname(arm: str, seed: int, config_hash: str) -> str:
    """The directory name of an ablation's run: ``<arm>__seed<seed>__<first 12 hex digits of its hash>``."""
    return f"{arm}__seed{seed}__{config_hash[:12]}"


def parse_run_dirname(name: str) -> tuple[str, int, str] | None:
    """(arm, seed, hash prefix) of a name ``run_dirname`` made; None for any other name."""
    m = _RUN_DIRNAME.match(name)
    return (m.group("arm"), int(m.group("seed")), m.group("hash")) if m else None
