"""Built-in steering methods: mean_diff, svd, cosine_gated, from_file, and random (the control)."""

from shl.hookspecs import hookimpl

from .cosine_gated import CosineGated
from .from_file import FromFile
from .mean_diff import MeanDiff
from .random_direction import RandomDirection
from .svd import SVD

COMPONENTS = (MeanDiff, SVD, CosineGated, FromFile, RandomDirection)


@hookimpl
def shl_register_steering_methods(register):
    for cls in COMPONENTS:
        register(cls)
