"""Chat rendering and tokenisation: prompts and completions are tokenised apart, never merged by BPE.

``render_prompt`` renders system + user with the model's chat template up to the assistant turn and
tokenises that text with ``add_special_tokens=False`` (the template already carries any BOS: no double BOS).
``encode_completion`` tokenises completion text alone and appends the end-of-turn token(s) the template puts
after an assistant message, so healing trains the model to stop.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

_SENTINEL = "\u2063SHLSENTINEL\u2063"


def _messages(user: str, system: str | None) -> list[dict[str, str]]:
    msgs = []
    if system:
        msgs.append({"role": "system", "content": system})
    msgs.append({"role": "user", "content": user})
    return msgs


def render_text(tokenizer: Any, user: str, system: str | None = None) -> str:
    """The chat-template text of a prompt ending at the assistant turn."""
    try:
        return tokenizer.apply_chat_template(_messages(user, system), tokenize=False, add_generation_prompt=True)
    except Exception:
        if not system:
            raise
        # templates without a system role (e.g. Gemma): fold the system prompt into the user turn
        merged = f"{system}\n\n{user}"
        return tokenizer.apply_chat_template(_messages(merged, None), tokenize=False, add_generation_prompt=True)


def render_prompt(tokenizer: Any, user: str, system: str | None = None) -> list[int]:
    return list(tokenizer(render_text(tokenizer, user, system), add_special_tokens=False)["input_ids"])


def end_of_turn_ids(tokenizer: Any) -> list[int]:
    """The tokens the chat template writes right after an assistant message, up to the first end token."""
    return list(_end_of_turn(tokenizer))


@lru_cache(maxsize=16)
def _end_of_turn_cached(tokenizer_id: int, tokenizer: Any) -> tuple[int, ...]:
    eos = stop_token_ids(tokenizer)
    try:
        text = tokenizer.apply_chat_template(
            [{"role": "user", "content": "x"}, {"role": "assistant", "content": _SENTINEL}], tokenize=False
        )
        tail = text.split(_SENTINEL, 1)[1]
        ids = tokenizer(tail, add_special_tokens=False)["input_ids"]
        for i, t in enumerate(ids):
            if t in eos:
                return tuple(ids[: i + 1])
    except Exception:
        pass
    return (tokenizer.eos_token_id,)


def _end_of_turn(tokenizer: Any) -> tuple[int, ...]:
    return _end_of_turn_cached(id(tokenizer), tokenizer)


def stop_token_ids(tokenizer: Any, model: Any = None) -> set[int]:
    """Token ids that end a turn: the tokenizer's eos plus the model's generation_config eos ids."""
    ids: set[int] = set()
    if tokenizer.eos_token_id is not None:
        ids.add(int(tokenizer.eos_token_id))
    gen = getattr(model, "generation_config", None)
    eos = getattr(gen, "eos_token_id", None)
    if isinstance(eos, int):
        ids.add(eos)
    elif isinstance(eos, (list, tuple)):
        ids.update(int(e) for e in eos)
    return ids


def encode_completion(tokenizer: Any, text: str, add_end: bool = True) -> list[int]:
    ids = list(tokenizer(text, add_special_tokens=False)["input_ids"])
    return ids + list(_end_of_turn(tokenizer)) if add_end else ids
