"""End to end: third-party plugin packages, really built and installed, seen by the real ``shl`` CLI.

Each package (the example in examples/shl-plugin-example, plus a broken one, one with a clashing component
name and one with clashing command names, built here) is installed once per session with ``pip install --no-deps --no-build-isolation --target DIR``
into its own directory under pytest's tmp dir, and the CLI runs in a subprocess with ``PYTHONPATH=DIR``:
the same entry-point discovery (importlib.metadata over sys.path) as a site-packages install, without
touching the shared environment (a clashing plugin installed there would break every other ``shl`` call
running meanwhile). The directories are removed at the end of the session, pass or fail.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
EXAMPLE_SRC = REPO / "examples" / "shl-plugin-example"

EXAMPLE_COMPONENTS = {("steering", "trimmed_mean_diff"), ("aggregator", "softmax_max"), ("schedule", "step")}

TINY_RUN = {
    "name": "thirdparty",
    "seed": 0,
    "device": "cpu",
    "model": {"name": "tiny_random"},
    "steer": {"method": "trimmed_mean_diff", "n_contexts": 8},
    "dose": {"probe_prompts": 8, "steps": 1},
    "generate": {"n_prompts": 8, "max_new_tokens": 12},
    "filters": [],
    "heal": {
        "epochs": 1,
        "schedule": {"name": "step", "params": {"at": 1}},
        "barrier": {"aggregator": {"name": "softmax_max", "params": {"temperature": 0.5}}},
    },
    "eval": {"max_new_tokens": 12, "evaluators": [{"name": "coherence", "params": {"n_prompts": 8}}, {"name": "trait_margin", "params": {"n_prompts": 4}}]},
    "loop": {"rounds": 1},
}


# --------------------------------------------------------------------------------------------- helpers


def _pip_install_target(src: Path, target: Path) -> None:
    target.mkdir(parents=True)
    cmd = [
        sys.executable, "-m", "pip", "install", "--no-deps", "--no-build-isolation", "--no-index", "-q",
        "--target", str(target), str(src),
    ]
    env = {**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, f"pip install {src.name} failed:\n{proc.stdout}\n{proc.stderr}"


def _make_package(root: Path, dist: str, module: str, entry: str, code: str) -> Path:
    """A minimal plugin distribution: pyproject.toml + one entry module."""
    root.mkdir(parents=True)
    (root / "pyproject.toml").write_text(
        textwrap.dedent(
            f"""\
            [build-system]
            requires = ["setuptools>=68"]
            build-backend = "setuptools.build_meta"

            [project]
            name = "{dist}"
            version = "0.0.1"
            dependencies = ["shl"]

            [project.entry-points.shl]
            {entry} = "{module}"

            [tool.setuptools]
            packages = ["{module}"]
            """
        )
    )
    (root / module).mkdir()
    (root / module / "__init__.py").write_text(textwrap.dedent(code))
    return root


@pytest.fixture(scope="session")
def plugin_sites(tmp_path_factory):
    """Installs each package at most once per session (on first use); removes every install at the end."""
    base = tmp_path_factory.mktemp("shl_thirdparty")
    sites: dict[str, Path] = {}

    def site(kind: str) -> Path:
        if kind not in sites:
            target = base / f"site-{kind}"
            if kind == "example":
                src = base / "src-example"
                shutil.copytree(
                    EXAMPLE_SRC, src,
                    ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__", ".pytest_cache", "tests"),
                )
            elif kind == "broken":
                src = _make_package(
                    base / "src-broken", "shl-plugin-broken", "shl_plugin_broken", "broken",
                    """\
                    raise ImportError("shl_plugin_broken needs the 'frobnicate' package")
                    """,
                )
            elif kind == "dup":
                src = _make_package(
                    base / "src-dup", "shl-plugin-dup", "shl_plugin_dup", "dup",
                    """\
                    from pydantic import Field

                    from shl import api
                    from shl.hookspecs import hookimpl


                    class MyRMSE(api.Aggregator):
                        \"\"\"An aggregator whose name clashes with the built-in 'rmse'.\"\"\"

                        name = "rmse"

                        class Params(api.Params):
                            eps: float = Field(1e-6, gt=0, description="epsilon")

                        def aggregate(self, kl):
                            return (kl.float().square().mean() + self.params.eps).sqrt()


                    @hookimpl
                    def shl_register_aggregators(register):
                        register(MyRMSE)
                    """,
                )
            elif kind == "cmdclash":
                src = _make_package(
                    base / "src-cmdclash", "shl-plugin-cmdclash", "shl_plugin_cmdclash", "cmdclash",
                    """\
                    from shl.hookspecs import hookimpl


                    def _nothing(parser):
                        pass


                    @hookimpl
                    def shl_register_commands(register):
                        register("run", "a second 'shl run'", _nothing, lambda args: 0)
                        register("toyworld", "a second 'shl toyworld'", _nothing, lambda args: 0)
                        register("cmdclash-ok", "a command of its own", _nothing, lambda args: 0)
                    """,
                )
            else:  # pragma: no cover
                raise KeyError(kind)
            _pip_install_target(src, target)
            sites[kind] = target
        return sites[kind]

    try:
        yield site
    finally:
        for target in sites.values():
            shutil.rmtree(target, ignore_errors=True)


def _shl_cmd() -> list[str]:
    script = Path(sys.executable).with_name("shl")
    if script.exists():
        return [str(script)]
    return [sys.executable, "-c", "import sys; from shl.cli import main; sys.exit(main())"]


def run_shl(*args: str, site: Path | None = None, cwd: Path, env: dict[str, str] | None = None,
            timeout: float = 600) -> subprocess.CompletedProcess:
    full_env = {k: v for k, v in os.environ.items() if k != "SHL_DISABLE_PLUGINS"}
    full_env.setdefault("OMP_NUM_THREADS", "1")
    if site is not None:
        full_env["PYTHONPATH"] = os.pathsep.join(p for p in (str(site), os.environ.get("PYTHONPATH", "")) if p)
    full_env.update(env or {})
    return subprocess.run(_shl_cmd() + list(args), capture_output=True, text=True, cwd=cwd, env=full_env,
                          timeout=timeout)


def write_config(path: Path, data: dict) -> Path:
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def _error_lines(proc: subprocess.CompletedProcess) -> list[str]:
    return [line for line in proc.stderr.splitlines() if line.startswith("error:")]


# --------------------------------------------------------------------------------------------- the example


def test_plugins_lists_example_components(plugin_sites, tmp_path):
    site = plugin_sites("example")
    proc = run_shl("plugins", "--json", site=site, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["failures"] == [] and out["conflicts"] == []
    mine = {(r["family"], r["name"]): r for r in out["components"] if r["plugin"] == "example"}
    assert set(mine) == EXAMPLE_COMPONENTS
    for row in mine.values():
        assert row["distribution"] == "shl-plugin-example"
        assert row["version"] == "0.1.0"
        assert row["description"]
    assert mine[("aggregator", "softmax_max")]["params"]["properties"]["temperature"]["exclusiveMinimum"] == 0
    # the built-ins are still there, from shl itself
    builtin = {(r["family"], r["name"]): r for r in out["components"]}
    assert builtin[("aggregator", "rmse")]["plugin"] == "aggregators"
    assert builtin[("aggregator", "rmse")]["distribution"] == "shl"

    text = run_shl("plugins", site=site, cwd=tmp_path, env={"COLUMNS": "250"})
    assert text.returncode == 0, text.stderr
    for _, name in EXAMPLE_COMPONENTS:
        assert name in text.stdout
    assert "shl-plugin-example 0.1.0" in text.stdout


def test_validate_and_run_with_example_components(plugin_sites, tmp_path):
    site = plugin_sites("example")
    cfg = write_config(tmp_path / "run.yaml", TINY_RUN)

    proc = run_shl("validate", str(cfg), site=site, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    resolved = yaml.safe_load(proc.stdout)
    assert resolved["steer"]["method"] == {"name": "trimmed_mean_diff", "params": {"trim": 0.1}}
    assert resolved["heal"]["barrier"]["aggregator"] == {"name": "softmax_max", "params": {"temperature": 0.5}}
    assert resolved["heal"]["schedule"] == {"name": "step", "params": {"at": 1, "factor": 0.5}}

    out = tmp_path / "rundir"
    proc = run_shl("run", str(cfg), "--out", str(out), site=site, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    done = json.loads((out / "DONE.json").read_text())
    assert done["status"] == "complete", done
    meta = json.loads((out / "meta.json").read_text())
    plugins = {p["plugin"]: p for p in meta["plugins"]}
    assert plugins["example"] == {"plugin": "example", "distribution": "shl-plugin-example", "version": "0.1.0"}
    assert "aggregators" in plugins  # the built-ins are recorded the same way


def test_invalid_plugin_params_is_one_line_error(plugin_sites, tmp_path):
    site = plugin_sites("example")
    bad = json.loads(json.dumps(TINY_RUN))
    bad["heal"]["barrier"]["aggregator"]["params"]["temperature"] = -1
    cfg = write_config(tmp_path / "bad.yaml", bad)
    for command in (["validate", str(cfg)], ["run", str(cfg), "--out", str(tmp_path / "never")]):
        proc = run_shl(*command, site=site, cwd=tmp_path)
        assert proc.returncode == 2, (command, proc.stderr)
        assert "Traceback" not in proc.stderr
        errors = _error_lines(proc)
        assert len(errors) == 1, proc.stderr
        line = errors[0]
        assert "heal.barrier.aggregator.params.temperature" in line
        assert "softmax_max" in line and "'example'" in line
    assert not (tmp_path / "never" / "DONE.json").exists()


def test_disabled_plugin_names_are_unknown(plugin_sites, tmp_path):
    site = plugin_sites("example")
    cfg = write_config(tmp_path / "run.yaml", TINY_RUN)
    env = {"SHL_DISABLE_PLUGINS": "example"}

    proc = run_shl("validate", str(cfg), site=site, cwd=tmp_path, env=env)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    errors = _error_lines(proc)
    assert len(errors) == 3, proc.stderr  # every unknown name of the file, one line each
    assert "steer.method.name" in errors[0] and "unknown steering 'trimmed_mean_diff'" in errors[0]
    assert "available:" in errors[0] and "mean_diff" in errors[0]
    assert "heal.schedule.name: unknown schedule 'step'" in errors[1]
    assert "heal.barrier.aggregator.name: unknown aggregator 'softmax_max'" in errors[2]
    # ... and each says which disabled plugin provides the name
    for line in errors:
        assert ("provided by plugin 'example' (shl-plugin-example 0.1.0), which is disabled "
                "(SHL_DISABLE_PLUGINS names 'example')") in line, line

    listing = run_shl("plugins", "--json", site=site, cwd=tmp_path, env=env)
    assert listing.returncode == 0, listing.stderr
    out = json.loads(listing.stdout)
    assert "example" in out["disabled"]
    assert not [r for r in out["components"] if r["plugin"] == "example"]


def test_example_command_runs_through_the_shl_script(plugin_sites, tmp_path):
    """``shl example-lam``: registered by the installed example through ``shl_register_commands``, run by the real
    ``shl`` console script, listed by ``shl --help`` and ``shl plugins``; its input errors are shl's one line."""
    site = plugin_sites("example")
    proc = run_shl("example-lam", "--at", "2", "--factor", "0.25", "--lam", "0.4", "--rounds", "3", site=site,
                   cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == ["step schedule (at=2, factor=0.25), base lam 0.4",
                                        "round 0: lam 0.4", "round 1: lam 0.4", "round 2: lam 0.1"]

    helptext = run_shl("--help", site=site, cwd=tmp_path)
    assert helptext.returncode == 0, helptext.stderr
    assert "example-lam" in helptext.stdout and "under the 'step' schedule" in helptext.stdout
    sub = run_shl("example-lam", "--help", site=site, cwd=tmp_path)
    assert sub.returncode == 0 and "usage: shl example-lam" in sub.stdout and "--factor" in sub.stdout

    bad = run_shl("example-lam", "--factor", "-1", site=site, cwd=tmp_path)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    assert _error_lines(bad) == ["error: --factor: Input should be greater than or equal to 0 (got -1.0) "
                                 "(plugin 'example')"], bad.stderr

    listing = run_shl("plugins", "--json", site=site, cwd=tmp_path)
    assert listing.returncode == 0, listing.stderr
    commands = {c["name"]: c for c in json.loads(listing.stdout)["commands"]}
    assert commands["example-lam"]["plugin"] == "example"
    assert commands["example-lam"]["distribution"] == "shl-plugin-example"
    assert commands["toyworld"]["plugin"] == "toyworld" and commands["toyworld"]["distribution"] == "shl"

    gone = run_shl("example-lam", site=site, cwd=tmp_path, env={"SHL_DISABLE_PLUGINS": "example"})
    assert gone.returncode == 2 and "invalid choice: 'example-lam'" in gone.stderr


# --------------------------------------------------------------------------------------------- broken / clash


def test_broken_plugin_is_reported_not_fatal(plugin_sites, tmp_path):
    site = plugin_sites("broken")
    proc = run_shl("plugins", site=site, cwd=tmp_path, env={"COLUMNS": "250"})
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr
    assert "broken plugin 'broken'" in proc.stdout
    assert "frobnicate" in proc.stdout
    assert "mean_diff" in proc.stdout  # everything else still listed

    listing = run_shl("plugins", "--json", site=site, cwd=tmp_path)
    assert listing.returncode == 0, listing.stderr
    failures = json.loads(listing.stdout)["failures"]
    assert [f["plugin"] for f in failures] == ["broken"]
    assert failures[0]["distribution"] == "shl-plugin-broken"
    assert "ImportError" in failures[0]["error"]

    normal = dict(TINY_RUN, steer={"method": "mean_diff", "n_contexts": 8},
                  heal={"epochs": 1, "barrier": {"aggregator": "rmse"}})
    cfg = write_config(tmp_path / "normal.yaml", normal)
    proc = run_shl("validate", str(cfg), site=site, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr


def test_duplicate_name_names_both_plugins(plugin_sites, tmp_path):
    site = plugin_sites("dup")
    proc = run_shl("plugins", site=site, cwd=tmp_path, env={"COLUMNS": "250"})
    assert "Traceback" not in proc.stdout + proc.stderr
    assert proc.returncode == 2
    text = " ".join(proc.stdout.split())  # undo rich's line wrapping
    assert "duplicate aggregator name 'rmse'" in text
    assert "plugin 'aggregators'" in text and "plugin 'dup'" in text

    listing = run_shl("plugins", "--json", site=site, cwd=tmp_path)
    conflicts = json.loads(listing.stdout)["conflicts"]
    assert len(conflicts) == 1
    assert "'aggregators' (shl 0.1.0)" in conflicts[0] and "'dup' (shl-plugin-dup 0.0.1)" in conflicts[0]

    # a clash is an error for any command that would pick components by name
    cfg = write_config(tmp_path / "run.yaml", dict(TINY_RUN, steer={"method": "mean_diff"},
                                                   heal={"barrier": {"aggregator": "mean"}}))
    proc = run_shl("validate", str(cfg), site=site, cwd=tmp_path)
    assert proc.returncode == 2
    errors = _error_lines(proc)
    assert len(errors) == 1 and "duplicate aggregator name 'rmse'" in errors[0], proc.stderr


_CLASH_RECIPE = """
import json, sys, importlib
from shl.testing import make_host
module = importlib.import_module(sys.argv[1])
host = make_host(extra_plugins=[(sys.argv[2], module)])
print(json.dumps({"failures": host.failures, "conflicts": host.registry.conflicts}))
"""


def _clash_recipe(site, module: str, name: str, tmp_path) -> dict:
    """CONTRIBUTING's clash check (the plugin under test as an extra plugin, next to every installed one) run
    in a process that sees ``site``."""
    env = {k: v for k, v in os.environ.items() if k != "SHL_DISABLE_PLUGINS"}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(site), os.environ.get("PYTHONPATH", "")) if p)
    proc = subprocess.run([sys.executable, "-c", _CLASH_RECIPE, module, name], capture_output=True, text=True,
                          cwd=tmp_path, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_clash_recipe_checks_an_installed_plugin(plugin_sites, tmp_path):
    """With the plugin under test installed too, the recipe still registers it (pluggy would refuse a second
    copy of the module, which then landed in failures while the conflict check passed without checking)."""
    out = _clash_recipe(plugin_sites("example"), "shl_plugin_example", "example-under-test", tmp_path)
    assert out["failures"] == [] and out["conflicts"] == []


def test_clash_recipe_fails_on_a_clashing_installed_plugin(plugin_sites, tmp_path):
    """The recipe can fail: the clashing plugin, installed and under test, is reported under the name given."""
    out = _clash_recipe(plugin_sites("dup"), "shl_plugin_dup", "dup-under-test", tmp_path)
    assert out["failures"] == []
    mine = [c for c in out["conflicts"] if "dup-under-test" in c]
    assert len(mine) == 1 and "duplicate aggregator name 'rmse'" in mine[0], out


def test_example_clash_test_with_the_example_installed(plugin_sites):
    """The example's own clash test, run where the example is installed (the case that used to pass vacuously)."""
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1"), "PYTHONDONTWRITEBYTECODE": "1"}
    env.pop("SHL_DISABLE_PLUGINS", None)
    site = plugin_sites("example")
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(site), os.environ.get("PYTHONPATH", "")) if p)
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-k", "clash", str(EXAMPLE_SRC)],
        capture_output=True, text=True, cwd=EXAMPLE_SRC, env=env, timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert "1 passed" in proc.stdout


