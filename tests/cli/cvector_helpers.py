"""Checks of control-vector files by readers other than shl's: llama.cpp's loader rules restated over the ``gguf``
reader, repeng's importer, and llama.cpp's placement of ``direction.N`` (the output of block N) as a plain forward
hook, for any transformers causal LM."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch


def llama_cpp_load(path: Path, n_layer: int, n_embd: int) -> dict[int, np.ndarray]:
    """What llama.cpp would apply from ``path`` (``common_control_vector_load_one`` and ``llama_adapter_cvec::apply``),
    asserting every rule the loader checks: tensor names ``direction.N`` with N an integer >= 1, type F32, 1-D, one
    length for all, equal to the model's n_embd. Several tensors for one N are summed; N >= n_layer would be
    silently ignored by llama.cpp, so it is asserted against here."""
    import gguf

    reader = gguf.GGUFReader(path)
    out: dict[int, np.ndarray] = {}
    for t in reader.tensors:
        prefix, _, index = t.name.partition(".")
        assert prefix == "direction" and index.isdigit(), t.name
        n = int(index)
        assert n != 0, "llama.cpp rejects direction.0"
        assert n < n_layer, f"direction.{n} is beyond the model's {n_layer} blocks"
        assert t.tensor_type == gguf.GGMLQuantizationType.F32, t.tensor_type
        assert len(t.shape) == 1 and int(t.n_elements) == n_embd, (list(t.shape), n_embd)
        data = np.array(t.data, dtype=np.float32).reshape(-1)
        out[n] = out[n] + data if n in out else data
    return out


def gguf_fields(path: Path) -> dict[str, Any]:
    """Every scalar and string metadata field of a GGUF file, read with the ``gguf`` package alone."""
    import gguf

    reader = gguf.GGUFReader(path)
    out = {}
    for key, f in reader.fields.items():
        if key.startswith("GGUF.") or f.types[0] == gguf.GGUFValueType.ARRAY:
            continue
        part = f.parts[f.data[0]]
        out[key] = (bytes(part).decode() if f.types[0] == gguf.GGUFValueType.STRING else part.tolist()[0], f.types[0])
    return out


def import_repeng():
    """repeng, or a skip. Its newest release on PyPI (0.4.0) pins numpy<2 and names ``np.float_`` in three type
    annotations, evaluated at import; NumPy 2 removed the alias. repeng's main branch replaced exactly those
    annotations (commit 96b4e20, "support numpy 2.x now that gguf-py does") and nothing else, so the alias is set for
    the import only and the released reader and writer run unchanged. CI installs it with ``--no-deps`` (.ci/run)."""
    added = "float_" not in np.__dict__
    if added:
        np.float_ = np.float64
    try:
        return pytest.importorskip("repeng")
    finally:
        if added:
            del np.float_


def _blocks(model: Any) -> Any:
    return model.get_decoder().layers


def block_hook_logits(model: Any, input_ids: torch.Tensor, directions: dict[int, np.ndarray], scale: float = 1.0,
                      at: str = "output") -> torch.Tensor:
    """Logits with ``scale * directions[N]`` added at every position to the OUTPUT of decoder block N (llama.cpp's
    ``build_cvec`` placement), by plain forward hooks; ``at="input"`` adds it to block N's input instead (the
    off-by-one a wrong layer mapping would make). No shl code involved."""
    blocks = _blocks(model)
    handles = []

    def add(h: torch.Tensor, n: int) -> torch.Tensor:
        return h + scale * torch.from_numpy(np.asarray(directions[n])).to(h.dtype)

    for n in directions:
        if at == "output":
            def hook(module, args, output, n=n):
                return (add(output[0], n),) + tuple(output[1:]) if isinstance(output, tuple) else add(output, n)

            handles.append(blocks[n].register_forward_hook(hook))
        else:
            def pre(module, args, kwargs, n=n):
                if args:
                    return (add(args[0], n),) + tuple(args[1:]), kwargs
                return args, {**kwargs, "hidden_states": add(kwargs["hidden_states"], n)}

            handles.append(blocks[n].register_forward_pre_hook(pre, with_kwargs=True))
    try:
        with torch.no_grad():
            return model(input_ids=input_ids).logits
    finally:
        for h in handles:
            h.remove()


def shl_steered_logits(model: Any, input_ids: torch.Tensor, method: Any, vectors: dict[int, torch.Tensor],
                       coeff: float) -> torch.Tensor:
    """Logits under shl's own steering hook (``Steerer``) at coefficient ``coeff``."""
    from shl.engine.steering import Steerer

    steerer = Steerer(method, vectors, coeff)
    with steerer.installed(model), torch.no_grad():
        return model(input_ids=input_ids).logits
