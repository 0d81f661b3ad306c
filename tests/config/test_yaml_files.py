"""Every YAML file shl reads: one clear line for a duplicate key, an empty, binary or directory path, and
``base:`` chains (run configs too) with cycle and experiment-as-base detection."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from cli_helpers import TINY_RUN, run_shl, write_experiment, write_run_config

from shl.config.experiment import load_experiment
from shl.config.loading import load_run_config, read_yaml
from shl.errors import ConfigError


def _one_line_error(fn, *args) -> str:
    with pytest.raises(ConfigError) as info:
        fn(*args)
    msg = str(info.value)
    assert "\n" not in msg, msg
    return msg


def test_duplicate_top_level_key_names_key_file_and_line(tmp_path: Path):
    path = tmp_path / "c.yaml"
    path.write_text("heal:\n  lam: 0.5\nloop:\n  rounds: 2\nheal:\n  lr: 0.01\n")
    msg = _one_line_error(load_run_config, path)
    assert msg == f"{path}: duplicate key 'heal' at line 5 (first at line 1)"


def test_duplicate_nested_key_and_in_an_experiment(tmp_path: Path):
    path = tmp_path / "c.yaml"
    path.write_text("heal:\n  lam: 0.5\n  epochs: 1\n  lam: 0.7\n")
    assert _one_line_error(read_yaml, path) == f"{path}: duplicate key 'lam' at line 4 (first at line 2)"
    exp = write_experiment(tmp_path)
    exp.write_text(exp.read_text() + "arms:\n  a: {}\n")
    assert "duplicate key 'arms'" in _one_line_error(load_experiment, exp)


def test_merge_keys_may_be_overridden(tmp_path: Path):
    path = tmp_path / "c.yaml"
    path.write_text("defaults: &d {lam: 1.0, lr: 0.01}\nheal:\n  <<: *d\n  lam: 0.5\nother:\n  <<: *d\n")
    data = read_yaml(path)
    assert data["heal"] == {"lam": 0.5, "lr": 0.01} and data["other"] == {"lam": 1.0, "lr": 0.01}


@pytest.mark.parametrize("text", ["", "\n\n", "# only a comment\n", "---\n"])
def test_empty_file_is_one_line(tmp_path: Path, text: str):
    path = tmp_path / "c.yaml"
    path.write_text(text)
    assert _one_line_error(load_run_config, path).startswith(f"{path}: the file is empty")
    assert _one_line_error(load_experiment, path).startswith(f"{path}: the file is empty")


def test_binary_file_is_one_line(tmp_path: Path):
    path = tmp_path / "c.yaml"
    path.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\xff\xfe")
    assert "is not UTF-8 text" in _one_line_error(load_run_config, path)
    assert "is not UTF-8 text" in _one_line_error(load_experiment, path)
    path.write_bytes(b"name: a\x00b\n")
    assert "is not a YAML text file" in _one_line_error(load_run_config, path)


def test_directory_is_one_line(tmp_path: Path):
    assert _one_line_error(load_run_config, tmp_path) == f"{tmp_path}: is a directory, not a run config"
    assert _one_line_error(load_experiment, tmp_path) == f"{tmp_path}: is a directory, not an experiment file"


def test_syntax_error_is_one_line(tmp_path: Path):
    path = tmp_path / "c.yaml"
    path.write_text("heal:\n  lam: [1, 2\nloop: {}\n")
    assert "YAML syntax error at line" in _one_line_error(load_run_config, path)


# ------------------------------------------------------------------------------------ base:


def test_run_config_base_chain_is_deep_merged_relative_to_each_file(tmp_path: Path):
    (tmp_path / "sub").mkdir()
    write_run_config(tmp_path / "sub", "root.yaml")
    (tmp_path / "sub" / "mid.yaml").write_text("base: root.yaml\nheal: {lam: 0.5}\nloop: {rounds: 3}\n")
    top = tmp_path / "top.yaml"
    top.write_text("base: sub/mid.yaml\nheal: {lr: 0.01}\n")
    cfg = load_run_config(top)
    assert cfg.heal.lam == 0.5 and cfg.heal.lr == 0.01 and cfg.heal.epochs == TINY_RUN["heal"]["epochs"]
    assert cfg.loop.rounds == 3 and cfg.model.name == "tiny_random"
    assert load_run_config(top, ["heal.lam=0.25"]).heal.lam == 0.25


def test_base_cycle_is_one_line(tmp_path: Path):
    (tmp_path / "a.yaml").write_text("base: b.yaml\nheal: {lam: 0.5}\n")
    (tmp_path / "b.yaml").write_text("base: a.yaml\nloop: {rounds: 3}\n")
    a, b = tmp_path / "a.yaml", tmp_path / "b.yaml"
    assert _one_line_error(load_run_config, a) == f"{a}: base: cycle {a} -> {b} -> {a}"
    (tmp_path / "self.yaml").write_text("base: self.yaml\n")
    assert "base: cycle" in _one_line_error(load_run_config, tmp_path / "self.yaml")


def test_experiment_base_cycle_through_run_configs(tmp_path: Path):
    (tmp_path / "a.yaml").write_text("base: b.yaml\n")
    (tmp_path / "b.yaml").write_text("base: a.yaml\n")
    exp = write_experiment(tmp_path)
    raw = yaml.safe_load(exp.read_text())
    exp.write_text(yaml.safe_dump({**raw, "base": "a.yaml"}))
    assert "base: cycle" in _one_line_error(load_experiment, exp)


def test_experiment_base_that_is_an_experiment_says_so(tmp_path: Path):
    other = write_experiment(tmp_path, "other.yaml")
    exp = write_experiment(tmp_path)
    raw = yaml.safe_load(exp.read_text())
    exp.write_text(yaml.safe_dump({**raw, "base": other.name}))
    msg = _one_line_error(load_experiment, exp)
    assert msg == f"{exp}: base: {other} is an experiment (it has 'arms:'); a base must be a run config"
    exp.write_text(yaml.safe_dump({**raw, "base": exp.name}))  # itself: a cycle
    assert "base: cycle" in _one_line_error(load_experiment, exp)


def test_experiment_base_chain_and_mapping_base(tmp_path: Path):
    write_run_config(tmp_path, "root.yaml")
    (tmp_path / "mid.yaml").write_text("base: root.yaml\nheal: {lam: 0.5}\n")
    exp = write_experiment(tmp_path)
    raw = yaml.safe_load(exp.read_text())
    exp.write_text(yaml.safe_dump({**raw, "base": "mid.yaml"}))
    _, base = load_experiment(exp)
    assert base["heal"]["lam"] == 0.5 and base["model"]["name"] == "tiny_random" and "base" not in base
    exp.write_text(yaml.safe_dump({**raw, "base": {"base": "mid.yaml", "loop": {"rounds": 4}}}))
    _, base = load_experiment(exp)
    assert base["heal"]["lam"] == 0.5 and base["loop"]["rounds"] == 4


def test_missing_or_bad_base(tmp_path: Path):
    path = tmp_path / "c.yaml"
    path.write_text("base: nope.yaml\n")
    assert _one_line_error(load_run_config, path) == f"{tmp_path / 'nope.yaml'}: no such file"
    path.write_text("base: [1]\n")
    assert "base: expected the path of a run config file" in _one_line_error(load_run_config, path)


def test_run_config_that_is_an_experiment_and_vice_versa(tmp_path: Path):
    exp = write_experiment(tmp_path)
    assert "is an experiment" in _one_line_error(load_run_config, exp)
    run = write_run_config(tmp_path)
    assert "is a run config" in _one_line_error(load_experiment, run)


# ------------------------------------------------------------------------------------ the real CLI


def test_cli_prints_one_line_for_a_duplicate_key_and_a_directory(tmp_path: Path):
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(TINY_RUN) + "heal: {lam: 2.0}\n")
    proc = run_shl("validate", path, cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    out = (proc.stdout + proc.stderr).strip().splitlines()
    assert len(out) == 1 and out[0].startswith("error: ") and "duplicate key 'heal'" in out[0], out
    assert "Traceback" not in proc.stderr
    proc = run_shl("validate", tmp_path, cwd=tmp_path)
    assert proc.returncode == 2 and "is a directory" in proc.stderr and "no such file" not in proc.stderr


def test_alias_bomb_and_deep_nesting_are_one_line(tmp_path: Path):
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 8)]
    path = tmp_path / "bomb.yaml"
    path.write_text("\n".join(lines) + "\n")
    assert "too large to be a run config: more than" in _one_line_error(load_run_config, path)
    path.write_text("steer: " + "[" * 100 + "]" * 100 + "\n")
    assert "nested deeper than" in _one_line_error(load_run_config, path)


def test_huge_config_file_is_refused_by_size(tmp_path: Path):
    path = tmp_path / "big.yaml"
    path.write_text("".join(f"key{i}: {i}\n" for i in range(200_000)))
    msg = _one_line_error(load_run_config, path)
    assert msg.startswith(f"{path}: ") and "too large for a run config" in msg
    assert "too large for an experiment file" in _one_line_error(load_experiment, path)
