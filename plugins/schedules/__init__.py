"""Built-in lambda schedules: constant, power, cosine, linear."""

from shl.hookspecs import hookimpl

from .constant import Constant
from .cosine import Cosine
from .linear import Linear
from .power import Power

COMPONENTS = (Constant, Power, Cosine, Linear)


@hookimpl
def shl_register_schedules(register):
    for cls in COMPONENTS:
        register(cls)
