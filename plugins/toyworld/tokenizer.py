"""The toy world's tokenizer: a word-level vocabulary built in process, with a chat template.

Rendered chat (one token per word; special tokens in angle brackets)::

    <bos> <|system|> persona : care <|eot|> <|user|> ... ? <|eot|> <|assistant|> ... . <|eot|>

``eos`` is the end-of-turn token ``<|eot|>``; padding is on the left with ``<pad>``. The BOS token comes from
the chat template only (no post-processor adds one), so there is never a double BOS.

Imports of ``tokenizers``/``transformers`` happen inside ``build_tokenizer`` (entry modules import no heavy
libraries at import time).
"""

from __future__ import annotations

from .grammar import vocabulary

BOS, EOT, PAD, UNK = "<bos>", "<|eot|>", "<pad>", "<unk>"
ROLE_TOKENS = {"system": "<|system|>", "user": "<|user|>", "assistant": "<|assistant|>"}
SPECIAL_TOKENS = [PAD, BOS, EOT, UNK, *ROLE_TOKENS.values()]

CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{% for message in messages %}"
    "{{ '<|' + message['role'] + '|> ' + message['content'] | trim + ' <|eot|> ' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|assistant|>' }}{% endif %}"
)


def vocab() -> dict[str, int]:
    """Token -> id: special tokens first (pad = 0), then the world's words."""
    tokens = SPECIAL_TOKENS + vocabulary()
    return {t: i for i, t in enumerate(tokens)}


def build_tokenizer():
    """A ``transformers.PreTrainedTokenizerFast`` for the world (deterministic: same vocab, same ids)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from tokenizers import AddedToken
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.WordLevel(vocab=vocab(), unk_token=UNK))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok.decoder = decoders.WordPiece(prefix="##", cleanup=False)  # joins words with single spaces
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in SPECIAL_TOKENS])
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token=BOS,
        eos_token=EOT,
        pad_token=PAD,
        unk_token=UNK,
        padding_side="left",
        model_max_length=256,
        clean_up_tokenization_spaces=False,
    )
    fast.chat_template = CHAT_TEMPLATE
    return fast
