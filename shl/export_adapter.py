"""``shl export --adapter``: one PEFT LoRA adapter equivalent to the student's stack, safe to serve with vLLM.

The rounds' adapters are concatenated along the rank, each round's scaling folded into its B, ``lora_alpha = r``
(PEFT's and vLLM's scaling alpha/r is 1): ``B_cat @ A_cat = sum_j s_j B_j A_j`` exactly, per module (linear
layers, and embeddings through PEFT's ``lora_embedding_A/B``).

vLLM's rules (``vllm/config/lora.py``, ``vllm/lora/peft_helper.py``): an adapter is served only if its rank is at
most ``--max-lora-rank``, which must be one of ``VLLM_MAX_LORA_RANKS`` (default 16); ``modules_to_save`` must be
empty, DoRA is refused, and LoRA on the embeddings or the LM head is being phased out. So the adapter never has
``modules_to_save`` nor the base embedding weights, and LoRA on embeddings or the LM head is refused unless asked
for (``allow_embedding_lora``). ``max_rank`` R compresses the adapter: per module, the best rank-R approximation
(truncated SVD, Eckart-Young) of the summed update ``dW = B_cat @ A_cat``, split as ``B = U sqrt(S)``,
``A = sqrt(S) V^T``; the report gives the relative Frobenius error of the updates and of the student's logits on
held-out prompts (the run's evaluation prompts).
"""

from __future__ import annotations

import json
import shutil
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .errors import ShlError

VLLM_MAX_LORA_RANKS = (1, 8, 16, 32, 64, 128, 256, 320, 512)
VLLM_DEFAULT_MAX_LORA_RANK = 16
HELD_OUT_PROMPTS = 8
COMBINED = "combined"


@dataclass
class AdapterReport:
    rank: int  # the rank written
    stack_rank: int  # sum of the rounds' ranks
    max_lora_rank: int | None  # the smallest vLLM --max-lora-rank that serves it; None: above vLLM's largest
    modules: int
    embedding_or_head: list[str] = field(default_factory=list)
    update_error: float | None = None  # ||dW - dW_R||_F / ||dW||_F over all modules (0 when not compressed)
    update_error_max: float | None = None  # the worst module's relative error
    logits: dict[str, float] | None = None  # rel_error, rel_error_of_change, kl_mean, prompts, positions

    def lines(self) -> list[str]:
        if self.max_lora_rank is None:
            serve = (f"above vLLM's largest --max-lora-rank ({VLLM_MAX_LORA_RANKS[-1]}): compress it with "
                     f"--max-rank {VLLM_MAX_LORA_RANKS[-1]} or less")
        else:
            default = " (vLLM's default)" if self.max_lora_rank == VLLM_DEFAULT_MAX_LORA_RANK else ""
            serve = f"vLLM: --enable-lora --max-lora-rank {self.max_lora_rank}{default}"
        out = [f"rank {self.rank} (the stack's rank: {self.stack_rank}), {self.modules} modules; {serve}"]
        if self.embedding_or_head:
            out.append(f"LoRA on the embeddings / LM head ({', '.join(self.embedding_or_head)}): vLLM may refuse it")
        if self.rank < self.stack_rank and self.update_error is not None:
            out.append(f"compressed to rank {self.rank}: relative error of the updates {self.update_error:.3g} "
                       f"(worst module {self.update_error_max:.3g})")
            if self.logits:
                g = self.logits
                out.append(f"logits on {int(g['prompts'])} held-out prompts: relative error {g['rel_error']:.3g}, "
                           f"{g['rel_error_of_change']:.3g} of the adapters' change to the base logits; "
                           f"mean KL(student || compressed) {g['kl_mean']:.3g} nats per position")
        return out


def vllm_max_lora_rank(rank: int) -> int | None:
    """The smallest value of vLLM's ``--max-lora-rank`` that serves an adapter of rank ``rank``."""
    return next((r for r in VLLM_MAX_LORA_RANKS if r >= rank), None)


def lora_pair(module: Any, name: str) -> tuple[Any, Any] | None:
    """(A [r, in], B [out, r]) parameters of adapter ``name`` on a PEFT LoRA layer (linear or embedding)."""
    lora_a = getattr(module, "lora_A", None)
    if hasattr(lora_a, "keys") and name in lora_a.keys():
        return module.lora_A[name].weight, module.lora_B[name].weight
    emb_a = getattr(module, "lora_embedding_A", None)
    if hasattr(emb_a, "keys") and name in emb_a.keys():
        return module.lora_embedding_A[name], module.lora_embedding_B[name]
    return None


