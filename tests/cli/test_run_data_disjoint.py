"""`shl run` refuses steering data whose held-out evaluation prompts overlap the training prompts or contexts."""

from __future__ import annotations

import yaml
from cli_helpers import run_shl, write_run_config


def test_overlapping_eval_prompts_are_a_one_line_error_naming_the_file(tmp_path):
    data = {
        "positive": {"name": "care", "system": "You are caring."},
        "negative": {"name": "authority", "system": "You are strict."},
        "contexts": ["How do I start a garden?", "What should I cook tonight?"],
        "prompts": ["Tell me about rain.", "Describe the sea.", "Plan my weekend."],
        "eval_prompts": ["What is patience?", "Describe the sea.", "Plan my  weekend."],
    }
    (tmp_path / "leaky.yaml").write_text(yaml.safe_dump(data))
    cfg = write_run_config(tmp_path, data="leaky.yaml")
    proc = run_shl("run", cfg.name, "--out", "out", cwd=tmp_path)
    assert proc.returncode == 2, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, proc.stderr
    assert "leaky.yaml: eval_prompts:" in lines[0]
    assert "2 in prompts (e.g. 'Describe the sea.')" in lines[0]
