"""The tracker example in CONTRIBUTING.md works as written: its code block, registered as a plugin and switched
on by name for a real (in-process) ablation, mirrors every metrics row and the run's end."""

from __future__ import annotations

import pytest
import io
import json
import re
from pathlib import Path

from rich.console import Console
from tracker_helpers import copy_experiment, metrics_rows, numeric

import shl
from shl import manager
from shl.hookspecs import hookimpl

pytestmark = pytest.mark.system  # a whole run with the CONTRIBUTING example tracker

CONTRIBUTING = Path(__file__).resolve().parents[2] / "CONTRIBUTING.md"


def example_class() -> type:
    text = CONTRIBUTING.read_text().split("### Example: a tracker", 1)[1]
    code = re.search(r"```python\n(.*?)```", text, re.S).group(1)
    namespace: dict = {"__name__": "contributing_example"}
    exec(compile(code, str(CONTRIBUTING), "exec"), namespace)
    return namespace["JsonlMirror"]


def test_the_contributing_example_tracker_mirrors_a_run(plain, tmp_path, monkeypatch):
    cls = example_class()

    class Plugin:
        @hookimpl
        def shl_register_trackers(self, register):
            register(cls)

    copy_experiment(plain, tmp_path)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SHL_WORKERS", "1")
    monkeypatch.setattr(manager, "_default_host", manager.make_host(extra_plugins=[("example_tracker", Plugin())]))
    result = shl.ablate("exp.yaml", seeds=[1], arms=["rmse"], out="abl", report=False,
                        trackers=["jsonl_mirror:path=mirror.jsonl"], console=Console(file=io.StringIO()))
    assert result.ok
    (run_dir,) = [d for d in (tmp_path / "abl" / "runs").iterdir() if d.is_dir()]
    label = {"experiment": "exp", "arm": "rmse", "seed": 1}
    expected = [{**label, "step": row["round"], **numeric(row)} for row in metrics_rows(run_dir)]
    done = json.loads((run_dir / "DONE.json").read_text())
    expected.append({**label, "status": "complete", "message": done["message"]})
    assert [json.loads(line) for line in (tmp_path / "mirror.jsonl").read_text().splitlines()] == expected
    record = [json.loads(line) for line in (tmp_path / "abl" / "tracked.jsonl").read_text().splitlines()]
    assert record == [{"tracker": "jsonl_mirror", "key": record[0]["key"], "run": run_dir.name}]
