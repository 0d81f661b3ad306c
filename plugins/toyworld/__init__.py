"""The toy world plugin: a procedurally generated persona language with a known grammar and a tiny Llama
trained on it on first use (see README: "The toy world").

Registers the model source ``toyworld``, the exact evaluator ``toy_exact``, the oracle filter ``grammar`` and
the command ``shl toyworld build|info|sweep``. Imports no torch/transformers at import time.
"""

from __future__ import annotations

from shl.hookspecs import hookimpl

from .cli import COMMAND
from .evaluator import ToyExactEvaluator
from .grammar_filter import GrammarFilter
from .source import ToyWorldSource
from .world import WORLD_VERSION

__all__ = ["ToyWorldSource", "ToyExactEvaluator", "GrammarFilter", "WORLD_VERSION"]


@hookimpl
def shl_register_models(register):
    register(ToyWorldSource)


@hookimpl
def shl_register_evaluators(register):
    register(ToyExactEvaluator)


@hookimpl
def shl_register_filters(register):
    register(GrammarFilter)


@hookimpl
def shl_register_commands(register):
    register(COMMAND)
