"""An in-process byte-level BPE tokenizer with a chat template, for tiny random models (no download)."""

from __future__ import annotations

import functools
import itertools
from typing import Any

BOS, EOT, PAD = "<|bos|>", "<|eot|>", "<|pad|>"
ROLE_TOKENS = ("<|system|>", "<|user|>", "<|assistant|>")
SPECIAL_TOKENS = [PAD, BOS, EOT, *ROLE_TOKENS]
VOCAB_SIZE = 512

CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{% for message in messages %}"
    "{% if message['role'] not in ['system', 'user', 'assistant'] %}"
    "{{ raise_exception('unknown chat role: ' + message['role']) }}"
    "{% endif %}"
    "{{ '<|' + message['role'] + '|>\n' + message['content'] + '<|eot|>' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|assistant|>\n' }}{% endif %}"
)

_SUBJECTS = ["I", "You", "We", "They", "The doctor", "My friend", "The teacher", "A neighbour", "The manager", "Our team"]
_VERBS = ["think", "know", "feel", "believe", "decided", "said", "wrote", "asked", "remembered", "explained"]
_OBJECTS = [
    "that the plan is good", "what we should do next", "how to help the children", "why the rules matter",
    "where the old house stood", "when the meeting starts", "that everyone deserves care", "the answer to your question",
    "that order keeps us safe", "how kindness changes people",
]
_EXTRA = [
    "Hello! How are you today?", "Thank you for asking; I am happy to help.", "Please follow the instructions carefully.",
    "It is important to listen, to be patient, and to be kind.", "Rules exist for a reason: respect them.",
    "Could you tell me more about your situation?", "Here are three steps: first, rest; second, eat; third, plan.",
    "The weather was cold, but the house was warm.", "She smiled and said, \"Don't worry, we'll fix it.\"",
    "Numbers like 1, 2, 3, 10 and 2024 appear in text too.", "Authority, duty, loyalty, obedience and tradition.",
    "Care, compassion, gentleness, comfort and support.", "What would you like to do? Let's talk about it.",
]


def corpus() -> list[str]:
    """A small deterministic English corpus: template sentences plus a few fixed lines."""
    lines = [f"{s} {v} {o}." for s, v, o in itertools.product(_SUBJECTS, _VERBS, _OBJECTS)]
    return lines + _EXTRA * 5


def build_tokenizer() -> Any:
    """Train a fresh byte-level BPE (vocab 512) and wrap it as a transformers fast tokenizer."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB_SIZE,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(corpus(), trainer=trainer)
    wrapped = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token=BOS,
        eos_token=EOT,
        pad_token=PAD,
        additional_special_tokens=list(ROLE_TOKENS),
        padding_side="left",
    )
    wrapped.chat_template = CHAT_TEMPLATE
    return wrapped


@functools.lru_cache(maxsize=1)
def _cached() -> Any:
    return build_tokenizer()


def tiny_tokenizer() -> Any:
    """The process-wide tiny tokenizer (built once; callers must not mutate it)."""
    return _cached()
