"""A steering vector made elsewhere, read from a file instead of fitted."""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Any, Optional

from pydantic import Field

from shl import api
from shl.errors import ShlError

if TYPE_CHECKING:  # pragma: no cover
    import torch

ROUND_FIELD = "{round}"


class FromFile(api.SteeringMethod):
    """Uses a vector from a file as the round's steering vector: a llama.cpp control vector (GGUF: repeng's
    ``export_gguf``, llama.cpp's cvector-generator, ``shl export --control-vector``) or shl's own
    ``vectors/round_<i>.safetensors``. The activations the engine extracts are ignored.

    Layers: ``direction.N`` (GGUF) and ``layer_N`` (safetensors) are both steered at the output of decoder block
    N, i.e. ``steer.layers`` index N (``shl.control_vector``). ``steer.layers`` must name exactly the file's layers
    (or, with ``subset``, some of them). The vector is used as stored: with a fixed dose of 1
    (``dose.controller: false``, ``dose.kappa_max: 1``, ``dose.scale: 1``) a file from ``shl export
    --control-vector`` steers at the dose of the run it came from. Checked against the model's hidden size and
    depth at plan time (``check_plan``).
    """

    name = "from_file"
    description = "a steering vector read from a file: llama.cpp control vector (GGUF) or shl safetensors"

    class Params(api.Params):
        path: str = Field(
            description="the vector file (.gguf control vector or shl .safetensors); '{round}' in it is replaced by "
            "the heal round index (0-based, as in vectors/round_<i>.safetensors); a relative path is taken from the "
            "directory shl runs in"
        )
        sha256: Optional[str] = Field(
            None, pattern=r"^[0-9a-f]{64}$",
            description="expected sha256 of the file (of every round's file with '{round}'); the run hash covers "
            "the params, not the file's content, so pin it to make a changed file a new run",
        )
        subset: bool = Field(
            False, description="allow steer.layers to use some of the file's layers (the others are not applied, "
            "like llama.cpp's --control-vector-layer-range); default: steer.layers must be exactly the file's layers"
        )

    def __init__(self, params: Any = None):
        super().__init__(params)
        self._files: dict[str, Any] = {}

    def path_for(self, round_index: int) -> str:
        return self.params.path.replace(ROUND_FIELD, str(round_index))

    def load(self, round_index: int) -> Any:
        """The checked ``VectorFile`` of round ``round_index`` (read once)."""
        from shl.control_vector import read_vector_file

        path = self.path_for(round_index)
        if path not in self._files:
            if self.params.sha256 is not None:
                try:
                    digest = hashlib.sha256(open(path, "rb").read()).hexdigest()
                except OSError as exc:
                    raise ShlError(f"{path}: cannot read ({exc.strerror})") from None
                if digest != self.params.sha256:
                    raise ShlError(f"{path}: sha256 is {digest}, not the pinned {self.params.sha256}")
            self._files[path] = read_vector_file(path)
        return self._files[path]

    def check_plan(self, plan: api.SteeringPlan) -> None:
        rounds = range(plan.rounds) if ROUND_FIELD in self.params.path else range(1)
        for i in rounds:
            self.check_file(self.load(i), plan.layers, plan.num_layers, plan.hidden_size)

    def check_file(self, vec: Any, layers: Any, num_layers: int | None, hidden_size: int | None) -> None:
        """One-line ShlError when ``vec`` does not fit the model or ``steer.layers``."""
        if hidden_size is not None and vec.n_embd != hidden_size:
            raise ShlError(f"{vec.path}: vectors of length {vec.n_embd}, but the model's hidden size is {hidden_size}")
        if num_layers is not None:
            outside = [k for k in sorted(vec.layers) if k >= num_layers]
            if outside:
                raise ShlError(f"{vec.path}: layer {outside[0]} is outside the model ({num_layers} decoder layers: "
                               f"0..{num_layers - 1}; llama.cpp would silently ignore it)")
        if layers is None:
            return
        have, want = set(vec.layers), set(layers)
        if not want <= have or (want != have and not self.params.subset):
            hint = "" if self.params.subset else " (or params.subset: true to use some of them)"
            raise ShlError(
                f"{vec.path}: holds {vec.describe_layers()} (shl layers {sorted(have)}: the output of those decoder "
                f"blocks), but steer.layers resolves to {sorted(want)}; set steer.layers: {sorted(have)}{hint}"
            )

    def fit(self, pos: torch.Tensor, neg: torch.Tensor) -> torch.Tensor:
        raise ShlError("from_file reads the vector of a layer and round: the engine calls fit_layer")

    def fit_layer(self, pos: torch.Tensor, neg: torch.Tensor, *, layer: int, round_index: int) -> torch.Tensor:
        import torch

        vec = self.load(round_index)
        self.check_file(vec, None, None, int(pos.shape[1]))
        if layer not in vec.layers:
            raise ShlError(f"{vec.path}: no vector for layer {layer} (it holds {vec.describe_layers()})")
        return torch.from_numpy(vec.layers[layer].copy())
