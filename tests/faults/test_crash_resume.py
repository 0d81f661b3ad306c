"""SIGKILL at exact file operations of `shl ablate --out .` (in a folder that also holds the user's files),
then resume: every crash point resumes to exactly the results of an uninterrupted run, no user file is touched,
and no temporary file is left behind. The default suite kills at the points that matter most; ``-m slow``
kills at the first occurrence of every kind of file operation the ablation performs."""

from __future__ import annotations

import signal
from dataclasses import dataclass
from pathlib import Path

import pytest
from fault_helpers import (Event, complete_runs, make_experiment, read_events, shl_faulty, user_files_intact)

pytestmark = pytest.mark.system  # the fault-injection tier: pytest -m system


@dataclass
class Reference:
    runs: dict[str, str]
    comparison: str
    events: list[Event]


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Reference:
    d = tmp_path_factory.mktemp("reference")
    exp = make_experiment(d)
    log = d.parent / f"{d.name}-events.log"
    proc = shl_faulty(d, "ablate", exp.name, "--out", ".", fault={"root": str(d), "action": "log", "log": str(log)})
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    user_files_intact(d)
    return Reference(complete_runs(d), (d / "report" / "comparison.csv").read_text(), read_events(log))


def kill_points(events: list[Event]) -> dict[str, Event]:
    """The first operation of each kind (op + path with run names normalised)."""
    first: dict[str, Event] = {}
    for e in events:
        first.setdefault(e.kind, e)
    return first


KEY_POINTS = [
    "write runs/<run>/.SHL_RUN.json.<tmp>.tmp",      # the run directory exists, its marker is not there yet
    "write runs/<run>/.config.yaml.<tmp>.tmp",        # inside the config write (the audit's unresumable case)
    "write runs/<run>/metrics.jsonl",                 # mid-run
    "replace runs/<run>/DONE.json",                   # finishing a run
    "replace shared/<entry>.pt",                      # the shared-stage cache
    "replace shl-ablation.yaml",                      # the ablation record
    "write report/.comparison.md.<tmp>.tmp",          # the report
]


def crash_and_resume(tmp_path: Path, reference: Reference, event: Event) -> str:
    exp = make_experiment(tmp_path)
    killed = shl_faulty(tmp_path, "ablate", exp.name, "--out", ".",
                        fault={"root": str(tmp_path), "action": "kill", "nth": event.index})
    assert killed.returncode == -signal.SIGKILL, (event, killed.stdout[-1500:], killed.stderr[-1500:])
    user_files_intact(tmp_path)
    resumed = shl_faulty(tmp_path, "ablate", exp.name, "--out", ".")
    out = resumed.stdout + resumed.stderr
    assert resumed.returncode == 0, (event, out[-3000:])
    assert "Traceback" not in out
    assert complete_runs(tmp_path) == reference.runs, event
    assert (tmp_path / "report" / "comparison.csv").read_text() == reference.comparison
    user_files_intact(tmp_path)
    leftovers = [p for p in tmp_path.rglob(".*.tmp")]
    assert not leftovers, leftovers
    return out


FAST_POINTS = {"write runs/<run>/.SHL_RUN.json.<tmp>.tmp", "write runs/<run>/.config.yaml.<tmp>.tmp",
               "replace runs/<run>/DONE.json", "replace shared/<entry>.pt", "write report/.comparison.md.<tmp>.tmp"}


@pytest.mark.parametrize("kind", [k if k in FAST_POINTS else pytest.param(k, marks=pytest.mark.slow) for k in KEY_POINTS])
def test_kill_at_key_point_resumes(tmp_path: Path, reference: Reference, kind: str):
    points = kill_points(reference.events)
    assert kind in points, sorted(points)
    out = crash_and_resume(tmp_path, reference, points[kind])
    assert "took over a stale lock" in out


def test_kill_inside_the_second_runs_config_write_resumes(tmp_path: Path, reference: Reference):
    writes = [e for e in reference.events if e.kind == "write runs/<run>/.config.yaml.<tmp>.tmp"]
    assert len(writes) == 2
    crash_and_resume(tmp_path, reference, writes[1])


@pytest.mark.slow
def test_kill_at_every_kind_of_file_operation_resumes(tmp_path_factory, reference: Reference):
    points = kill_points(reference.events)
    assert len(points) > 30
    for kind, event in points.items():
        crash_and_resume(tmp_path_factory.mktemp("kill"), reference, event)
