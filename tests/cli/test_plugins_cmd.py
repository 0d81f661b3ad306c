"""`shl plugins`, `--help` of every command, a fast `--help` (no torch import), and commands from plugins
(``shl_register_commands``: in-process through ``shl.cli.main`` with extra plugins, and ``shl toyworld``)."""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from cli_helpers import run_shl, shl_env

from shl import manager
from shl.api import FAMILIES
from shl.cli import main
from shl.errors import ConfigError
from shl.hookspecs import hookimpl
from shl.plugin_commands import Command
from shl.testing import make_host

EXPECTED = ["mean_diff", "svd", "cosine_gated", "rmse", "max", "mean", "p95", "constant", "power", "tail_ppl",
            "repetition", "tiny_random", "hf"]


def test_plugins_lists_builtin_components(tmp_path: Path):
    proc = run_shl("plugins", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    for name in EXPECTED:
        assert name in proc.stdout, name
    assert "shl" in proc.stdout  # the distribution


def test_plugins_json(tmp_path: Path):
    proc = run_shl("plugins", "--json", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    components = data["components"]
    names = {c["name"] for c in components}
    assert set(EXPECTED) <= names
    for c in components:
        assert c["plugin"], c
        assert c["distribution"] == "shl", c
        assert c["version"], c
        assert isinstance(c["params"], dict) and c["params"].get("type") == "object", c
        assert c["family"] in FAMILIES, c
    p95 = next(c for c in components if c["name"] == "p95")
    assert "q" in p95["params"]["properties"]
    assert data["failures"] == [] and data["conflicts"] == [] and data["disabled"] == []


def test_disable_plugins_env(tmp_path: Path):
    proc = run_shl("plugins", "--json", cwd=tmp_path, env=shl_env(SHL_DISABLE_PLUGINS="aggregators"))
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    names = {c["name"] for c in data["components"]}
    assert "rmse" not in names and "p95" not in names
    assert "mean_diff" in names
    assert "aggregators" in data["disabled"]
    table = run_shl("plugins", cwd=tmp_path, env=shl_env(SHL_DISABLE_PLUGINS="aggregators"))
    assert table.returncode == 0
    assert "rmse" not in table.stdout
    assert "aggregators" in table.stdout  # reported as disabled


@pytest.mark.parametrize(
    "args",
    [(), ("--help",), ("plugins", "--help"), ("validate", "--help"), ("run", "--help"), ("ablate", "--help"),
     ("report", "--help"), ("toyworld", "--help"), ("toyworld", "build", "--help"), ("toyworld", "info", "--help"),
     ("toyworld", "sweep", "--help")],
)
def test_help(tmp_path: Path, args):
    proc = run_shl(*args, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "usage: shl" in proc.stdout
    assert "Traceback" not in proc.stderr


def test_version(tmp_path: Path):
    proc = run_shl("--version", cwd=tmp_path)
    assert proc.returncode == 0
    assert proc.stdout.startswith("shl ")


def test_unknown_command_is_a_usage_error(tmp_path: Path):
    proc = run_shl("frobnicate", cwd=tmp_path)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr


def test_help_does_not_import_torch(tmp_path: Path):
    code = (
        "import sys\n"
        "from shl.cli import main\n"
        "for argv in (['--help'], ['ablate', '--help'], []):\n"
        "    try:\n"
        "        main(argv)\n"
        "    except SystemExit:\n"
        "        pass\n"
        "heavy = [m for m in ('torch', 'transformers', 'peft', 'pandas', 'matplotlib') if m in sys.modules]\n"
        "print('HEAVY=' + ','.join(heavy))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=shl_env(), capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "HEAVY=\n" in proc.stdout or proc.stdout.rstrip().endswith("HEAVY="), proc.stdout[-500:]


# --------------------------------------------------------------------------------------------- plugin commands


def test_toyworld_is_a_command_of_the_toyworld_plugin(tmp_path: Path):
    listing = run_shl("plugins", "--json", cwd=tmp_path)
    assert listing.returncode == 0, listing.stderr
    commands = json.loads(listing.stdout)["commands"]
    assert [(c["name"], c["plugin"], c["distribution"]) for c in commands] == [("models", "models", "shl"),
                                                                                 ("toyworld", "toyworld", "shl")]

    off = shl_env(SHL_DISABLE_PLUGINS="toyworld")
    helptext = run_shl("--help", cwd=tmp_path, env=off)
    assert helptext.returncode == 0 and "toyworld" not in helptext.stdout
    proc = run_shl("toyworld", "info", cwd=tmp_path, env=off)
    assert proc.returncode == 2 and "invalid choice: 'toyworld'" in proc.stderr

    proc = run_shl("toyworld", cwd=tmp_path)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip() == "error: toyworld: choose an action: build, info or sweep (see shl toyworld --help)"


def test_builtin_command_names_are_the_parsers():
    from shl.cli import BUILTIN_COMMANDS, build_parser

    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    assert tuple(sub.choices) == BUILTIN_COMMANDS


class _Greeter:
    """A plugin object adding two commands, one in each form ``register`` accepts."""

    @hookimpl
    def shl_register_commands(self, register):
        def add_arguments(parser):
            parser.add_argument("who")
            parser.add_argument("--times", type=int, default=1)

        def greet(args):
            if args.who == "nobody":
                raise ConfigError("greet: who: nobody to greet (plugin 'greeter')")
            print("\n".join([f"hello {args.who}"] * args.times))
            return 3 if args.who == "three" else None

        register("greet", "say hello", add_arguments, greet)
        register(Command("wave", "wave at everyone", lambda p: None, lambda args: 0, usage="wave [nothing]",
                         summary="a wave"))


class _Clasher:
    @hookimpl
    def shl_register_commands(self, register):
        register("ablate", "another ablate", lambda p: None, lambda args: 0)


class _Broken:
    def __init__(self, how: str):
        self.how = how

    @hookimpl
    def shl_register_commands(self, register):
        if self.how == "name":
            register("two words", "bad name", lambda p: None, lambda args: 0)
        elif self.how == "handler":
            register("nohandler", "no handler", lambda p: None, "not callable")
        else:
            register("badargs", "add_arguments raises", lambda p: p.add_argument("--x", type="nope"), lambda a: 0)


def _main(monkeypatch, argv, *plugins):
    """``shl.cli.main(argv)`` in this process with a host of the installed plugins plus ``plugins``."""
    monkeypatch.setattr(manager, "_default_host", make_host(extra_plugins=list(plugins)))
    try:
        return main(argv)
    except SystemExit as exc:  # argparse: --help, usage errors
        return exc.code


def test_plugin_commands_run_and_are_listed(monkeypatch, capsys):
    greeter = ("greeter", _Greeter())
    assert _main(monkeypatch, ["greet", "world", "--times", "2"], greeter) == 0
    assert capsys.readouterr().out == "hello world\nhello world\n"
    assert _main(monkeypatch, ["greet", "three"], greeter) == 3  # the handler's exit code
    capsys.readouterr()

    assert _main(monkeypatch, ["--help"], greeter) == 0
    out = capsys.readouterr().out
    listed = re.findall(r"^    (\w+) +(.*)$", out[:out.index("options:")], re.M)
    assert [name for name, _ in listed][-5:] == ["sample", "greet", "models", "toyworld", "wave"]  # after the built-ins
    assert dict(listed)["greet"] == "say hello" and dict(listed)["wave"] == "wave at everyone"
    overview = out[out.index("commands:\n"):].splitlines()
    greet = overview.index("  shl greet" + " " * 36 + "say hello")  # the built-ins' column
    wave = overview.index("  shl wave [nothing]" + " " * 27 + "a wave")
    report = next(i for i, line in enumerate(overview) if line.startswith("  shl report"))
    export = next(i for i, line in enumerate(overview) if line.startswith("  shl export"))
    assert report < greet < wave < export  # after the ablation workflow, before the tools that read one run

    assert _main(monkeypatch, ["greet", "nobody"], greeter) == 2  # ShlError: one line, exit 2, no traceback
    err = capsys.readouterr().err
    assert err == "error: greet: who: nobody to greet (plugin 'greeter')\n"


def test_plugin_command_clashing_with_a_builtin_is_one_error_line(monkeypatch, capsys):
    assert _main(monkeypatch, ["--help"], ("clasher", _Clasher())) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == ("error: plugin 'clasher' registers the command 'ablate', which is a built-in shl "
                            "command; rename it (SHL_DISABLE_PLUGINS=clasher skips the plugin)\n")
    assert _main(monkeypatch, ["plugins", "--json"], ("clasher", _Clasher())) == 2
    assert any("'ablate'" in c for c in json.loads(capsys.readouterr().out)["conflicts"])


@pytest.mark.parametrize("how, why", [("name", "command name 'two words' is not one word"),
                                      ("handler", "command 'nohandler': handler must be callable"),
                                      ("args", "ValueError: 'nope' is not callable")])
def test_broken_command_registration_is_a_broken_plugin(monkeypatch, capsys, how, why):
    assert _main(monkeypatch, ["--help"], ("broken", _Broken(how))) == 0  # the rest of shl keeps working
    assert "toyworld" in capsys.readouterr().out
    failures = manager._default_host.failures
    assert [f["plugin"] for f in failures] == ["broken"]
    assert failures[0]["error"].startswith("failed in shl_register_commands: ") and why in failures[0]["error"]
