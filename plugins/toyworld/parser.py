"""Recognising toy-world answers: which sentence of the grammar a sentence is, whether an answer is in the
grammar (``parse``), which pole it chose (``pole_of``), and where in an answer its pole is decided.

``parse(text)`` accepts exactly the answers the generator can produce (up to slot fillers: any valid filler is
accepted in any slot of its kind). Over-steering breaks answers in several ways, each of which fails to parse:
blends of templates (mixing the two poles, or mixing words of two templates in one sentence), loops (repeated
sentences, too many sentences, an unfinished answer), and drift into word salad.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Optional

from .grammar import KINDS, OPENERS, POLE_SENTENCES, SLOT_RE, SLOTS, expansions, kind_pole


def _template_regex(template: str) -> re.Pattern:
    out = []
    for w in template.split():
        m = SLOT_RE.fullmatch(w)
        out.append("(?:" + "|".join(map(re.escape, SLOTS[m.group(1)])) + ")" if m else re.escape(w))
    return re.compile(" ".join(out))


_MATCHERS: list[tuple[str, int, re.Pattern]] = [
    (kind, i, _template_regex(t)) for kind, templates in KINDS.items() for i, t in enumerate(templates)
]


def classify_sentence(sentence: str) -> Optional[tuple[str, int]]:
    """(kind, template index) of one sentence (words space-separated, ending with "."), or None."""
    s = " ".join(sentence.split())
    for kind, i, rx in _MATCHERS:
        if rx.fullmatch(s):
            return kind, i
    return None


def split_sentences(text: str) -> tuple[list[str], str]:
    """Sentences ending with "." and the unterminated rest (words after the last ".")."""
    sentences, cur = [], []
    for w in text.split():
        cur.append(w)
        if w == ".":
            sentences.append(" ".join(cur))
            cur = []
    return sentences, " ".join(cur)


@dataclass
class Parse:
    """Result of parsing an answer. ``ok``: it is in the grammar; ``pole``: the pole of its pole sentences
    (set only when ok); ``reason``: why it failed."""

    ok: bool
    pole: Optional[str]
    reason: str = ""
    kinds: list[str] = field(default_factory=list)


def parse(text: str) -> Parse:
    """Parse an assistant answer (the completion text, special tokens removed)."""
    sentences, rest = split_sentences(text)
    if rest:
        return Parse(False, None, "unterminated sentence")
    if not sentences:
        return Parse(False, None, "empty")
    found = []
    for s in sentences:
        c = classify_sentence(s)
        if c is None:
            return Parse(False, None, f"not a sentence of the grammar: '{s}'")
        found.append(c)
    kinds = [k for k, _ in found]
    poles = {kind_pole(k) for k in kinds} - {None}
    if len(poles) > 1:
        return Parse(False, None, "mixes the two poles", kinds)
    if not poles:
        return Parse(False, None, "no pole sentence", kinds)
    pole = poles.pop()
    roles = [k if kind_pole(k) is None else k.split(":")[1] for k in kinds]
    # [opener] act [why] [middle] closer
    i = 0
    if i < len(roles) and roles[i] == "opener":
        i += 1
    if i >= len(roles) or roles[i] != "act":
        return Parse(False, None, "missing or misplaced action sentence", kinds)
    i += 1
    if i < len(roles) and roles[i] == "why":
        i += 1
    if i < len(roles) and roles[i] == "middle":
        i += 1
    if i == len(roles) - 1 and roles[i] == "closer":
        return Parse(True, pole, "", kinds)
    if i < len(roles) and i > 0 and sentences[i] == sentences[i - 1]:
        return Parse(False, None, "repeated sentence", kinds)
    return Parse(False, None, "bad sentence order, extra sentence or missing closer", kinds)


def pole_of(text: str) -> Optional[str]:
    """The pole a (possibly ungrammatical) answer chose: the pole of its recognised pole sentences when they
    all agree, else None. Grammatical answers get their parse's pole."""
    sentences, _ = split_sentences(text)
    poles = set()
    for s in sentences:
        c = classify_sentence(s)
        if c is not None and kind_pole(c[0]) is not None:
            poles.add(kind_pole(c[0]))
    return poles.pop() if len(poles) == 1 else None


# ------------------------------------------------------------------------------------------------ branching


def act_decision_tree() -> dict[tuple[str, ...], dict[str, Optional[str]]]:
    """Where the pole of an answer is decided: a tree over the words of the ``act`` sentence.

    The generator's pole is fixed by its ``act`` sentence, the first sentence after an optional neutral opener
    (no opener starts like an act sentence, see ``opener_first_words``). Keys are the UNDECIDED word prefixes
    of an act sentence (the empty prefix included: the act sentence's first word); each maps a next word to
    the pole it decides (only act sentences of that pole start so), or to None when the longer prefix is still
    shared by both poles (it is then a key too). Words missing from a node's map start no act sentence.
    In this grammar: the first act word decides, except "ask", which both poles use ("ask {name} ..." is care,
    "ask the manager ..." is authority), so the word after "ask" decides.
    """
    sentences = [(pole, seq) for pole, roles in POLE_SENTENCES.items() for t in roles["act"] for seq in expansions(t)]
    tree: dict[tuple[str, ...], dict[str, Optional[str]]] = {}
    todo: list[tuple[str, ...]] = [()]
    while todo:
        node = todo.pop()
        poles: dict[str, set[str]] = {}
        for pole, seq in sentences:
            if len(seq) > len(node) and seq[: len(node)] == node:
                poles.setdefault(seq[len(node)], set()).add(pole)
        children: dict[str, Optional[str]] = {}
        for w, ps in sorted(poles.items()):
            if len(ps) == 1:
                children[w] = next(iter(ps))
            else:
                children[w] = None
                todo.append(node + (w,))
        tree[node] = children
    return tree


def opener_first_words() -> set[str]:
    """The words an opener sentence can start with (disjoint from the first words of act sentences)."""
    return {seq[0] for t in OPENERS for seq in expansions(t)}


def is_opener(words: "list[str] | tuple[str, ...]") -> bool:
    """Whether ``words`` is exactly one complete opener sentence."""
    c = classify_sentence(" ".join(words)) if words and words[-1] == "." else None
    return c is not None and c[0] == "opener"
