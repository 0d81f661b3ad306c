"""Steering vectors as files other tools read and write: llama.cpp control vectors (GGUF) and shl's own
safetensors (``vectors/round_<i>.safetensors``, tensors ``layer_<k>``).

Layer numbering. shl steers layer k by a forward hook on decoder block k (``model.layers[k]``) that changes the
block's OUTPUT (the residual stream after block k). llama.cpp adds tensor ``direction.N`` to the output of block
N (``build_cvec(cur, il)`` right after the block's last residual add, the tensor named ``l_out-N``), and its
loader (``common_control_vector_load_one``) rejects ``direction.0``: block 0's output cannot be steered, and
indices >= n_layer are ignored. repeng's ``ControlModel`` adds ``directions[N]`` to the output of
``model.layers[N]`` and its ``export_gguf`` writes ``direction.N``. So all three agree: **shl layer k is
``direction.k``**, k = 1..n_layer-1; a vector at shl layer 0 has no control-vector form. (Where the tools READ
activations differs and does not matter here: llama.cpp's cvector-generator fits ``direction.N`` on block N-1's
output.)

The file layout follows llama.cpp's loader: ``general.architecture = "controlvector"``,
``controlvector.model_hint`` (the model's ``model_type``), ``controlvector.layer_count`` (the number of
directions, as repeng writes it), and one float32 1-D tensor ``direction.N`` of length n_embd per steered layer.
Written with the ``gguf`` package (llama.cpp's own Python writer). shl adds its own keys under ``shl.``; the
loader ignores metadata.
"""

from __future__ import annotations

import os
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import ShlError

ARCH = "controlvector"
KEY_ARCH = "general.architecture"
KEY_MODEL_HINT = f"{ARCH}.model_hint"
KEY_LAYER_COUNT = f"{ARCH}.layer_count"
GGUF_MAGIC = b"GGUF"
_DIRECTION = re.compile(r"direction\.(\d+)")
_SHL_LAYER = re.compile(r"layer_(\d+)")


@dataclass
class VectorFile:
    """A steering vector read from a file: per shl layer index (= llama.cpp's N), a float32 numpy vector."""

    path: Path
    kind: str  # "gguf" or "safetensors"
    layers: dict[int, Any]
    model_hint: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def n_embd(self) -> int:
        return int(next(iter(self.layers.values())).shape[0])

    def describe_layers(self) -> str:
        names = "direction.{}" if self.kind == "gguf" else "layer_{}"
        return ", ".join(names.format(k) for k in sorted(self.layers))


def cvector_index(layer: int) -> int:
    """llama.cpp's ``direction.N`` for shl layer ``layer`` (the same number; see the module docstring)."""
    return int(layer)


def check_expressible(layers: list[int], num_layers: int | None, what: str) -> None:
    """One-line ShlError when a shl layer has no llama.cpp control-vector form (layer 0, or beyond the model)."""
    for k in sorted(layers):
        if k < 1:
            raise ShlError(
                f"{what}: steers shl layer {k} (the output of decoder block {k}), which a llama.cpp control vector "
                "cannot reach: llama.cpp adds direction.N to the output of block N and rejects direction.0; "
                "use steer.layers >= 1"
            )
        if num_layers is not None and k >= num_layers:
            raise ShlError(f"{what}: layer {k} is outside the model ({num_layers} decoder layers)")


def write_control_vector(path: str | Path, directions: dict[int, Any], model_hint: str,
                         metadata: dict[str, str | int | float] | None = None) -> Path:
    """Write ``directions`` (shl layer -> 1-D float32 array) as a llama.cpp control vector, atomically; an
    existing ``path`` is refused."""
    import gguf
    import numpy as np

    out = Path(path)
    if out.exists():
        raise ShlError(f"{out}: exists; choose a new file for --control-vector")
    check_expressible(list(directions), None, str(out))
    arrays = {cvector_index(k): np.ascontiguousarray(np.asarray(v, dtype=np.float32)) for k, v in directions.items()}
    sizes = {a.shape for a in arrays.values()}
    if len(sizes) != 1 or len(next(iter(sizes))) != 1:
        raise ShlError(f"{out}: the directions must be 1-D and of one length; got shapes {sorted(sizes)}")
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".shl-cvec-", suffix=".gguf", dir=out.parent)
    os.close(fd)
    try:
        writer = gguf.GGUFWriter(tmp, ARCH)
        writer.add_string(KEY_MODEL_HINT, model_hint)
        writer.add_uint32(KEY_LAYER_COUNT, len(arrays))
        for key, value in (metadata or {}).items():
            if isinstance(value, bool) or not isinstance(value, (str, int, float)):
                raise TypeError(f"metadata {key}: {type(value).__name__}")
            if isinstance(value, str):
                writer.add_string(key, value)
            elif isinstance(value, int):
                writer.add_int32(key, value)
            else:
                writer.add_float64(key, value)
        for n in sorted(arrays):
            writer.add_tensor(f"direction.{n}", arrays[n])
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
        writer.close()
        os.replace(tmp, out)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return out


