"""A tiny two-arm ablation, a reference run of it, and the fault injector's plumbing."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from cli_helpers import shl_cmd, shl_env, write_experiment

from shl.store import TERMINAL, inspect_run

INJECT = Path(__file__).parent / "inject"
ARMS = {"mean": {"heal.barrier.aggregator": "mean"}, "rmse": {"heal.barrier.aggregator": "rmse"}}
USER_FILES = {"experiment.yaml": "my own notes: do not touch\n", "notes/todo.txt": "buy milk\n"}


def make_experiment(directory: Path) -> Path:
    """2 arms x 1 seed x 1 round on the tiny random model, with files of the user's in the same folder."""
    exp = write_experiment(directory, arms=ARMS, seeds="0")
    for rel, text in USER_FILES.items():
        (directory / rel).parent.mkdir(parents=True, exist_ok=True)
        (directory / rel).write_text(text)
    return exp


def shl_faulty(cwd: Path, *args: str, fault: dict | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    env = shl_env()
    if fault is not None:
        env["PYTHONPATH"] = str(INJECT)
        env["SHL_FAULT"] = json.dumps(fault)
    return subprocess.run(shl_cmd(*args), cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


def normalise(rel: str) -> str:
    """A counted operation's path with names that vary between runs replaced (run dirs, temp names, hashes)."""
    rel = re.sub(r"runs/[^/]+__seed\d+__[0-9a-f]+", "runs/<run>", rel)
    rel = re.sub(r"\.shl-[A-Za-z0-9_]{8}\.tmp$", ".<tmp>.tmp", rel)
    return re.sub(r"[0-9a-f]{24}\.pt", "<entry>.pt", rel)


@dataclass
class Event:
    index: int
    op: str
    path: str

    @property
    def kind(self) -> str:
        return f"{self.op} {normalise(self.path)}"


def read_events(log: Path) -> list[Event]:
    out = []
    for line in log.read_text().splitlines():
        i, op, path = line.split("\t")
        out.append(Event(int(i), op, path))
    return out


def snapshot(directory: Path) -> dict[str, bytes]:
    return {p.relative_to(directory).as_posix(): p.read_bytes() for p in sorted(directory.rglob("*")) if p.is_file()}


def user_files_intact(directory: Path) -> None:
    for rel, text in USER_FILES.items():
        assert (directory / rel).read_text() == text, f"user file {rel} was changed"


def complete_runs(out: Path) -> dict[str, str]:
    """run dir name -> metrics.jsonl text, for every verified finished run; asserts there is nothing else."""
    found = {}
    for d in sorted((out / "runs").iterdir()):
        if not d.is_dir():
            continue
        state = inspect_run(d)
        assert state.status in TERMINAL, (d.name, state)
        found[d.name] = (d / "metrics.jsonl").read_text()
    return found


def copy_out(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst
