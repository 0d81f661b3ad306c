"""Chat rendering and tokenisation: one BOS, prompt and completion tokenised apart, end-of-turn token."""

from __future__ import annotations

import torch

from shl import api
from shl.engine.chat import encode_completion, end_of_turn_ids, render_prompt, render_text, stop_token_ids
from shl.engine.heal_batches import batch_tensors
from shl.engine.scoring import completion_logprobs


def test_render_prompt_has_exactly_one_bos(tok):
    ids = render_prompt(tok, "Hello there", "Be kind.")
    assert ids.count(tok.bos_token_id) == 1
    assert ids[0] == tok.bos_token_id
    assert render_text(tok, "Hello there", "Be kind.").count(tok.bos_token) == 1
    # the prompt ends at the assistant turn
    assert tok.convert_ids_to_tokens(ids[-2:]) == ["<|assistant|>", "\u010a"]


def test_render_prompt_without_system(tok):
    ids = render_prompt(tok, "Hello", None)
    assert tok.convert_tokens_to_ids("<|system|>") not in ids
    assert ids.count(tok.bos_token_id) == 1


def test_end_of_turn_ids_is_the_eot_token(tok):
    eot = tok.convert_tokens_to_ids("<|eot|>")
    assert end_of_turn_ids(tok) == [eot]
    assert eot in stop_token_ids(tok)
    assert encode_completion(tok, "Hello")[-1] == eot
    assert encode_completion(tok, "Hello", add_end=False)[-1] != eot


def test_bpe_merge_across_the_boundary_does_not_shift_labels(llama):
    tok, model = llama.tokenizer, llama.model
    prompt_text, completion_text = "We", "llo"
    joint = tok(prompt_text + completion_text, add_special_tokens=False)["input_ids"]
    prompt_ids = tok(prompt_text, add_special_tokens=False)["input_ids"]
    alone = tok(completion_text, add_special_tokens=False)["input_ids"]
    # the case: joint tokenisation merges across the boundary ("Wello" != "We" + "llo")
    assert joint[: len(prompt_ids)] != prompt_ids or joint != prompt_ids + alone
    comp_ids = encode_completion(tok, completion_text)
    assert comp_ids[: len(alone)] == alone
    c = api.Completion(user="u", prompt_ids=prompt_ids, completion_ids=comp_ids, text=completion_text)
    bt = batch_tensors([c], tok, "cpu")
    assert bt.targets[0].item() == alone[0]  # the label of the first completion token is its own first token
    assert bt.targets.tolist() == comp_ids
    # the scorer uses the same alignment
    lp = completion_logprobs(model, tok, [c], batch_size=4)[0]
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([prompt_ids + comp_ids])).logits[0].float()
    want = torch.log_softmax(logits[len(prompt_ids) - 1], -1)[alone[0]].item()
    assert len(lp) == len(comp_ids)
    assert abs(lp[0] - want) < 1e-5


def test_rendered_prompt_plus_completion_keeps_the_completion_tokens(tok):
    prompt = render_prompt(tok, "Hello", "Be kind.")
    comp = encode_completion(tok, "Thank you for asking.")
    seq = prompt + comp
    assert seq[len(prompt)] == tok("Thank you for asking.", add_special_tokens=False)["input_ids"][0]
    assert seq[: len(prompt)] == prompt
