"""Where a run config names its components, derived from ``shl.api.FAMILY_TABLE``; and the model's source.

A family's ``slot`` is a dotted path in ``RunConfig`` (``heal.barrier.aggregator``); a ``many`` slot holds a
list, whose items are named ``filters[0]``, ``filters[1]``... The model slot is special: its name is a
registered model source, or else a Hugging Face id or local path, loaded by the ``hf`` source, which gets it as
its ``name_or_path`` param (see ``model_source``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Iterator, Union

from ..api import FAMILY_TABLE, Family
from .models import ComponentRef, ModelConfig, RunConfig

if TYPE_CHECKING:  # pragma: no cover
    from ..registry import Registry

HF_SOURCE = "hf"
"""The model source that loads a model name that is not a registered model source (an HF id or a path)."""


def _field_order(path: str) -> tuple[int, ...]:
    """Where the dotted ``path`` sits among RunConfig's fields (the order of a config file's sections)."""
    model: Any = RunConfig
    out = []
    for key in path.split("."):
        out.append(list(model.model_fields).index(key))
        model = model.model_fields[key].annotation
    return tuple(out)


SLOT_FAMILIES: tuple[Family, ...] = tuple(
    sorted((f for f in FAMILY_TABLE if f.slot is not None), key=lambda f: _field_order(f.slot))
)
"""The families a run config names members of, in the order of the config's fields (model first)."""


def _at(node: Any, path: str) -> Any:
    for key in path.split("."):
        node = node.get(key) if isinstance(node, dict) else getattr(node, key, None)
        if node is None:
            return None
    return node


def _ref(value: Any) -> ComponentRef:
    if isinstance(value, ComponentRef):
        return value
    if isinstance(value, str):
        return ComponentRef(name=value)
    if isinstance(value, dict):
        return ComponentRef(name=value.get("name", ""), params=value.get("params") or {})
    return ComponentRef(name=value.name, params=value.params)


def component_slots(
    cfg: RunConfig | dict[str, Any], registry: Registry | None = None
) -> Iterator[tuple[str, str, ComponentRef]]:
    """``(YAML path, family, ref)`` of every component ``cfg`` names, in the order of its fields: the model,
    ``steer.method``, ``filters[0]``, ... A list slot that is null (before resolution fills the model source's
    defaults) yields nothing. The model's ref is its name and params as written; with a ``registry``, the source
    it loads with instead (``model_source``). ``cfg``: a RunConfig, or a config mapping (``model_dump``)."""
    for fam in SLOT_FAMILIES:
        value = _at(cfg, fam.slot)
        if value is None:
            continue
        if fam.many:
            for i, item in enumerate(value):
                yield f"{fam.slot}[{i}]", fam.name, _ref(item)
        elif fam.name == "model" and registry is not None:
            yield fam.slot, fam.name, model_source(registry, _ref(value))
        else:
            yield fam.slot, fam.name, _ref(value)


def set_component(cfg: RunConfig, path: str, ref: ComponentRef) -> None:
    """Put ``ref`` at a YAML path ``component_slots`` yields (``heal.schedule``, ``filters[0]``) of ``cfg``."""
    dotted, _, index = path.partition("[")
    *parents, last = dotted.split(".")
    node: Any = cfg
    for key in parents:
        node = getattr(node, key)
    if index:
        getattr(node, last)[int(index.rstrip("]"))] = ref
    else:
        setattr(node, last, ref)


def model_source_name(registry: Registry, name: str) -> str:
    """A registered model source name is used as is; anything else is an HF id or path for the 'hf' source."""
    return name if name in registry.names("model") else HF_SOURCE


def model_source(registry: Registry, model: Union[ComponentRef, ModelConfig]) -> ComponentRef:
    """The model source a config's ``model`` loads with, and that source's params: a registered source with the
    params as written, or (for an HF id or path) the 'hf' source with the name as ``name_or_path``."""
    name = model_source_name(registry, model.name)
    if name == HF_SOURCE and model.name != HF_SOURCE:
        return ComponentRef(name=name, params={"name_or_path": model.name, **model.params})
    return ComponentRef(name=name, params=dict(model.params))
