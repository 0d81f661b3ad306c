"""A run that fails inside ``shl ablate``: the progress line gives the reason (not the base model's numbers), and
FAILED.json holds a traceback on every executor path (in process, local worker pool, a worker that dies).

The failures come from a real plugin, installed the way pip would (a package plus its ``.dist-info`` with an
``shl`` entry point) into a folder on PYTHONPATH: an aggregator ``boom`` that fails at the first heal step, after
the base model's evaluation wrote round-0 metrics."""

from __future__ import annotations

import json
import re
import textwrap
from pathlib import Path

import pytest
from cli_helpers import run_shl, shl_env, write_experiment

BOOM = textwrap.dedent(
    '''
    import os

    from pydantic import Field

    from shl import api
    from shl.hookspecs import hookimpl


    class Boom(api.Aggregator):
        """Fails when the heal first aggregates: mode raise (ValueError), exit (SystemExit), die (os._exit)."""

        name = "boom"

        class Params(api.Params):
            mode: str = Field("raise", description="raise, exit or die")

        def aggregate(self, kl):
            if self.params.mode == "exit":
                raise SystemExit(3)
            if self.params.mode == "die":
                os._exit(7)
            raise ValueError("boom: the aggregator failed on purpose")


    @hookimpl
    def shl_register_aggregators(register):
        register(Boom)
    '''
)


@pytest.fixture
def boom_env(tmp_path: Path) -> dict[str, str]:
    site = tmp_path / "site"
    (site / "shl_test_boom").mkdir(parents=True)
    (site / "shl_test_boom" / "__init__.py").write_text(BOOM)
    info = site / "shl_test_boom-0.0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: shl-test-boom\nVersion: 0.0.1\n")
    (info / "entry_points.txt").write_text("[shl]\nboom = shl_test_boom\n")
    env = shl_env()
    env["PYTHONPATH"] = str(site) + (":" + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env


def _arm(mode: str) -> dict:
    return {"heal.barrier.aggregator": {"name": "boom", "params": {"mode": mode}}}


def _failed(out: Path, arm: str) -> dict:
    (run,) = [d for d in (out / "runs").iterdir() if d.name.startswith(f"{arm}__")]
    assert not (run / "DONE.json").exists()
    return json.loads((run / "FAILED.json").read_text())


@pytest.mark.system
def test_in_process_failures_print_the_reason_and_store_the_traceback(tmp_path: Path, boom_env):
    arms = {"mean": {"heal.barrier.aggregator": "mean"}, "raises": _arm("raise"), "exits": _arm("exit")}
    exp = write_experiment(tmp_path, arms=arms, seeds="0")
    proc = run_shl("ablate", exp.name, "--out", "abl", "--executor", "inprocess", "--no-report", cwd=tmp_path,
                   env=boom_env)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1, out[-4000:]  # some runs failed; a SystemExit in a plugin did not end shl
    assert "Traceback" not in out
    text = " ".join(proc.stdout.split())  # undo rich's line wrapping
    # the line of a failed run says why it failed, not the round-0 (base model) numbers it had before failing
    assert re.search(r"raises seed 0: failed \(heal \(round 1, aggregator 'boom'\) raised ValueError: boom", text), text
    assert re.search(r"exits seed 0: failed \(SystemExit: 3\)", text), text
    for line in proc.stdout.splitlines():
        if ": failed (" in line:
            assert "trait=" not in line and "coherence=" not in line, line
    assert re.search(r"mean seed 0: complete \(trait=", text), text

    raised = _failed(tmp_path / "abl", "raises")
    assert raised["status"] == "failed" and "ValueError: boom" in raised["error"]
    assert "Traceback (most recent call last)" in raised["traceback"] and "aggregate" in raised["traceback"]
    exited = _failed(tmp_path / "abl", "exits")
    assert exited["error"] == "SystemExit: 3"
    assert "Traceback (most recent call last)" in exited["traceback"] and "SystemExit" in exited["traceback"]


@pytest.mark.system
def test_local_pool_failures_store_the_traceback_or_why_there_is_none(tmp_path: Path, boom_env):
    arms = {"mean": {"heal.barrier.aggregator": "mean"}, "exits": _arm("exit"), "dies": _arm("die")}
    exp = write_experiment(tmp_path, arms=arms, seeds="0")
    proc = run_shl("ablate", exp.name, "--out", "abl", "--executor", "local", "--workers", "1", "--no-report",
                   cwd=tmp_path, env=boom_env)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1, out[-4000:]
    assert "Traceback" not in out
    text = " ".join(proc.stdout.split())
    assert re.search(r"exits seed 0: failed \(SystemExit: 3\)", text), text
    assert re.search(r"dies seed 0: failed \(worker process died \(exit code 7\) during 'round 1: heal", text), text

    exited = _failed(tmp_path / "abl", "exits")  # written by the worker, traceback included
    assert exited["error"] == "SystemExit: 3"
    assert "Traceback (most recent call last)" in exited["traceback"]
    died = _failed(tmp_path / "abl", "dies")  # written by the runner: the worker could not
    assert died["error"].startswith("worker process died (exit code 7)")
    assert "no Python traceback" in died["traceback"] and "exit code 7" in died["traceback"]
    assert "round 1: heal" in died["traceback"]
