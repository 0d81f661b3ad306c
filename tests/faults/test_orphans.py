"""No shl process outlives a killed ablation, and a resume never races a writer (issue 22).

The driver of `shl ablate --workers 2` is SIGKILLed while a worker is mid-run (mid-heal, mid-write...): every
worker named in the output lock must be gone within a few seconds, and the resumed ablation must exit 0 with a
table equal, byte for byte, to an uninterrupted run's. The lock itself is shared with the workers, so while any
worker of a killed driver lives, no new ablation starts on the directory."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from cli_helpers import shl_cmd, shl_env
from fault_helpers import INJECT, complete_runs, make_experiment, shl_faulty

from shl.runner import lock as lock_module
from shl.store import writer_of

pytestmark = pytest.mark.system  # the fault-injection tier: pytest -m system

SEEDS = "0-1"  # 2 arms x 2 seeds: both workers busy at once


def alive(pid: int) -> bool:
    """True for a live process (a zombie, dead but not yet reaped, counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def lock_pids(out: Path) -> tuple[int, list[int]]:
    text = (out / ".shl.lock").read_text()
    m = re.match(r"pid (\d+).*?(?:; workers ([\d ]+))?$", text)
    assert m, text
    return int(m.group(1)), [int(w) for w in (m.group(2) or "").split()]


def workers_env(fault: dict | None = None) -> dict[str, str]:
    env = shl_env(SHL_WORKERS="2")
    if fault is not None:
        import json

        env["PYTHONPATH"] = str(INJECT)
        env["SHL_FAULT"] = json.dumps(fault)
    return env


def ablate(cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(shl_cmd("ablate", "exp.yaml", "--seeds", SEEDS, "--out", "out"), cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> tuple[dict[str, str], str]:
    d = tmp_path_factory.mktemp("uninterrupted")
    make_experiment(d)
    proc = ablate(d, workers_env())
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    return complete_runs(d / "out"), (d / "out" / "report" / "comparison.csv").read_text()


def busy_cores(n: int) -> list[subprocess.Popen]:
    return [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(n)]


def kill_and_resume(tmp_path: Path, reference, match: str, load: int = 0) -> None:
    make_experiment(tmp_path)
    out = tmp_path / "out"
    hogs = busy_cores(load)
    try:
        killed = ablate(tmp_path, workers_env({"root": str(tmp_path), "action": "kill_parent", "nth": 1,
                                               "match": match}))
        assert killed.returncode == -signal.SIGKILL, killed.stdout[-2000:] + killed.stderr[-2000:]
        driver, workers = lock_pids(out)
        assert len(workers) == 2 and not alive(driver)
        deadline = time.monotonic() + 5.0
        while any(alive(w) for w in workers) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not [w for w in workers if alive(w)], "a worker outlived the killed ablation"
        assert not [d.name for d in (out / "runs").iterdir() if writer_of(d)]
        resumed = ablate(tmp_path, workers_env())
    finally:
        for hog in hogs:
            hog.kill()
            hog.wait()
    text = resumed.stdout + resumed.stderr
    assert resumed.returncode == 0, text[-3000:]
    assert "Traceback" not in text and "took over a stale lock" in text
    runs, table = reference
    assert complete_runs(out) == runs
    assert (out / "report" / "comparison.csv").read_text() == table


def test_kill_the_driver_while_a_worker_heals(tmp_path: Path, reference):
    """The first steering vector is written just before that run's heal starts."""
    kill_and_resume(tmp_path, reference, r"vectors/round_0\.safetensors")


@pytest.mark.slow
@pytest.mark.parametrize("match", [r"metrics\.jsonl$", r"adapters/r0", r"DONE\.json"])
def test_kill_the_driver_at_other_points(tmp_path: Path, reference, match: str):
    kill_and_resume(tmp_path, reference, match)


@pytest.mark.slow
def test_kill_the_driver_under_cpu_load(tmp_path: Path, reference):
    kill_and_resume(tmp_path, reference, r"vectors/round_0\.safetensors", load=2)


def test_the_lock_outlives_a_dead_driver_while_a_worker_holds_it(tmp_path: Path, monkeypatch):
    """A worker holding a duplicate of the lock keeps the directory locked after its driver died: a new
    ablation waits for it, then refuses naming the driver and the worker; once the worker is gone the stale
    lock is taken over with a note."""
    import multiprocessing as mp

    from rich.console import Console

    from shl.errors import ShlError
    from shl.executors.local_pool import SharedFd

    out = tmp_path / "out"
    out.mkdir()
    fd = lock_module._open_lock(out / lock_module.LOCK)
    import fcntl

    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    ctx = mp.get_context("spawn")
    worker = ctx.Process(target=_hold, args=(SharedFd(fd),))
    worker.start()
    os.pwrite(fd, f"pid {int(dead.stdout)} on {os.uname().nodename}; workers {worker.pid}".encode(), 0)
    os.close(fd)  # the driver is gone; only the worker holds the lock now
    monkeypatch.setattr(lock_module, "WAIT_FOR_DYING_S", 0.5)
    try:
        with pytest.raises(ShlError, match=rf"was killed, but its worker processes \(pids {worker.pid}\)"):
            with lock_module.output_lock(out):
                pass
    finally:
        worker.terminate()
        worker.join()
    con = Console(record=True, width=300)
    with lock_module.output_lock(out, con):
        pass
    assert "took over a stale lock" in con.export_text()


def _hold(fd: int) -> None:
    time.sleep(60)


def test_killing_the_resource_tracker_prints_no_tracebacks(tmp_path: Path):
    make_experiment(tmp_path)
    proc = subprocess.Popen(shl_cmd("ablate", "exp.yaml", "--seeds", SEEDS, "--out", "out", "--no-report"),
                            cwd=tmp_path, env=workers_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    tracker = None
    deadline = time.monotonic() + 120
    while tracker is None and time.monotonic() < deadline and proc.poll() is None:
        for child in Path("/proc").glob("[0-9]*"):
            try:
                stat = (child / "stat").read_text()
                cmd = (child / "cmdline").read_bytes()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == proc.pid and b"resource_tracker" in cmd:
                tracker = int(child.name)
        time.sleep(0.05)
    assert tracker is not None, "the spawn start method always starts a resource tracker"
    os.kill(tracker, signal.SIGKILL)
    stdout, stderr = proc.communicate(timeout=600)
    assert proc.returncode == 0, stdout[-2000:] + stderr[-2000:]
    assert "Traceback" not in stdout + stderr and "KeyError" not in stdout + stderr, stderr
    assert len(complete_runs(tmp_path / "out")) == 4