def test_example_own_test_suite_passes(tmp_path):
    """The example's own tests (what a plugin author runs) pass against this checkout of shl."""
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1"), "PYTHONDONTWRITEBYTECODE": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(EXAMPLE_SRC)],
        capture_output=True, text=True, cwd=EXAMPLE_SRC, env=env, timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert " passed" in proc.stdout


def test_clashing_command_names_name_the_plugin(plugin_sites, tmp_path):
    """A plugin command named like a built-in, or like another plugin's, is an error naming the plugin: one line
    each, exit 2, for ``shl --help`` and every plugin command; ``shl plugins`` lists them; disabling the plugin
    makes them usable again."""
    site = plugin_sites("cmdclash")
    proc = run_shl("--help", site=site, cwd=tmp_path)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert _error_lines(proc) == [
        "error: plugin 'cmdclash' (shl-plugin-cmdclash 0.0.1) registers the command 'run', which is a built-in shl "
        "command; rename it (SHL_DISABLE_PLUGINS=cmdclash skips the plugin)",
        "error: duplicate command 'toyworld': registered by plugin 'cmdclash' (shl-plugin-cmdclash 0.0.1) and by "
        "plugin 'toyworld' (shl 0.1.0)",
    ], proc.stderr
    assert _error_lines(run_shl("cmdclash-ok", site=site, cwd=tmp_path)) == _error_lines(proc)
    assert run_shl("validate", "--help", site=site, cwd=tmp_path).returncode == 0  # built-ins load no commands

    listing = run_shl("plugins", "--json", site=site, cwd=tmp_path)
    assert listing.returncode == 2, listing.stderr
    out = json.loads(listing.stdout)
    assert len(out["conflicts"]) == 2 and all("'cmdclash'" in c for c in out["conflicts"])
    assert "cmdclash-ok" in {c["name"] for c in out["commands"]}

    fine = run_shl("--help", site=site, cwd=tmp_path, env={"SHL_DISABLE_PLUGINS": "cmdclash"})
    assert fine.returncode == 0 and "toyworld" in fine.stdout and "cmdclash-ok" not in fine.stdout
