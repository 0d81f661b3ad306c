"""Built-in generic evaluators: coherence, trait_margin, persona_logodds."""

from shl.hookspecs import hookimpl

from .coherence import Coherence
from .persona_logodds import PersonaLogOdds
from .trait_margin import TraitMargin

COMPONENTS = (Coherence, TraitMargin, PersonaLogOdds)


@hookimpl
def shl_register_evaluators(register):
    for cls in COMPONENTS:
        register(cls)
