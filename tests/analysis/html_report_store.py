"""A small hand-written result store for the report.html tests: three arms x four seeds, seed 3 of `steer`
failed with markup in its message, an arm and an experiment whose names hold markup, and an ablation record."""

from __future__ import annotations

import json

import yaml

from shl_analysis import ComparisonSpec, MetricSpec

from shl.store import RunStore
from fake_rounds import add_round_files

SEEDS = [0, 1, 2, 3]
ROUNDS = 2
EFFECT = {"base": [0.0, 0.0, 0.0, 0.0], "steer": [0.10, 0.20, 0.15, 0.30], "evil": [0.05, -0.02, 0.01, 0.0]}
EVIL_ARM = "<img src=x onerror=alert('arm')>"  # no '/': it names the run directories
EVIL_EXPERIMENT = "toy <b>bold</b> & co"
EVIL_MESSAGE = "<img src=x onerror=alert('msg')>"
PLUGINS = [{"plugin": "filters", "distribution": "shl", "version": "0.1.0"},
           {"plugin": "thirdparty", "distribution": "shl-extra", "version": "2.3.4"}]


def _write_run(root, arm, seed):
    """A run directory written through the store's API; its name and meta.json name the same arm."""
    d = root / "runs" / f"{arm}__seed{seed}__abcdef012345"
    run = RunStore(d)
    run.start({}, {"experiment": EVIL_EXPERIMENT, "arm": arm, "seed": seed, "config_hash": "abcdef012345",
                   "plugins": PLUGINS})
    gain = EFFECT["evil" if arm == EVIL_ARM else arm][seed]
    rows = [{"round": r, "trait": 0.5 + 0.01 * seed + gain * r / ROUNDS, "coherence": 0.9 - gain * r / 10}
            for r in range(ROUNDS + 1)]
    (d / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    if (arm, seed) == ("steer", 3):
        run.fail("failed", EVIL_MESSAGE, "Traceback ...")
    else:
        add_round_files(d, ROUNDS)
        run.finish("complete", "ok", ROUNDS)


SPEC = ComparisonSpec(baseline="base", metrics=[MetricSpec(name="trait"), MetricSpec(name="coherence")])


def make_store(root):
    """Three arms x four seeds (seed 3 of `steer` failed, with markup in its message), an arm and an experiment
    whose names hold markup, and an ablation record."""
    for arm in ("base", "steer", EVIL_ARM):
        for seed in SEEDS:
            _write_run(root, arm, seed)
    record = {"format": "shl-ablation", "version": 2, "name": "toy", "description": "a <i>toy</i> study",
              "arms": {"base": {}, "steer": {}, EVIL_ARM: {}}, "overrides": ["loop.rounds=2"],
              "source": "experiments/my exp.yaml", "plan_seeds": SEEDS, "plan_arms": ["base", "steer", EVIL_ARM]}
    (root / "shl-ablation.yaml").write_text(yaml.safe_dump(record))
    return root
