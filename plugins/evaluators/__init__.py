"""Built-in generic evaluators: coherence, trait_margin."""

from shl.hookspecs import hookimpl

from .coherence import Coherence
from .trait_margin import TraitMargin

COMPONENTS = (Coherence, TraitMargin)


@hookimpl
def shl_register_evaluators(register):
    for cls in COMPONENTS:
        register(cls)
