from __future__ import annotations

import subprocess
import sys

import pytest

from shl.manager import make_host

EXPECTED = {
    "steering": {"mean_diff", "svd", "cosine_gated", "from_file"},
    "aggregator": {"mean", "rmse", "max", "p95"},
    "schedule": {"constant", "power", "cosine", "linear"},
    "filter": {"tail_ppl", "repetition", "narration", "boilerplate", "length"},
    "evaluator": {"coherence", "trait_margin"},
    "model": {"hf", "tiny_random"},
}
FAMILY_MODULES = ["steering", "aggregators", "schedules", "filters", "evaluators", "models"]


@pytest.fixture(scope="module")
def host():
    return make_host()


def test_entry_points_register_builtins(host):
    assert not [f for f in host.failures if f["plugin"] in FAMILY_MODULES]
    assert not host.registry.conflicts
    for family, names in EXPECTED.items():
        assert names <= set(host.registry.names(family)), family
        for name in names:
            assert host.registry.entry(family, name).origin.plugin in FAMILY_MODULES


def test_every_component_is_documented(host):
    rows = {(r["family"], r["name"]): r for r in host.registry.describe()}
    for family, names in EXPECTED.items():
        for name in names:
            cls = host.registry.get(family, name)
            assert cls.description and "\n" not in cls.description
            assert cls.__doc__ and cls.__doc__.strip()
            for field_name, field in cls.Params.model_fields.items():
                assert field.description, f"{family} {name}: Params.{field_name} has no description"
            assert rows[(family, name)]["params"]["type"] == "object"


def test_build_with_defaults(host):
    for family, names in EXPECTED.items():
        for name in names - {"hf", "from_file"}:  # their required params have no default
            assert host.registry.build(family, name).name == name


def test_family_modules_do_not_import_torch():
    mods = ", ".join(f"shl_plugins.{m}" for m in FAMILY_MODULES)
    code = (
        f"import sys, {mods}\n"
        "heavy = [m for m in ('torch', 'transformers', 'peft') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
