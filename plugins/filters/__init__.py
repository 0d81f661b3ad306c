"""Built-in completion filters: tail_ppl, repetition, narration, boilerplate, length."""

from shl.hookspecs import hookimpl

from .boilerplate import Boilerplate
from .length import Length
from .narration import Narration
from .repetition import Repetition
from .tail_ppl import TailPPL

COMPONENTS = (TailPPL, Repetition, Narration, Boilerplate, Length)


@hookimpl
def shl_register_filters(register):
    for cls in COMPONENTS:
        register(cls)
