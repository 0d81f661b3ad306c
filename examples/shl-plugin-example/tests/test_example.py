"""Tests of the example plugin, written against shl's published pytest fixtures (shl.testing).

They run whether or not the plugin is installed: ``shl_host_factory`` registers the module directly.
"""

from __future__ import annotations

import argparse
import math
import subprocess
import sys

import pytest
from pydantic import ValidationError

import shl_plugin_example
from shl.cli import BUILTIN_COMMANDS
from shl.errors import ConfigError
from shl.plugin_commands import collect_commands
from shl.testing import assert_component_contract
from shl_plugin_example import COMPONENTS, SoftmaxMax, Step, TrimmedMeanDiff


@pytest.fixture
def host(shl_host_factory):
    # entry_points=False: only this plugin, so the test does not depend on what else is installed
    return shl_host_factory(extra_plugins=[("example", shl_plugin_example)], entry_points=False)


@pytest.mark.parametrize("cls", COMPONENTS, ids=lambda c: c.name)
def test_contract(cls):
    assert_component_contract(cls)


def test_registers_every_component(host):
    assert host.failures == [] and host.registry.conflicts == []
    assert host.registry.names("steering") == ["trimmed_mean_diff"]
    assert host.registry.names("aggregator") == ["softmax_max"]
    assert host.registry.names("schedule") == ["step"]
    assert host.registry.entry("aggregator", "softmax_max").origin.plugin == "example"


def test_no_clash_with_installed_plugins(shl_host_factory):
    # together with every installed plugin (shl's built-ins included), the names must stay unique. If this
    # package is installed too, its entry point gives way to the copy registered here (same module), so the
    # module is registered exactly once, under "example-under-test", and a clash would be listed below.
    # The command names too, against shl's own commands and every installed plugin's (collected first: a
    # command registration that fails is recorded in host.failures).
    host = shl_host_factory(extra_plugins=[("example-under-test", shl_plugin_example)])
    commands = collect_commands(host, BUILTIN_COMMANDS)
    assert [f for f in host.failures if f["plugin"] == "example-under-test"] == []  # it really registered
    assert host.registry.entry("aggregator", "softmax_max").origin.plugin == "example-under-test"
    assert [c for c in host.registry.conflicts if "example-under-test" in c] == []
    assert [c for c in commands.conflicts if "example-under-test" in c] == []
    assert "example-lam" in [c.command.name for c in commands.commands]


def test_params_are_validated(host):
    with pytest.raises(ValidationError, match=r"temperature\n  Input should be greater than 0"):
        host.registry.build("aggregator", "softmax_max", {"temperature": 0})
    with pytest.raises(ValidationError, match=r"temprature\n  Extra inputs are not permitted"):
        host.registry.build("aggregator", "softmax_max", {"temprature": 1.0})  # unknown key
    with pytest.raises(ValidationError, match=r"trim\n  Input should be less than 0.5"):
        host.registry.build("steering", "trimmed_mean_diff", {"trim": 0.5})
    assert host.registry.build("schedule", "step", {"at": 2}).params.factor == 0.5


def test_entry_module_imports_no_torch():
    code = (
        "import sys; import shl_plugin_example; "
        "assert 'torch' not in sys.modules, 'torch imported at import time'"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=str(_root()))


def _root():
    from pathlib import Path

    return Path(shl_plugin_example.__file__).resolve().parent.parent


# ----------------------------------------------------------------------------------------- behaviour


def test_trimmed_mean_diff_drops_outlier_pairs():
    torch = pytest.importorskip("torch")
    g = torch.Generator().manual_seed(0)
    neg = torch.randn(10, 4, generator=g)
    pos = neg + torch.tensor([1.0, 0.0, 0.0, 0.0])
    pos[3] += 100.0  # one wild pair
    v = TrimmedMeanDiff(TrimmedMeanDiff.Params(trim=0.1)).fit(pos, neg)
    assert torch.allclose(v, torch.tensor([1.0, 0.0, 0.0, 0.0]), atol=1e-5)
    # trim = 0 is plain mean-diff
    v0 = TrimmedMeanDiff(TrimmedMeanDiff.Params(trim=0.0)).fit(pos, neg)
    assert torch.allclose(v0, pos.mean(0) - neg.mean(0), atol=1e-5)


