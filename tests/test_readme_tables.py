"""The README's results tables agree with the results files that own their numbers (benchmarks/readme_tables.py)."""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _tables():
    spec = importlib.util.spec_from_file_location("shl_readme_tables", ROOT / "benchmarks" / "readme_tables.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_every_readme_table_agrees_with_its_results_file():
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "readme_tables.py")], capture_output=True,
                          text=True, cwd=ROOT)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    tables = _tables()
    assert set(tables.blocks((ROOT / "README.md").read_text())) == set(tables.TABLES)


def _copy(tmp_path: Path) -> Path:
    shutil.copytree(ROOT / "benchmarks" / "results", tmp_path / "benchmarks" / "results")
    shutil.copy(ROOT / "README.md", tmp_path / "README.md")
    return tmp_path


def test_a_changed_number_in_a_results_file_fails_the_check_until_written(tmp_path):
    tables = _tables()
    root = _copy(tmp_path)
    path = root / "benchmarks" / "results" / "ablations" / "barrier_agg.json"
    data = json.loads(path.read_text())
    before = data["comparison"][0]["delta"]
    data["comparison"][0]["delta"] = before + 0.5
    path.write_text(json.dumps(data))
    problems = tables.sync(root / "README.md", root)
    assert problems == ["README.md: table:main_job disagrees with ablations/barrier_agg.json "
                        "(python benchmarks/readme_tables.py --write)"]
    assert f"{before + 0.5:+.3f}" not in (root / "README.md").read_text()
    assert tables.sync(root / "README.md", root, write=True) == []
    assert f"| {before + 0.5:+.3f} |" in (root / "README.md").read_text()
    assert tables.sync(root / "README.md", root) == []


def test_a_hand_edited_table_fails_and_a_missing_file_or_block_is_named(tmp_path):
    tables = _tables()
    root = _copy(tmp_path)
    readme = root / "README.md"
    text = readme.read_text()
    start = text.index("<!-- table:pairs_smollm2")
    row = text.index("| generation:", start)
    readme.write_text(text[:row] + "| generation: edited by hand |" + text[text.index("\n", row):])
    assert tables.sync(readme, root) == ["README.md: table:pairs_smollm2 disagrees with real_model.json "
                                         "(python benchmarks/readme_tables.py --write)"]
    (root / "benchmarks" / "results" / "real_model.json").unlink()
    assert tables.sync(readme, root) == ["table pairs_smollm2: its results file benchmarks/results/real_model.json "
                                         "does not exist"]
    end = text.index("<!-- /table:pairs_smollm2 -->")
    readme.write_text(text[:start] + text[end + len("<!-- /table:pairs_smollm2 -->"):])
    assert tables.sync(readme, root) == ["README.md: no table:pairs_smollm2 block"]


def test_number_formats():
    tables = _tables()
    assert tables.p_value(1.3e-10) == "1.3e-10"
    assert tables.p_value(0.00057) == "5.7e-4"
    assert tables.p_value(0.0025) == "0.003"
    assert tables.duration(570) == "9 min 30 s"
    assert tables.duration(42.4) == "42 s"
    assert tables.signed(0.7104) == "+0.710"
