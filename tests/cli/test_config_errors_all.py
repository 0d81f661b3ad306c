"""Config errors: every problem of a file at once (one line each, capped), and a problem that a ``--set`` override
caused is blamed on that override, not on the file."""

from __future__ import annotations

from pathlib import Path

from cli_helpers import run_shl, write_run_config


def _errors(proc) -> list[str]:
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert all(line.startswith("error: ") for line in lines), proc.stderr
    return lines


def test_every_component_error_of_a_file_is_reported(tmp_path: Path):
    cfg = write_run_config(
        tmp_path,
        filters=[{"name": "no_such_filter"}],
        heal={"barrier": {"aggregator": "no_such_aggregator"},
              "schedule": {"name": "constant", "params": {"bogus": 1}}},
    )
    for command in ("validate", "run"):
        lines = _errors(run_shl(command, cfg.name, cwd=tmp_path))
        assert len(lines) == 3, lines
        assert lines[0].startswith("error: tiny.yaml: filters[0].name: unknown filter 'no_such_filter'")
        assert lines[1].startswith("error: tiny.yaml: heal.schedule.params.bogus: unknown key")
        assert lines[2].startswith("error: tiny.yaml: heal.barrier.aggregator.name: unknown aggregator "
                                   "'no_such_aggregator'")
    assert not (tmp_path / "runs").exists()  # nothing ran


def test_core_and_component_errors_together(tmp_path: Path):
    cfg = write_run_config(
        tmp_path,
        steer={"method": {"name": "mean_diff", "params": {"bogus": 1}}, "n_contexts": "many"},
        heal={"lam": "abc", "barrier": {"aggregator": {"name": "p95", "params": {"q": 2}}}},
    )
    lines = _errors(run_shl("validate", cfg.name, cwd=tmp_path))
    assert len(lines) == 4, lines
    text = "\n".join(lines)
    for needle in ("tiny.yaml: steer.n_contexts: Input should be a valid integer",
                   "tiny.yaml: heal.lam: Input should be a valid number",
                   "tiny.yaml: steer.method.params.bogus: unknown key (plugin 'mean_diff' from 'steering')",
                   "tiny.yaml: heal.barrier.aggregator.params.q: Input should be less than or equal to 1 (got 2) "
                   "(plugin 'p95' from 'aggregators')"):
        assert needle in text, (needle, text)


def test_set_errors_name_the_override(tmp_path: Path):
    cfg = write_run_config(tmp_path)
    lines = _errors(run_shl("validate", cfg.name, "--set", "heal.lam=abc", cwd=tmp_path))
    assert len(lines) == 1
    assert lines[0].startswith("error: --set heal.lam=abc: heal.lam: Input should be a valid number"), lines
    assert "tiny.yaml" not in lines[0]

    # a plugin's params written by --set (the component given by name in the file, then renamed by --set)
    lines = _errors(run_shl("run", cfg.name, "--set", "heal.barrier.aggregator.name=p95",
                            "--set", "heal.barrier.aggregator.params.q=2", "--out", "never", cwd=tmp_path))
    assert lines == ["error: --set heal.barrier.aggregator.params.q=2: heal.barrier.aggregator.params.q: Input "
                     "should be less than or equal to 1 (got 2) (plugin 'p95' from 'aggregators')"], lines
    assert not (tmp_path / "never").exists()


def test_errors_in_the_file_and_from_set_are_told_apart(tmp_path: Path):
    cfg = write_run_config(tmp_path, heal={"barrier": {"aggregator": "no_such_aggregator"}})
    lines = _errors(run_shl("validate", cfg.name, "--set", "heal.lr=-1", "--set", "steer.method=nope",
                            cwd=tmp_path))
    assert len(lines) == 3, lines
    assert lines[0].startswith("error: --set heal.lr=-1: heal.lr: Input should be greater than 0")
    assert lines[1].startswith("error: --set steer.method=nope: steer.method.name: unknown steering 'nope'")
    assert lines[2].startswith("error: tiny.yaml: heal.barrier.aggregator.name: unknown aggregator")