def test_trimmed_mean_diff_keeps_one_pair_and_checks_shapes():
    torch = pytest.importorskip("torch")
    pos, neg = torch.ones(1, 3), torch.zeros(1, 3)
    assert torch.equal(TrimmedMeanDiff(TrimmedMeanDiff.Params(trim=0.49)).fit(pos, neg), torch.ones(3))
    with pytest.raises(ValueError, match=r"same shape \[n, d\]; got \(2, 3\) and \(3, 3\)"):
        TrimmedMeanDiff().fit(torch.ones(2, 3), torch.ones(3, 3))
    with pytest.raises(ValueError, match="no activation pairs"):
        TrimmedMeanDiff().fit(torch.ones(0, 3), torch.ones(0, 3))


def test_softmax_max_between_mean_and_max_and_differentiable():
    torch = pytest.importorskip("torch")
    kl = torch.tensor([0.0, 0.1, 0.2, 3.0], requires_grad=True)
    for t in (0.01, 0.5, 1.0, 100.0):
        d = SoftmaxMax(SoftmaxMax.Params(temperature=t)).aggregate(kl)
        assert d.ndim == 0 and d.dtype == torch.float32
        assert kl.mean() - 1e-5 <= d <= kl.max() + 1e-5
    assert math.isclose(SoftmaxMax(SoftmaxMax.Params(temperature=1e-3)).aggregate(kl).item(), 3.0, abs_tol=1e-2)
    assert math.isclose(SoftmaxMax(SoftmaxMax.Params(temperature=1e4)).aggregate(kl).item(),
                        kl.mean().item(), abs_tol=1e-3)
    d = SoftmaxMax(SoftmaxMax.Params(temperature=0.5)).aggregate(kl)
    d.backward()
    assert torch.isfinite(kl.grad).all() and (kl.grad > 0).all()
    assert math.isclose(kl.grad.sum().item(), 1.0, rel_tol=1e-5)  # softmax weights
    # equal KL everywhere: D is that value, for any temperature
    same = torch.full((5,), 0.3)
    assert math.isclose(SoftmaxMax().aggregate(same).item(), 0.3, rel_tol=1e-5)
    # huge KL does not overflow
    assert torch.isfinite(SoftmaxMax(SoftmaxMax.Params(temperature=0.01)).aggregate(torch.tensor([1e4, 0.0])))


def test_softmax_max_empty_raises():
    torch = pytest.importorskip("torch")
    with pytest.raises(ValueError, match="no KL positions"):
        SoftmaxMax().aggregate(torch.zeros(0))


def test_step_schedule():
    s = Step(Step.Params(at=2, factor=0.25))
    assert [s.lam(r, 2.0) for r in range(4)] == [2.0, 2.0, 0.5, 0.5]
    assert Step(Step.Params(at=0, factor=0.0)).lam(0, 1.0) == 0.0


def test_example_lam_command(host, capsys):
    found = collect_commands(host, BUILTIN_COMMANDS)
    assert found.conflicts == [] and [c.command.name for c in found.commands] == ["example-lam"]
    command = found.commands[0].command
    parser = argparse.ArgumentParser(prog="shl example-lam")
    command.add_arguments(parser)
    assert command.handler(parser.parse_args(["--at", "1", "--factor", "0.5", "--lam", "2", "--rounds", "3"])) == 0
    assert capsys.readouterr().out.splitlines() == ["step schedule (at=1, factor=0.5), base lam 2",
                                                    "round 0: lam 2", "round 1: lam 1", "round 2: lam 1"]
    with pytest.raises(ConfigError, match=r"^--factor: Input should be greater than or equal to 0 \(got -1.0\)"):
        command.handler(parser.parse_args(["--factor", "-1"]))
    with pytest.raises(ConfigError, match=r"^--rounds: must be >= 1, got 0"):
        command.handler(parser.parse_args(["--rounds", "0"]))