def _lora_modules(model: Any, names: list[str]) -> list[tuple[str, Any, list[str]]]:
    out = []
    for mod_name, module in model.base_model.model.named_modules():
        present = [n for n in names if lora_pair(module, n) is not None]
        if present:
            out.append((mod_name, module, present))
    return out


def combined_lora(student: Any) -> tuple[Any, dict[str, tuple[Any, Any]]]:
    """(LoraConfig, {module name: (A_cat [R, in], B_cat [out, R])}) of the stack r0..r{K-1}: ranks concatenated,
    each adapter's scaling folded into its B (B_cat @ A_cat = sum_j s_j B_j A_j), lora_alpha = R (scaling 1)."""
    import torch
    from peft import LoraConfig

    if not student.names:
        raise ShlError(f"{student.run_dir}: round 0 is the base model: there is no adapter to export (--round >= 1)")
    parts: dict[str, tuple[Any, Any]] = {}
    for mod_name, module, present in _lora_modules(student.model, student.names):
        if getattr(module, "lora_variant", None) or getattr(module, "use_dora", {}).get(present[0], False):
            raise ShlError("export --adapter: a LoRA variant (DoRA...) cannot be combined by concatenating ranks")
        if len(present) != len(student.names):
            raise ShlError(f"export --adapter: module {mod_name} has adapters {', '.join(present)} only (of "
                           f"{', '.join(student.names)}): the rounds' adapters do not cover the same modules")
        pairs = [lora_pair(module, n) for n in present]
        a = torch.cat([p[0].detach().float() for p in pairs], dim=0)
        b = torch.cat([p[1].detach().float() * float(module.scaling[n]) for p, n in zip(pairs, present)], dim=1)
        parts[mod_name] = (a, b)
    ranks = {a.shape[0] for a, _ in parts.values()}
    if len(ranks) != 1:
        raise ShlError("export --adapter: the rounds' adapters do not cover the same modules with the same rank")
    r_total = ranks.pop()
    first = student.model.peft_config[student.names[0]]
    targets = first.target_modules
    cfg = LoraConfig(
        r=r_total, lora_alpha=r_total, lora_dropout=0.0, bias="none", modules_to_save=None,
        target_modules=sorted(targets) if isinstance(targets, (set, list, tuple)) else targets,
        fan_in_fan_out=first.fan_in_fan_out, task_type=first.task_type,
    )
    return cfg, parts


def embedding_or_head(student: Any, module_names: Any) -> list[str]:
    """The adapted modules that are embeddings or the output head (vLLM refuses LoRA there)."""
    import torch.nn as nn

    base = student.model.base_model.model
    head = base.get_output_embeddings() if hasattr(base, "get_output_embeddings") else None
    found = []
    for mod_name, module in base.named_modules():
        if mod_name not in module_names:
            continue
        layer = getattr(module, "base_layer", module)
        if isinstance(layer, nn.Embedding) or (head is not None and (layer is head or module is head)):
            found.append(mod_name)
    return found


def truncate(parts: dict[str, tuple[Any, Any]], rank: int) -> tuple[dict[str, tuple[Any, Any]], float, float]:
    """Each module's best rank-``rank`` approximation of dW = B @ A (through QR of B and A^T, then the SVD of the
    small core, in float64), and (relative error over all modules, worst module's relative error)."""
    import torch

    out: dict[str, tuple[Any, Any]] = {}
    lost = total = 0.0
    worst = 0.0
    for name, (a, b) in parts.items():
        qb, rb = torch.linalg.qr(b.double())
        qa, ra = torch.linalg.qr(a.double().T)
        u, s, vh = torch.linalg.svd(rb @ ra.T)
        k = min(rank, s.shape[0])
        root = s[:k].sqrt()
        b_r = torch.zeros(b.shape[0], rank, dtype=torch.float64)
        a_r = torch.zeros(rank, a.shape[1], dtype=torch.float64)
        b_r[:, :k] = (qb @ u[:, :k]) * root
        a_r[:k] = root[:, None] * (vh[:k] @ qa.T)
        out[name] = (a_r.float(), b_r.float())
        e2, t2 = float((s[k:] ** 2).sum()), float((s ** 2).sum())
        lost, total = lost + e2, total + t2
        worst = max(worst, (e2 / t2) ** 0.5 if t2 > 0 else 0.0)
    return out, (lost / total) ** 0.5 if total > 0 else 0.0, worst


