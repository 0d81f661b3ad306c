"""Trackers are built-in plugins switched on by name only: registered and documented, light to import (no W&B,
MLflow or torch), and checked like any component before anything runs (one-line errors naming the YAML path or
the --tracker option, exit code 2)."""

from __future__ import annotations

import subprocess
import sys

import pytest
from cli_helpers import run_shl, write_experiment

from shl.errors import ConfigError
from shl.manager import make_host
from shl.tracking import merge_trackers, option_trackers, parse_tracker_option, resolve_trackers


@pytest.fixture(scope="module")
def registry():
    return make_host().registry


def test_trackers_are_registered_documented_and_light():
    host = make_host()
    assert not [f for f in host.failures if f["plugin"] == "trackers"]
    assert set(host.registry.names("tracker")) == {"mlflow", "wandb"}
    for name in ("mlflow", "wandb"):
        entry = host.registry.entry("tracker", name)
        assert entry.origin.plugin == "trackers"
        assert entry.cls.description and entry.cls.__doc__
        assert all(f.description for f in entry.cls.Params.model_fields.values()), name
    code = ("import sys, shl_plugins.trackers, shl.tracking\n"
            "heavy = [m for m in ('wandb', 'mlflow', 'torch') if m in sys.modules]\n"
            "assert not heavy, heavy\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr


def test_tracker_option_parsing():
    assert parse_tracker_option("wandb") == {"name": "wandb", "params": {}}
    assert parse_tracker_option("mlflow:tracking_uri=sqlite:///m.db,experiment=x") == {
        "name": "mlflow", "params": {"tracking_uri": "sqlite:///m.db", "experiment": "x"}}
    assert parse_tracker_option(" x : a=1, b=true ,c=") == {"name": "x", "params": {"a": 1, "b": True, "c": ""}}
    for bad in (":x", "wandb:mode", "wandb:=offline"):
        with pytest.raises(ConfigError, match="expected NAME or NAME:key=value"):
            parse_tracker_option(bad)


def test_refs_are_resolved_with_defaults_and_merged(registry):
    yaml_refs = resolve_trackers(["wandb", {"name": "mlflow", "params": {"experiment": "e"}}], registry, "exp.yaml")
    assert yaml_refs[0] == {"name": "wandb", "params": {"project": "shl", "entity": None, "mode": None, "dir": None,
                                                        "tags": []}}
    assert yaml_refs[1]["params"]["experiment"] == "e"
    cli = option_trackers(["wandb:project=p,mode=offline"], registry)
    merged = merge_trackers(yaml_refs, cli)
    assert [r["name"] for r in merged] == ["mlflow", "wandb"]
    assert merged[1]["params"]["project"] == "p" and merged[1]["params"]["mode"] == "offline"


@pytest.mark.parametrize("trackers, args, line", [
    ([{"name": "wandbb"}], [],
     "error: exp.yaml: trackers[0].name: unknown tracker 'wandbb' (did you mean 'wandb'?); available: mlflow, wandb"),
    (["mlflow", {"name": "wandb", "params": {"mode": "offlin"}}], [],
     "error: exp.yaml: trackers[1].params.mode: Input should be 'online', 'offline' or 'disabled' (got 'offlin') "
     "(plugin 'wandb' from 'trackers')"),
    ([], ["--tracker", "mlflow:experimant=x"],
     "error: --tracker mlflow:experimant=x: tracker.params.experimant: unknown key (plugin 'mlflow' from 'trackers')"),
    ([], ["--tracker", "wandb:mode"], "error: --tracker wandb:mode: expected NAME or NAME:key=value,key=value"),
])
def test_bad_trackers_are_one_line_errors_before_anything_runs(tmp_path, trackers, args, line):
    exp = write_experiment(tmp_path, trackers=trackers)
    proc = run_shl("ablate", exp.name, "--out", "abl", "--dry-run", *args, cwd=tmp_path)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert proc.stderr.splitlines() == [line]
    assert not (tmp_path / "abl").exists()
