"""``shl sample``: read what the heal did. Completions from the student after K heal rounds (default: the last),
and with ``steered`` also from the steered point of round K: the student before round K's heal (adapters
r0..r{K-2}) steered with round K's stored vector (``vectors/round_<K-1>.safetensors``) at the dose recorded in
round K's metrics row (``coeff``). Same prompts and sampling seed for both; the run's sampling settings
(``generate.temperature``, ``generate.top_p``; ``eval.max_new_tokens``) unless overridden.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import ShlError
from .store import read_meta


@dataclass
class SampleRow:
    user: str
    student: str
    steered: str | None = None


def eval_prompts(student: Any, prompt: str | None, n: int, seed: int) -> tuple[list[str], str | None]:
    """(user prompts, neutral system prompt): ``prompt`` alone, or ``n`` of the run's held-out evaluation prompts
    (drawn with ``seed``)."""
    from .data import load_data
    from .engine.seeds import Stream, sample_indices

    meta = read_meta(student.run_dir)
    root = Path(meta["config_file"]).parent if meta.get("config_file") else None
    data = None
    if student.cfg.data is not None:
        try:
            data = load_data(student.cfg.data, root)
        except ShlError:
            if prompt is None:
                raise
    if data is None and prompt is None:
        raise ShlError(f"{student.run_dir}: the run's steering data cannot be found: pass --prompt TEXT")
    system = data.neutral_system if data is not None else None
    if prompt is not None:
        return [prompt], system
    pool = list(getattr(data, "eval_prompts", None) or data.prompts)
    idx = sample_indices(len(pool), min(n, len(pool)), seed, Stream.SHL_SAMPLE)
    return [pool[i] for i in idx], system


def _load_vectors(run_dir: Path, round_index: int, device: Any) -> dict[int, Any]:
    from safetensors.torch import load_file

    from .export import verified_files

    rel = f"vectors/round_{round_index}.safetensors"
    path = run_dir / rel
    if rel not in verified_files(run_dir):
        raise ShlError(f"{run_dir}: no stored steering vector {rel} in the run's verified manifest")
    raw = load_file(str(path))
    return {int(k.split("_", 1)[1]): v.to(device) for k, v in raw.items()}


def sample(run_dir: str | Path, round: int | None = None, steered: bool = False, prompt: str | None = None,
           n: int = 4, seed: int = 0, max_new_tokens: int | None = None, device: str = "cpu") -> tuple[Any, list[SampleRow], float | None]:
    """(student, rows, steering coefficient or None)."""
    from .engine.chat import render_prompt
    from .engine.generate import clean_generation_config, generate
    from .engine.steering import Steerer
    from .export import load_student

    student = load_student(run_dir, round, device=device)
    if steered and student.round < 1:
        raise ShlError("--steered needs --round >= 1 (round 0 is the base model, before any steering)")
    tok = student.tokenizer
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token
    tok.padding_side = "left"
    clean_generation_config(student.model, tok)
    users, system = eval_prompts(student, prompt, n, seed)
    prompts = [(u, render_prompt(tok, u, system)) for u in users]
    cfg = student.cfg
    gen = dict(max_new_tokens=max_new_tokens or cfg.eval.max_new_tokens, temperature=cfg.generate.temperature,
               top_p=cfg.generate.top_p, batch_size=cfg.eval.batch_size, seed=seed)
    comps = generate(student.model, tok, prompts, **gen)
    rows = [SampleRow(c.user, c.text) for c in comps]
    coeff = None
    if steered:
        k = student.round
        row = next((r for r in student.metrics if r.get("round") == k), None)
        if row is None or row.get("coeff") is None:
            raise ShlError(f"{student.run_dir}: round {k} has no recorded dose (coeff) in metrics.jsonl")
        coeff = float(row["coeff"])
        method = student.host.registry.build("steering", cfg.steer.method.name, cfg.steer.method.params)
        device_ = next(student.model.parameters()).device
        steerer = Steerer(method, _load_vectors(student.run_dir, k - 1, device_), coeff)
        with student.with_adapters(student.names[:-1]) as m, steerer.installed(m):
            s_comps = generate(m, tok, prompts, steerer=steerer, **gen)
        for r, c in zip(rows, s_comps):
            r.steered = c.text
    return student, rows, coeff


def format_rows(student: Any, rows: list[SampleRow], coeff: float | None) -> str:
    k = student.round
    lines = [f"{student.run_dir}: student after {k} heal round(s) (of {student.rounds_available})"
             + (f"; steered point of round {k}: the student after {k - 1} round(s), steering coefficient {coeff:.4g}"
                if coeff is not None else "")]
    for i, r in enumerate(rows, 1):
        lines.append("")
        lines.append(f"[{i}] user: {r.user}")
        lines.append(f"    student (round {k}): {r.student}")
        if r.steered is not None:
            lines.append(f"    steered (round {k}, before its heal): {r.steered}")
    return "\n".join(lines)
