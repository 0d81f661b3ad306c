"""Config models (pydantic v2) and their loading from YAML with overrides."""

from .loading import (
    apply_overrides,
    config_hash,
    load_run_config,
    model_source_name,
    read_yaml,
    resolve_run_config,
    validate_model,
)
from .models import ComponentRef, RunConfig

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
