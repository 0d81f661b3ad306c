"""AdapterStack: base / previous-student logits, requires_grad bookkeeping, gradients that see the history."""

from __future__ import annotations

import copy

import pytest
import torch

from shl.config.models import LoraConfig
from shl.engine.adapters import AdapterStack

IDS = torch.tensor([[1, 3, 204, 60, 487, 84, 2, 5, 204, 358, 474, 84]])
TARGETS = torch.tensor([[3, 204, 60, 487, 84, 2, 5, 204, 358, 474, 84, 2]])


def _lora_modules(peft_model):
    """(name relative to the transformers model, module) of every LoRA layer."""
    prefix = "base_model.model."
    for name, module in peft_model.named_modules():
        if hasattr(module, "lora_A") and hasattr(module.lora_A, "keys") and len(module.lora_A):
            yield name[len(prefix):], module


def _perturb(stack, name: str, seed: int, std: float = 0.2) -> None:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for _, b, _ in stack.lora_pairs(name):
            b.copy_(torch.randn(b.shape, generator=g) * std)


def _loss(model):
    logits = model(input_ids=IDS).logits
    return torch.nn.functional.cross_entropy(logits[0].float(), TARGETS[0])


@pytest.fixture
def two_rounds(llama):
    """A stack with round 0 trained (B perturbed) and folded, round 1 added (B perturbed too)."""
    base = llama.model
    fresh = copy.deepcopy(base)
    stack = AdapterStack(base, LoraConfig(r=4, alpha=8.0))
    stack.new_round()
    _perturb(stack, "r0", seed=1)
    stack.fold()
    with torch.no_grad():
        student0 = stack.model(input_ids=IDS).logits.clone()
    stack.new_round()
    # a non-zero round-1 adapter, so "previous" differs from the current student
    _perturb(stack, "r1", seed=2, std=0.05)
    return stack, fresh, student0


def test_round0_is_a_noop_and_r0_changes_the_student(llama):
    base = llama.model
    fresh = copy.deepcopy(base)
    stack = AdapterStack(base, LoraConfig(r=4, alpha=8.0))
    stack.new_round()
    with torch.no_grad():
        assert torch.equal(stack.model(input_ids=IDS).logits, fresh(input_ids=IDS).logits)  # B = 0
        _perturb(stack, "r0", seed=1)
        assert not torch.allclose(stack.model(input_ids=IDS).logits, fresh(input_ids=IDS).logits)


def test_disabled_is_exactly_the_base_model(two_rounds):
    stack, fresh, _ = two_rounds
    with torch.no_grad():
        want = fresh(input_ids=IDS).logits
        with stack.disabled() as m:
            got = m(input_ids=IDS).logits
        assert (got - want).abs().max().item() == 0.0
        # and the adapters are back on afterwards
        assert not torch.allclose(stack.model(input_ids=IDS).logits, want)


def test_only_previous_is_exactly_the_student_before_this_round(two_rounds):
    stack, _, student0 = two_rounds
    assert stack.previous == ["r0"]
    with torch.no_grad():
        with stack.only(stack.previous) as m:
            got = m(input_ids=IDS).logits
        assert (got - student0).abs().max().item() == 0.0
        now = stack.model(input_ids=IDS).logits
    assert not torch.allclose(now, student0)  # r1 is active again after the context


def test_only_current_round_trains_after_switching(two_rounds):
    stack, _, _ = two_rounds
    with stack.disabled():
        pass
    with stack.only(stack.previous):
        pass
    with stack.only([]):
        pass
    trainable = [n for n, p in stack.model.named_parameters() if p.requires_grad]
    assert trainable, "round 1 must have trainable parameters"
    assert all("lora_" in n and ".r1." in n for n in trainable), trainable
    assert {id(p) for p in stack.trainable_parameters()} == {
        id(p) for n, p in stack.model.named_parameters() if ".r1." in n
    }
    loss = _loss(stack.model)
    loss.backward()
    with_grad = [n for n, p in stack.model.named_parameters() if p.grad is not None]
    assert set(with_grad) == set(trainable)
    assert all(stack.model.get_parameter(n).grad.abs().sum() > 0 for n in with_grad if "lora_A" in n)


def test_round1_gradient_equals_the_gradient_on_an_explicitly_merged_model(two_rounds):
    from peft import LoraConfig as PeftLoraConfig
    from peft import get_peft_model

    stack, fresh, _ = two_rounds
    merged = copy.deepcopy(fresh)
    with torch.no_grad():
        for name, module in _lora_modules(stack.model):
            w = merged.get_submodule(name).weight
            delta = module.scaling["r0"] * module.lora_B["r0"].weight @ module.lora_A["r0"].weight
            w.add_(delta)
    # the stack's default targets: every linear layer of the decoder blocks
    cfg = PeftLoraConfig(r=4, lora_alpha=8.0, lora_dropout=0.0, bias="none", target_modules="all-linear")
    ref = get_peft_model(merged, cfg, adapter_name="r1")
    ref_modules = dict(_lora_modules(ref))
    with torch.no_grad():
        for name, module in _lora_modules(stack.model):
            ref_modules[name].lora_A["r1"].weight.copy_(module.lora_A["r1"].weight)
            ref_modules[name].lora_B["r1"].weight.copy_(module.lora_B["r1"].weight)

    _loss(stack.model).backward()
    _loss(ref).backward()
    n = 0
    for name, module in _lora_modules(stack.model):
        for part in ("lora_A", "lora_B"):
            got = getattr(module, part)["r1"].weight.grad
            want = getattr(ref_modules[name], part)["r1"].weight.grad
            assert got is not None and want is not None
            torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-6)
            n += 1
    assert n > 0

    # the same gradient without the history (r1 alone on the base) is different: the test can tell
    alone = get_peft_model(copy.deepcopy(fresh), cfg, adapter_name="r1")
    alone_modules = dict(_lora_modules(alone))
    with torch.no_grad():
        for name, module in _lora_modules(stack.model):
            alone_modules[name].lora_A["r1"].weight.copy_(module.lora_A["r1"].weight)
            alone_modules[name].lora_B["r1"].weight.copy_(module.lora_B["r1"].weight)
    _loss(alone).backward()
    name, module = next(iter(_lora_modules(stack.model)))
    assert not torch.allclose(module.lora_A["r1"].weight.grad, alone_modules[name].lora_A["r1"].weight.grad, atol=1e-6)


def test_save_and_reload_reproduces_the_student(two_rounds, tmp_path):
    from peft import PeftModel

    stack, fresh, student0 = two_rounds
    stack.fold()
    with torch.no_grad():
        want = stack.model(input_ids=IDS).logits.clone()
    stack.save(str(tmp_path))
    assert (tmp_path / "r0").is_dir() and (tmp_path / "r1").is_dir()
    pm = PeftModel.from_pretrained(copy.deepcopy(fresh), str(tmp_path / "r0"), adapter_name="r0")
    pm.load_adapter(str(tmp_path / "r1"), adapter_name="r1")
    pm.base_model.set_adapter(["r0", "r1"])
    pm.eval()
    with torch.no_grad():
        got = pm(input_ids=IDS).logits
        assert (got - want).abs().max().item() == 0.0
        pm.base_model.set_adapter(["r0"])
        assert (pm(input_ids=IDS).logits - student0).abs().max().item() == 0.0
        with pm.disable_adapter():
            assert (pm(input_ids=IDS).logits - fresh(input_ids=IDS).logits).abs().max().item() == 0.0
