"""Which software made the runs: every run records its environment in meta.json, the report names it, and a
comparison of runs made by different library versions says so in one line (which runs, which versions)."""

from __future__ import annotations

import json

from fake_rounds import add_round_files

from shl.store import RunStore
from shl_analysis import ComparisonSpec, MetricSpec, write_report

SPEC = ComparisonSpec(baseline="a", metrics=[MetricSpec(name="trait")])


def _env(torch_version: str) -> dict:
    return {"python": "3.11.7", "cpu": "AMD EPYC", "threads": 2, "device_name": "AMD EPYC",
            "libraries": {"torch": torch_version, "transformers": "5.25.0", "peft": "0.21.2", "tokenizers": "0.23.3",
                          "numpy": "2.4.6"},
            "shl": {"version": "0.1.0", "commit": "0123456789abcdef", "dirty": False}}


def _run(root, arm, seed, env):
    d = root / "runs" / f"{arm}__seed{seed}__abcdef012345"
    store = RunStore(d)
    store.start({}, {"experiment": "e", "arm": arm, "seed": seed, "config_hash": "abcdef012345", "environment": env})
    (d / "metrics.jsonl").write_text("".join(json.dumps({"round": r, "trait": 0.5 + 0.01 * seed + 0.1 * r *
                                                        (arm == "b")}) + "\n" for r in range(2)))
    add_round_files(d, 1)
    store.finish("complete", "ok", 1)


def test_the_report_names_the_software_and_flags_mixed_versions(tmp_path):
    for seed in range(3):
        _run(tmp_path, "a", seed, _env("2.13.0"))
        _run(tmp_path, "b", seed, _env("2.14.1" if seed == 2 else "2.13.0"))
    md = write_report(tmp_path, SPEC, figures=False).markdown
    assert "Software: shl 0.1.0 (commit 0123456789); torch 2.13.0, transformers 5.25.0" in md
    warning = next(line for line in md.splitlines() if "different library versions" in line)
    assert "torch 2.14.1" in warning and "b__seed2__abcdef012345" in warning and "5 runs" in warning
    page = (tmp_path / "report" / "report.html").read_text()
    assert "different library versions" in page and 'id="software"' in page


def test_runs_of_one_install_get_no_warning(tmp_path):
    for seed in range(2):
        for arm in ("a", "b"):
            _run(tmp_path, arm, seed, _env("2.13.0"))
    md = write_report(tmp_path, SPEC, figures=False).markdown
    assert "Software:" in md and "different library versions" not in md


def test_a_run_records_its_environment(tmp_path):
    """A real run (tiny model): meta.json names Python, the libraries, torch's build, the device, the threads and
    shl's version and commit."""
    from shl.config import load_run_config
    from shl.engine.loop import Run
    from shl.manager import get_host

    host = get_host()
    cfg = load_run_config(None, ["model.name=tiny_random", "device=cpu", "steer.n_contexts=4", "dose.steps=0",
                                 "dose.probe_prompts=4", "generate.n_prompts=4", "generate.max_new_tokens=4",
                                 "filters=[]", "heal.epochs=1", "loop.rounds=1", "loop.min_kept=2",
                                 "eval.evaluators=[{name: coherence, params: {n_prompts: 2}}]",
                                 "eval.max_new_tokens=4"], host.registry)
    store = RunStore(tmp_path / "run")
    Run(cfg, host, store).execute()
    env = store.meta()["environment"]
    from importlib import metadata

    assert env["libraries"]["torch"] == metadata.version("torch")
    assert env["libraries"]["transformers"] == metadata.version("transformers")
    assert {"python", "cpu", "threads", "torch_build", "device", "device_name", "shl"} <= set(env)
    assert env["device"] == "cpu" and env["shl"]["version"]
    assert env["shl"]["commit"] is None or len(env["shl"]["commit"]) == 40
