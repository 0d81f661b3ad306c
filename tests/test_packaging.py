"""Every Python package in the source tree is in pyproject's explicit package list, so a built (non-editable)
wheel ships it; an editable install hides a missing one."""

from __future__ import annotations

from pathlib import Path

import pytest

tomllib = pytest.importorskip("tomllib")  # Python 3.11+

ROOT = Path(__file__).resolve().parent.parent


def test_every_package_directory_is_listed():
    setuptools = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(setuptools["packages"])
    roots = {"shl": ROOT / "shl", **{name: ROOT / d for name, d in setuptools["package-dir"].items()}}
    found = set()
    for name, top in roots.items():
        for init in top.rglob("__init__.py"):
            rel = init.parent.relative_to(top)
            found.add(".".join((name, *rel.parts)))
    missing = sorted(p for p in found if p not in listed and not p.startswith("shl_plugins.data."))
    assert not missing, f"packages missing from pyproject.toml [tool.setuptools] packages: {missing}"
    stale = sorted(p for p in listed if p not in found and p != "shl_plugins.data")
    assert not stale, f"listed packages with no __init__.py: {stale}"
