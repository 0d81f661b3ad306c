"""Steering methods: paired activations -> a steering vector, and how it is applied."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

from .component import Component

if TYPE_CHECKING:  # pragma: no cover
    import torch


@dataclass(frozen=True)
class SteeringPlan:
    """What a run will ask of its steering method, known before anything is loaded (``check_plan``).

    ``layers``: the resolved ``steer.layers`` (0-based decoder-layer indices: layer k is steered at the OUTPUT of
    decoder block k), or None when the model's depth is not known without loading it. ``num_layers`` and
    ``hidden_size``: the model's, from its source (None = unknown until loaded). ``rounds``: ``loop.rounds``;
    round indices run 0..rounds-1.
    """

    layers: tuple[int, ...] | None
    num_layers: int | None
    hidden_size: int | None
    rounds: int


class SteeringMethod(Component):
    """Turns paired activations into a steering vector, and applies it.

    ``fit`` receives, for ONE layer, the reduced hidden states of the positive-persona prompts ``pos`` and of
    the negative-persona prompts ``neg`` (float32, shape [n, d], row i of both from the same context) and
    returns a vector of shape [d]. Its norm is the method's natural dose at coefficient 1 (mean-diff: the raw
    difference of means), so doses are comparable across methods.

    ``fit_layer`` is what the engine calls, once per steered layer and heal round: the same arguments plus
    ``layer`` (the 0-based decoder-layer index; the vector is added to the output of that block) and
    ``round_index`` (0-based, as in ``vectors/round_<i>.safetensors``). The default returns ``fit(pos, neg)``;
    override it when the vector depends on where or when it is used (``from_file`` reads layer ``layer`` of a
    file). Optional: ``check_plan(plan)`` checks a run's layers and model before anything runs (``shl validate``,
    planning); raise ``ValueError`` with a one-line reason.

    ``apply`` adds the vector to hidden states ``h`` ([batch, seq, d], any float dtype) at coefficient
    ``coeff`` and returns the new hidden states. The default is ``h + coeff * v`` at every position; override
    it for gated rules. It must not modify ``h`` in place.
    """

    family: ClassVar[str] = "steering"

    def fit(self, pos: "torch.Tensor", neg: "torch.Tensor") -> "torch.Tensor":
        raise NotImplementedError

    def fit_layer(self, pos: "torch.Tensor", neg: "torch.Tensor", *, layer: int, round_index: int) -> "torch.Tensor":
        return self.fit(pos, neg)

    def check_plan(self, plan: SteeringPlan) -> None:
        return None

    def apply(self, h: "torch.Tensor", v: "torch.Tensor", coeff: float) -> "torch.Tensor":
        return h + coeff * v.to(dtype=h.dtype, device=h.device)

    @classmethod
    def static_addition(cls) -> bool:
        """Whether ``apply`` is the plain ``h + coeff * v`` at every position (not overridden), so the vector can
        leave shl as a fixed control vector (llama.cpp, repeng)."""
        return cls.apply is SteeringMethod.apply
