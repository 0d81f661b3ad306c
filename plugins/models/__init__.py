"""Built-in model sources: hf (any Hugging Face chat model), tiny_random (no download)."""

from shl.hookspecs import hookimpl

from .hf import HF
from .tiny_random import TinyRandom

COMPONENTS = (HF, TinyRandom)


@hookimpl
def shl_register_models(register):
    for cls in COMPONENTS:
        register(cls)
