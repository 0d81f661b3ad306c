"""Built-in barrier aggregators: mean, rmse, max, p95."""

from shl.hookspecs import hookimpl

from .max import Max
from .mean import Mean
from .p95 import P95
from .rmse import RMSE

COMPONENTS = (Mean, RMSE, Max, P95)


@hookimpl
def shl_register_aggregators(register):
    for cls in COMPONENTS:
        register(cls)
