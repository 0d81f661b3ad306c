"""The student's per-position terms of the heal loss: the log-prob of each completion token and the KL to the
reference, float32, differentiable, without ever building a batch x length x vocabulary tensor.

Memory (real vocabularies, 150k-260k): the decoder's final hidden states are sliced to the completion positions,
and the LM head, the log-softmaxes, the NLL and the KL run over chunks of ``heal.chunk_positions`` positions.
Each chunk's vocabulary-sized graph is freed before the next: the chunk's gradients with respect to its hidden
states are taken right away, one vector per position for the token log-prob and one for the KL (each position's
terms depend on its own hidden state only), and the backward combines them with the upstream gradients (from the
mean and from the barrier aggregator): exactly the unchunked gradient, up to float reassociation.
"""

from __future__ import annotations

from typing import Any

from .barrier import divergence
from .heal_batches import BatchTensors
from .lmhead import _identity, chunks, final_states, head_module
from .reference import ReferenceRows


class _CompletionTerms:
    """The autograd Function behind ``completion_terms`` (built on first use: torch is imported lazily).

    Forward, per chunk of positions: the student's float32 log-prob of the target token and the KL to the
    reference, from the final hidden states [M, W]; and right away, per position, J_tlp = d tlp / d state and
    J_kl = d KL / d state ([M, W] each; the chunk's vocabulary-sized tensors then freed): the gradients with
    respect to the logits are analytic (float32: onehot - p_s; reverse KL p_s * (log_s - log_r - KL); forward KL
    p_s - p_r), taken back through the head by autograd (soft-capping included). Backward:
    g_tlp * J_tlp + g_kl * J_kl (each position's terms depend on its own state only, so this is exact)."""

    fn: Any = None

    @classmethod
    def apply(cls, *args: Any) -> Any:
        if cls.fn is None:
            cls.fn = _make_completion_terms()
        return cls.fn.apply(*args)


def _make_completion_terms() -> Any:
    import torch

    class CompletionTerms(torch.autograd.Function):
        @staticmethod
        def forward(ctx, states, targets, head, ref, reverse, chunk, kl_grad):
            n = states.shape[0]
            tlp = torch.empty(n, dtype=torch.float32, device=states.device)
            kl = torch.zeros(n, dtype=torch.float32, device=states.device)
            j_tlp = torch.empty_like(states)
            j_kl = torch.empty_like(states) if (kl_grad and ref is not None) else None
            for a, b in chunks(n, chunk):
                with torch.enable_grad():
                    x = states[a:b].detach().requires_grad_(True)
                    z = head(x)
                with torch.no_grad():
                    # analytic gradients with respect to the logits z (float32), then back through the head only
                    log_s = torch.log_softmax(z.float(), dim=-1)
                    p_s = log_s.exp()
                    tgt = targets[a:b, None]
                    tlp[a:b] = log_s.gather(-1, tgt).squeeze(-1)
                    g = p_s.neg()
                    g.scatter_add_(-1, tgt, torch.ones_like(tgt, dtype=g.dtype))  # d tlp / dz = onehot - p_s
                    g_kl = None
                    if ref is not None:
                        log_r = ref.logprobs(a, b)
                        if reverse:  # KL(s || r) = sum p_s (log_s - log_r); d/dz = p_s * (d - KL)
                            d = log_s.sub_(log_r)
                            del log_r
                            k = (p_s * d).sum(-1)
                            if j_kl is not None:
                                g_kl = d.sub_(k[:, None]).mul_(p_s)
                        else:  # KL(r || s) = sum p_r (log_r - log_s); d/dz = p_s - p_r
                            p_r = log_r.exp()
                            k = (p_r * (log_r - log_s)).sum(-1)
                            del log_r
                            if j_kl is not None:
                                g_kl = p_s.sub_(p_r)
                            del p_r
                        kl[a:b] = k
                    del log_s, p_s
                with torch.enable_grad():
                    j_tlp[a:b] = torch.autograd.grad(z, x, g.to(z.dtype), retain_graph=g_kl is not None)[0]
                    if g_kl is not None:
                        j_kl[a:b] = torch.autograd.grad(z, x, g_kl.to(z.dtype))[0]
                del x, z, g, g_kl
            ctx.j = (j_tlp, j_kl)
            return tlp, kl

        @staticmethod
        def backward(ctx, g_tlp, g_kl):
            j_tlp, j_kl = ctx.j
            grad = g_tlp.float()[:, None] * j_tlp.float()
            if j_kl is not None:
                grad = grad + g_kl.float()[:, None] * j_kl.float()
            ctx.j = None
            return grad.to(j_tlp.dtype), None, None, None, None, None, None

    return CompletionTerms


def completion_terms(
    model: Any, bt: BatchTensors, ref: ReferenceRows | None, reverse: bool, chunk_positions: int = 128,
    kl_grad: bool = True,
) -> tuple[Any, Any]:
    """(token log-probs [M], KL [M]) of the student at the selected positions, float32, differentiable with
    respect to the student's parameters (the KL only when ``kl_grad``; zeros when ``ref`` is None).

    Memory-bounded (module docstring). A trainable LM head (LoRA on the head) keeps each chunk's graph instead,
    so the head's own parameters get their gradients."""
    import torch

    states, head = final_states(model, bt.ids, bt.mask)
    rows = states[bt.select]
    del states
    module = head_module(model)
    if head is not _identity and module is not None and any(p.requires_grad for p in module.parameters()):
        tl, kls = [], []
        for a, b in chunks(rows.shape[0], chunk_positions):
            log_s = torch.log_softmax(head(rows[a:b]).float(), dim=-1)
            tl.append(log_s.gather(-1, bt.targets[a:b, None]).squeeze(-1))
            if ref is None:
                kls.append(torch.zeros(b - a, device=rows.device))
            else:
                log_r = ref.logprobs(a, b)
                k = divergence(log_s, log_r) if reverse else divergence(log_r, log_s)
                kls.append(k if kl_grad else k.detach())
        return torch.cat(tl), torch.cat(kls)
    return _CompletionTerms.apply(rows, bt.targets, head, ref, reverse, chunk_positions, kl_grad)
