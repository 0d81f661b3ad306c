"""The base of every component: a class with a ``name`` and validated ``Params``."""

from __future__ import annotations

import types
import typing
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, ValidationInfo, field_validator


def _scalar_types(annotation: Any) -> set[Any]:
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _scalar_types(typing.get_args(annotation)[0])
    if origin is typing.Union or origin is types.UnionType:
        return set().union(*(_scalar_types(a) for a in typing.get_args(annotation)))
    return {annotation}


class Params(BaseModel):
    """Base for every component's ``Params``: unknown keys are errors; give every field a description.

    Scalars are checked, not coerced: an ``int`` field rejects booleans, floats and strings, a ``bool`` field
    anything but true/false, a ``float`` field booleans (numeric strings such as YAML's ``1e-3`` are accepted),
    and no float field accepts inf or NaN.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    @field_validator("*", mode="before")
    @classmethod
    def _no_coercion(cls, value: Any, info: ValidationInfo) -> Any:
        field = cls.model_fields.get(info.field_name or "")
        if field is None or value is None:
            return value
        kinds = _scalar_types(field.annotation)
        numeric = bool(kinds & {int, float})
        if isinstance(value, bool):
            if numeric and bool not in kinds:
                raise ValueError("expected a number, got a boolean")
        elif bool in kinds and not (numeric or kinds & {str, Any}):
            raise ValueError("expected true or false")
        elif int in kinds and not kinds & {float, str, Any} and not isinstance(value, int):
            raise ValueError("expected an integer")
        return value


class Component:
    """Base of every pluggable component.

    Subclasses set ``name`` (the name users write in YAML), ``family`` (set by the family base class),
    an optional one-line ``description``, and a nested ``Params(shl.api.Params)`` model.
    """

    name: ClassVar[str] = ""
    family: ClassVar[str] = ""
    description: ClassVar[str] = ""

    class Params(Params):
        pass

    def __init__(self, params: BaseModel | None = None):
        self.params = params if params is not None else self.Params()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.params!r})"
