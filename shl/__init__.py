"""shl: steer, heal, loop. An ablation testbed for distilling steering vectors into LoRA adapters."""

from .hookspecs import hookimpl, hookspec

__version__ = "0.1.0"

__all__ = ["ablate", "hookimpl", "hookspec"]


def ablate(experiment, options=None, console=None, **kwargs):
    """Run an experiment's arms x seeds and compare them: ``shl.ablate("experiments/barrier_agg.yaml",
    seeds="0-9", out="runs/mine")``. See ``shl.runner.ablate`` and ``shl.runner.AblateOptions``."""
    from .runner import ablate as _ablate

    return _ablate(experiment, options, console, **kwargs)
