"""shl-plugin-example: the entry module of an example third-party shl plugin.

shl loads this module through the ``shl`` entry-point group (see pyproject.toml) and calls the hook
implementations below; each calls ``register`` once per component class, and ``shl_register_commands`` once
per command it adds to the ``shl`` command line (``shl example-lam``). Like every plugin entry module, it
imports no torch at import time: torch is imported inside the methods that need it.
"""

from shl.hookspecs import hookimpl

from . import lam_table
from .softmax_max import SoftmaxMax
from .step import Step
from .trimmed_mean_diff import TrimmedMeanDiff

__version__ = "0.1.0"

COMPONENTS = (TrimmedMeanDiff, SoftmaxMax, Step)


@hookimpl
def shl_register_steering_methods(register):
    register(TrimmedMeanDiff)


@hookimpl
def shl_register_aggregators(register):
    register(SoftmaxMax)


@hookimpl
def shl_register_schedules(register):
    register(Step)


@hookimpl
def shl_register_commands(register):
    register(lam_table.NAME, lam_table.HELP, lam_table.add_arguments, lam_table.run)
