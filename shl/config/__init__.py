"""Config models (pydantic v2) and their loading from YAML with overrides.

``models``: the run config; ``experiment``: the experiment file and its plan of runs. Loading a run config
(``loading``) reads YAML (``reading``), applies ``--set`` overrides (``overrides``), reports validation errors
one line each (``validation_errors``), resolves the components each slot names (``slots``, ``resolving``) and
runs the pre-run checks (``checks``). ``identity``: the hash that names a run.
"""

from .identity import config_hash
from .loading import load_run_config
from .models import ComponentRef, RunConfig
from .overrides import apply_overrides
from .reading import read_yaml
from .resolving import resolve_run_config
from .slots import model_source_name
from .validation_errors import validate_model

__all__ = [
    "ComponentRef",
    "RunConfig",
    "apply_overrides",
    "config_hash",
    "load_run_config",
    "model_source_name",
    "read_yaml",
    "resolve_run_config",
    "validate_model",
]