def read_vector_file(path: str | Path) -> VectorFile:
    """A llama.cpp control vector (GGUF, recognised by its magic bytes) or shl's safetensors, checked the way
    llama.cpp's loader checks a control vector (every tensor ``direction.N`` with N >= 1, float32, 1-D, one
    length; several tensors for one N are summed, as llama.cpp does). Any problem is a one-line ShlError."""
    p = Path(path)
    if not p.is_file():
        raise ShlError(f"{p}: no such vector file")
    with open(p, "rb") as f:
        magic = f.read(4)
    vec = _read_gguf(p) if magic == GGUF_MAGIC else _read_safetensors(p)
    if not vec.layers:
        raise ShlError(f"{p}: holds no steering vector")
    return vec


def _read_gguf(p: Path) -> VectorFile:
    import gguf
    import numpy as np

    try:
        reader = gguf.GGUFReader(p)
    except Exception as exc:
        raise ShlError(f"{p}: not a readable GGUF file ({type(exc).__name__}: {exc})") from None
    arch = _field_str(reader, KEY_ARCH)
    if arch is not None and arch != ARCH:
        raise ShlError(f"{p}: not a llama.cpp control vector ({KEY_ARCH} is '{arch}', not '{ARCH}')")
    layers: dict[int, Any] = {}
    for t in reader.tensors:
        m = _DIRECTION.fullmatch(t.name)
        if m is None:
            raise ShlError(f"{p}: tensor '{t.name}' is not named direction.N (llama.cpp's loader rejects the file)")
        n = int(m.group(1))
        if n == 0:
            raise ShlError(f"{p}: direction.0 (llama.cpp's loader rejects it: block 0's output is never steered)")
        if t.tensor_type != gguf.GGMLQuantizationType.F32:
            raise ShlError(f"{p}: {t.name} is {t.tensor_type.name}, not F32 (llama.cpp's loader rejects it)")
        if len(t.shape) != 1:
            raise ShlError(f"{p}: {t.name} is not 1-D (shape {list(t.shape)}; llama.cpp's loader rejects it)")
        data = np.array(t.data, dtype=np.float32, copy=True).reshape(-1)
        layers[n] = layers[n] + data if n in layers else data
    if len({a.shape[0] for a in layers.values()}) > 1:
        raise ShlError(f"{p}: the direction tensors differ in length (llama.cpp's loader rejects the file)")
    meta = {k: _field_value(reader, k) for k in reader.fields if k.startswith("shl.")}
    return VectorFile(p, "gguf", layers, _field_str(reader, KEY_MODEL_HINT), meta)


def _read_safetensors(p: Path) -> VectorFile:
    import numpy as np
    from safetensors.numpy import load_file

    try:
        raw = load_file(str(p))
    except Exception as exc:
        raise ShlError(f"{p}: neither a GGUF control vector nor a safetensors file ({type(exc).__name__})") from None
    layers: dict[int, Any] = {}
    for name, t in raw.items():
        m = _SHL_LAYER.fullmatch(name)
        if m is None:
            raise ShlError(f"{p}: tensor '{name}' is not named layer_K (shl's vectors/round_<i>.safetensors layout)")
        if t.ndim != 1 or t.dtype != np.float32:
            raise ShlError(f"{p}: {name} must be a 1-D float32 vector; got {t.dtype} of shape {list(t.shape)}")
        layers[int(m.group(1))] = t
    if len({a.shape[0] for a in layers.values()}) > 1:
        raise ShlError(f"{p}: the layer vectors differ in length")
    return VectorFile(p, "safetensors", layers)


def _field_value(reader: Any, key: str) -> Any:
    """A scalar or string metadata value (None for a missing key or an array)."""
    from gguf import GGUFValueType

    f = reader.get_field(key)
    if f is None or not f.types or f.types[0] == GGUFValueType.ARRAY or not len(f.data):
        return None
    part = f.parts[f.data[0]]
    if f.types[0] == GGUFValueType.STRING:
        return bytes(part).decode("utf-8", errors="replace")
    return part.tolist()[0]


def _field_str(reader: Any, key: str) -> str | None:
    value = _field_value(reader, key)
    return value if isinstance(value, str) else None