def logits_error(student: Any, adapter: str, n: int = HELD_OUT_PROMPTS) -> dict[str, float]:
    """The student (adapters r0..r{K-1}) against the model with ``adapter`` alone, on ``n`` of the run's held-out
    evaluation prompts (each alone, every prompt position): relative Frobenius error of the logits, the same
    relative to the adapters' change to the base logits, and the mean per-position KL(student || adapter)."""
    import torch

    from .engine.chat import render_prompt
    from .sample import eval_prompts

    users, system = eval_prompts(student, None, n, 0)
    pm, tok = student.model, student.tokenizer
    diff = full = change = kl = 0.0
    positions = 0
    with torch.no_grad():
        for user in users:
            ids = torch.tensor([render_prompt(tok, user, system)], device=next(pm.parameters()).device)
            pm.base_model.set_adapter(list(student.names))
            want = pm(input_ids=ids).logits.float()
            pm.base_model.set_adapter([adapter])
            got = pm(input_ids=ids).logits.float()
            with pm.disable_adapter():
                base = pm(input_ids=ids).logits.float()
            diff += float(((got - want) ** 2).sum())
            full += float((want ** 2).sum())
            change += float(((want - base) ** 2).sum())
            lp, lq = want.log_softmax(-1), got.log_softmax(-1)
            kl += float((lp.exp() * (lp - lq)).sum())
            positions += ids.shape[1]
    pm.base_model.set_adapter(list(student.names))
    return {"prompts": float(len(users)), "positions": float(positions), "rel_error": (diff / full) ** 0.5,
            "rel_error_of_change": (diff / change) ** 0.5 if change > 0 else 0.0, "kl_mean": kl / max(positions, 1)}


def export_adapter(student: Any, out: str | Path, max_rank: int | None = None,
                   allow_embedding_lora: bool = False) -> tuple[Path, AdapterReport]:
    """One PEFT LoRA adapter equivalent to the stack (or its rank-``max_rank`` compression), and its report."""
    import torch

    from .export import EXPORT_RECORD, _check_out, _publish, _record

    o = _check_out(out)
    if max_rank is not None and max_rank < 1:
        raise ShlError(f"--max-rank must be >= 1 (got {max_rank})")
    cfg, parts = combined_lora(student)
    heads = embedding_or_head(student, set(parts))
    if heads and not allow_embedding_lora:
        raise ShlError(f"export --adapter: the run's adapters train {', '.join(heads)} (the embeddings or the LM "
                       "head), which vLLM does not serve; pass --allow-embedding-lora to write them anyway, or "
                       "export the merged model")
    stack_rank = cfg.r
    report = AdapterReport(stack_rank, stack_rank, None, len(parts), heads)
    if max_rank is not None and max_rank < stack_rank:
        parts, report.update_error, report.update_error_max = truncate(parts, max_rank)
        cfg.r, cfg.lora_alpha, report.rank = max_rank, max_rank, max_rank
    report.max_lora_rank = vllm_max_lora_rank(report.rank)
    pm = student.model
    pm.add_adapter(COMBINED, cfg)
    tmp = Path(tempfile.mkdtemp(prefix=".shl-export-", dir=o.parent if o.parent.exists() else None))
    try:
        with torch.no_grad():
            for mod_name, module, _ in _lora_modules(pm, [COMBINED]):
                if mod_name not in parts:
                    raise ShlError(f"export --adapter: module {mod_name} has no combined update")
                (wa, wb), (a, b) = lora_pair(module, COMBINED), parts.pop(mod_name)
                if wa.shape != a.shape or wb.shape != b.shape:
                    raise ShlError(f"export --adapter: shape mismatch at {mod_name}")
                wa.copy_(a.to(wa.dtype))
                wb.copy_(b.to(wb.dtype))
        if parts:
            raise ShlError(f"export --adapter: updates the combined adapter does not hold: {sorted(parts)[:3]}")
        if report.rank < stack_rank:
            report.logits = logits_error(student, COMBINED)
        pm.save_pretrained(tmp, selected_adapters=[COMBINED], save_embedding_layers=False)
        src = tmp / COMBINED if (tmp / COMBINED).is_dir() else tmp
        final = Path(tempfile.mkdtemp(prefix=".shl-export-", dir=tmp.parent))
        for f in src.iterdir():
            shutil.move(str(f), str(final / f.name))
        student.tokenizer.save_pretrained(final)
        record = json.loads(_record(student, "adapter"))
        record["vllm"] = asdict(report)
        (final / EXPORT_RECORD).write_text(json.dumps(record, indent=2))
        _publish(final, o)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        pm.delete_adapter(COMBINED)
        pm.base_model.set_adapter(list(student.names))
    return o, report
