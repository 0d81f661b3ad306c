"""Test helpers for plugin authors, published as a pytest plugin (entry point ``pytest11: shl``).

With shl installed, any pytest run gets these fixtures without a conftest:

``shl_host``
    A fresh ``shl.manager.PluginHost`` over the installed plugins (entry-point group ``shl``), built with
    ``shl.manager.make_host()``: what ``shl plugins`` and ``shl run`` see. Honours ``SHL_DISABLE_PLUGINS``.
``shl_host_factory``
    A function ``(extra_plugins=(), entry_points=True) -> PluginHost`` building fresh hosts (``make_host``), e.g.
    to register a plugin module that is not installed: ``shl_host_factory(extra_plugins=[("example", my_module)])``.
    A plugin given in ``extra_plugins`` replaces an installed entry point of the same name or module, so with the
    module under test installed too, it is still registered once and its name clashes show in
    ``host.registry.conflicts``.

and helpers to import:

``make_host(extra_plugins=(), entry_points=True)``
    The same hosts outside a fixture (``shl.manager.make_host``).
``assert_component_contract(cls)``
    Checks that a component class honours the contract of ``shl.api``: a subclass of a family base class,
    a non-empty ``name``, a ``Params`` model deriving from ``shl.api.Params`` with ``extra="forbid"``, a
    description on every field, ``Params()`` constructible from defaults, and ``cls(cls.Params())`` builds.

This module imports no torch (pytest loads it in every test session of an environment with shl).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Iterable

import pytest

if TYPE_CHECKING:  # pragma: no cover
    from .manager import PluginHost

__all__ = ["assert_component_contract", "make_host", "shl_host", "shl_host_factory"]


def make_host(extra_plugins: Iterable[tuple[str, object]] = (), entry_points: bool = True) -> "PluginHost":
    """A fresh plugin host: the installed plugins (``entry_points=True``) plus ``extra_plugins``, a list of
    ``(plugin_name, module)`` pairs (see ``shl.manager.make_host``). What the ``shl_host_factory`` fixture calls."""
    from .manager import make_host as _make_host

    return _make_host(extra_plugins=extra_plugins, entry_points=entry_points)


def assert_component_contract(cls: type, *, require_defaults: bool = True) -> Any:
    """Assert that ``cls`` is a well-formed shl component; return an instance built from default params.

    ``require_defaults=False`` skips the ``Params()``/instance checks for a component whose params have
    required fields (users must then always give them in YAML); ``None`` is returned in that case.
    """
    from pydantic import BaseModel

    from . import api

    assert isinstance(cls, type), f"{cls!r} is not a class"
    family = getattr(cls, "family", "")
    assert family in api.BASE_CLASSES, (
        f"{cls.__name__}.family is {family!r}; subclass one of shl.api's base classes "
        f"({', '.join(b.__name__ for b in api.BASE_CLASSES.values())})"
    )
    base = api.BASE_CLASSES[family]
    assert issubclass(cls, base), f"{cls.__name__} has family {family!r} but is not a subclass of shl.api.{base.__name__}"

    name = getattr(cls, "name", "")
    assert isinstance(name, str) and name.strip(), f"{cls.__name__} has no 'name' (the name users write in YAML)"
    assert name == name.strip() and " " not in name, f"{cls.__name__}.name {name!r} contains whitespace"

    params = cls.__dict__.get("Params", getattr(cls, "Params", None))
    assert isinstance(params, type) and issubclass(params, BaseModel), f"{cls.__name__}.Params is not a pydantic model"
    assert params is not api.Component.Params, (
        f"{cls.__name__} inherits the empty Component.Params; declare `class Params(shl.api.Params)` "
        "(even with no fields) so its params are its own"
    )
    assert issubclass(params, api.Params), f"{cls.__name__}.Params must subclass shl.api.Params"
    assert params.model_config.get("extra") == "forbid", (
        f"{cls.__name__}.Params must forbid unknown keys (model_config extra='forbid'; inherit shl.api.Params)"
    )
    missing = [f for f, info in params.model_fields.items() if not (info.description or "").strip()]
    assert not missing, (
        f"{cls.__name__}.Params field(s) without a description: {', '.join(missing)} "
        "(use pydantic.Field(default, description=...))"
    )
    params.model_json_schema()  # `shl plugins --json` prints it: it must be serialisable

    doc = (getattr(cls, "description", "") or cls.__doc__ or "").strip()
    assert doc, f"{cls.__name__} has neither a 'description' nor a docstring (shown by `shl plugins`)"

    if not require_defaults:
        return None
    try:
        p = params()
    except Exception as exc:  # pragma: no cover - message path
        raise AssertionError(f"{cls.__name__}.Params() is not constructible from defaults: {exc}") from exc
    try:
        return cls(p)
    except Exception as exc:  # pragma: no cover - message path
        raise AssertionError(f"{cls.__name__}(Params()) failed: {type(exc).__name__}: {exc}") from exc


@pytest.fixture
def shl_host_factory() -> Callable[..., "PluginHost"]:
    """Build fresh plugin hosts: ``shl_host_factory(extra_plugins=[(name, module)], entry_points=True)``."""
    def factory(extra_plugins: Iterable[tuple[str, object]] = (), entry_points: bool = True) -> "PluginHost":
        return make_host(extra_plugins=extra_plugins, entry_points=entry_points)

    return factory


@pytest.fixture
def shl_host(shl_host_factory) -> "PluginHost":
    """A fresh plugin host over the installed plugins (what the ``shl`` CLI sees)."""
    return shl_host_factory()
