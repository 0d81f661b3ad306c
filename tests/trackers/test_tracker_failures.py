"""A tracker that fails never fails a run or changes its results: it is named in one warning line and the runs
go on without it. Its library missing (a W&B that cannot be imported) is found once, before the runs; a tracker
that raises during a run (a server gone away) is dropped for the rest of that run."""

from __future__ import annotations

import io
from typing import Any, ClassVar

import pytest
from cli_helpers import run_shl
from rich.console import Console
from tracker_helpers import copy_experiment, tracker_env

import shl
from shl import api, manager
from shl.hookspecs import hookimpl


def same_results(out, plain) -> None:
    runs = [d for d in (out / "runs").iterdir() if d.is_dir()]
    assert runs
    for d in runs:
        assert (d / "DONE.json").is_file()
        assert (d / "metrics.jsonl").read_bytes() == (plain / "abl" / "runs" / d.name / "metrics.jsonl").read_bytes()


@pytest.mark.system
def test_a_missing_library_is_one_warning_and_changes_no_result(plain, tmp_path):
    exp = copy_experiment(plain, tmp_path)
    shadow = tmp_path / "shadow" / "wandb"
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text('raise ImportError("this wandb cannot be imported")\n')
    env = tracker_env(tmp_path, PYTHONPATH=str(tmp_path / "shadow"))
    proc = run_shl("ablate", exp.name, "--out", "abl", "--seeds", "0", "--tracker", "wandb:dir=wb", cwd=tmp_path,
                   env=env)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    lines = [line for line in (proc.stdout + proc.stderr).splitlines() if "tracker" in line]
    assert lines == ["warning: tracker 'wandb': check failed: ImportError: the wandb tracker needs the wandb package: "
                     "pip install 'shl[wandb]' (this wandb cannot be imported); the runs go on without it"]
    assert "Traceback" not in proc.stdout + proc.stderr
    same_results(tmp_path / "abl", plain)
    assert not (tmp_path / "wb").exists() and not (tmp_path / "abl" / "tracked.jsonl").exists()


class Flaky(api.Tracker):
    """Logs into a list; raises on the second metrics row, like a tracker whose server went away."""

    name = "flaky"
    description = "a tracker that fails in the middle of a run"
    calls: ClassVar[list[Any]] = []

    class Params(api.Params):
        pass

    def start_run(self, run: api.TrackedRun) -> None:
        Flaky.calls.append(("start", run.name, run.experiment, run.arm, run.seed))

    def log_metrics(self, step: int, row: dict[str, Any]) -> None:
        Flaky.calls.append(("log", step))
        row.clear()  # a copy: shl's own row is untouched
        if step == 1:
            raise RuntimeError("the server\ngone away")

    def end_run(self, status: str, message: str) -> None:
        Flaky.calls.append(("end", status))


class FlakyPlugin:
    @hookimpl
    def shl_register_trackers(self, register):
        register(Flaky)


def test_a_tracker_failing_during_a_run_is_one_warning_and_changes_no_result(plain, tmp_path, monkeypatch, capsys):
    copy_experiment(plain, tmp_path)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SHL_WORKERS", "1")
    monkeypatch.setattr(manager, "_default_host", manager.make_host(extra_plugins=[("flaky_plugin", FlakyPlugin())]))
    Flaky.calls.clear()
    buf = io.StringIO()
    result = shl.ablate("exp.yaml", seeds=[0], arms=["mean"], out="abl", report=False, trackers=["flaky"],
                        console=Console(file=buf, width=300))
    assert result.ok and [r.status for _, r in result.executed] == ["complete"]
    text = buf.getvalue() + capsys.readouterr().err
    assert [line for line in text.splitlines() if "tracker" in line] == [
        "warning: tracker 'flaky': log_metrics failed: RuntimeError: the server gone away; run mean seed 0 goes on "
        "without it"]
    assert Flaky.calls == [("start", "mean-seed0", "exp", "mean", 0), ("log", 0), ("log", 1)]
    same_results(tmp_path / "abl", plain)
    assert not (tmp_path / "abl" / "tracked.jsonl").exists()  # not logged in full: the next ablate replays it
