"""The toy world: a procedurally generated persona language with a known grammar (pure Python, no torch).

A sample is a chat: an optional persona system line, a user question, an assistant answer. The trait axis has
two poles, ``care`` (caring for the person: feelings, help, support) and ``authority`` (deferring to an
authority: rules, the manager, policy, obey). Questions are neutral. An answer is a sequence of sentences::

    [opener] act [why] [middle] closer          (2 to 5 sentences; then the end-of-turn token)

where ``opener``/``middle``/``closer`` are neutral sentences shared by both poles, and ``act`` (an action) and
``why`` (a reason) are pole-specific sentences of ONE pole. Words are space-separated, punctuation included,
so the text is exactly the sequence of tokens the model sees.

``parse(text)`` accepts exactly the answers the generator can produce (up to slot fillers: any valid filler is
accepted in any slot of its kind). Over-steering breaks answers in several ways, each of which fails to parse:
blends of templates (mixing the two poles, or mixing words of two templates in one sentence), loops (repeated
sentences, too many sentences, an unfinished answer), and drift into word salad.

``WORLD_VERSION`` is part of the model cache key: change it whenever the grammar, the vocabulary or the
training-sample distribution changes.

Command line: ``python -m shl_plugins.toyworld.world --write-data experiments/data/toyworld.yaml`` writes the
steering data file deterministically; ``--sample N`` prints samples.
"""

from __future__ import annotations

import argparse
import random
import re
from dataclasses import dataclass, field
from typing import Optional

WORLD_VERSION = "toyworld-2"

POSITIVE = "care"
NEGATIVE = "authority"
POLES = (POSITIVE, NEGATIVE)

PERSONA_LINES = {POSITIVE: "persona : care", NEGATIVE: "persona : authority"}

# ------------------------------------------------------------------------------------------------ slot fillers

SLOTS: dict[str, list[str]] = {
    "name": ["sam", "ana", "leo", "mia", "tom", "eva", "ben", "zoe", "max", "ivy", "noah", "lily"],
    "place": ["office", "shop", "school", "clinic", "kitchen", "warehouse", "library", "station"],
    "object": ["report", "schedule", "order", "form", "key", "budget", "list", "package"],
    "time": ["today", "tonight", "tomorrow", "monday", "friday"],
}

# ------------------------------------------------------------------------------------------------ templates

QUESTIONS = [
    "{name} is upset about the {object} at the {place} . what should i do ?",
    "my coworker {name} missed the {object} {time} . how should i respond ?",
    "at the {place} , {name} asked me to skip the {object} . what do you suggest ?",
    "{name} forgot the {object} and the {place} closes {time} . any advice ?",
    "i found {name} crying near the {place} . what now ?",
    "the {object} for the {place} is late because of {name} . what should i say ?",
    "{name} wants to change the {object} before {time} . what should i do ?",
    "there is a problem with the {object} and {name} is worried . how do i handle it ?",
    "{name} broke the {object} at the {place} {time} . what is the right move ?",
    "should i let {name} take the {object} home from the {place} ?",
]

OPENERS = [
    "i hear you about {name} .",
    "that sounds hard at the {place} .",
    "thanks for asking about the {object} .",
    "this happens a lot at the {place} .",
    "let me think about {name} and the {object} .",
]

# Pole-specific sentences come in two roles: an action ("act") and, optionally, a reason ("why").
POLE_SENTENCES = {
    POSITIVE: {
        "act": [
            "ask {name} how they feel about it .",
            "stay with {name} and listen to them .",
            "offer {name} some help with the {object} .",
            "check on {name} again {time} and comfort them .",
        ],
        "why": [
            "{name} matters more than the {object} .",
            "people like {name} need kindness and support .",
            "how {name} feels is what counts .",
        ],
    },
    NEGATIVE: {
        "act": [
            "ask the manager what the policy says .",
            "follow the policy at the {place} and obey .",
            "report {name} to the manager {time} .",
            "get written approval for the {object} from the director .",
        ],
        "why": [
            "the rules about the {object} come first .",
            "the {object} must follow the official procedure .",
            "do what the boss says , not what {name} wants .",
        ],
    },
}

MIDDLES = [
    "take a moment to think at the {place} .",
    "the {object} can wait until {time} .",
    "write down what happened with the {object} .",
    "talk it through before you act .",
]

CLOSERS = [
    "that is my advice .",
    "good luck with it .",
    "i hope this helps .",
    "you can do this .",
]

KINDS: dict[str, list[str]] = {"opener": OPENERS, "middle": MIDDLES, "closer": CLOSERS}
for _pole, _roles in POLE_SENTENCES.items():
    for _role, _templates in _roles.items():
        KINDS[f"{_pole}:{_role}"] = _templates


def kind_pole(kind: str) -> Optional[str]:
    """The pole of a sentence kind ("care:act" -> "care"), None for neutral kinds."""
    return kind.split(":")[0] if ":" in kind else None

_SLOT_RE = re.compile(r"\{(\w+)\}")


def _fill(template: str, fillers: dict[str, str]) -> str:
    return _SLOT_RE.sub(lambda m: fillers[m.group(1)], template)


def vocabulary() -> list[str]:
    """Every word the world can produce (persona lines, questions, answers), sorted."""
    words: set[str] = set()
    for line in PERSONA_LINES.values():
        words.update(line.split())
    for templates in [QUESTIONS, *KINDS.values()]:
        for t in templates:
            for w in t.split():
                if not _SLOT_RE.fullmatch(w):
                    words.add(w)
    for fillers in SLOTS.values():
        words.update(fillers)
    return sorted(words)


# ------------------------------------------------------------------------------------------------ generator


@dataclass
class Sample:
    """One chat sample. ``system`` is a persona line or None; ``pole`` the answer's pole."""

    system: Optional[str]
    user: str
    answer: str
    pole: str
    fillers: dict[str, str] = field(default_factory=dict)

    def messages(self) -> list[dict[str, str]]:
        msgs = []
        if self.system:
            msgs.append({"role": "system", "content": self.system})
        msgs.append({"role": "user", "content": self.user})
        msgs.append({"role": "assistant", "content": self.answer})
        return msgs


def random_fillers(rng: random.Random) -> dict[str, str]:
    return {k: rng.choice(v) for k, v in SLOTS.items()}


def make_question(rng: random.Random, fillers: Optional[dict[str, str]] = None) -> tuple[str, dict[str, str]]:
    fillers = fillers or random_fillers(rng)
    return _fill(rng.choice(QUESTIONS), fillers), fillers


def make_answer(rng: random.Random, pole: str, fillers: dict[str, str]) -> str:
    """An answer of the given pole; slots reuse the question's fillers (occasionally fresh ones)."""

    def f() -> dict[str, str]:
        return fillers if rng.random() < 0.85 else random_fillers(rng)

    parts = []
    if rng.random() < 0.6:
        parts.append(_fill(rng.choice(OPENERS), f()))
    parts.append(_fill(rng.choice(POLE_SENTENCES[pole]["act"]), f()))
    if rng.random() < 0.5:
        parts.append(_fill(rng.choice(POLE_SENTENCES[pole]["why"]), f()))
    if rng.random() < 0.4:
        parts.append(_fill(rng.choice(MIDDLES), f()))
    parts.append(_fill(rng.choice(CLOSERS), f()))
    return " ".join(parts)


def make_sample(rng: random.Random, persona: Optional[str] = "random") -> Sample:
    """A sample. ``persona``: a pole name (system line of that pole), None (no system line, pole 50/50),
    or "random" (one third each: care, authority, none)."""
    if persona == "random":
        persona = rng.choice([POSITIVE, NEGATIVE, None])
    user, fillers = make_question(rng)
    pole = persona if persona is not None else rng.choice(POLES)
    return Sample(
        system=PERSONA_LINES[persona] if persona is not None else None,
        user=user,
        answer=make_answer(rng, pole, fillers),
        pole=pole,
        fillers=fillers,
    )


# ------------------------------------------------------------------------------------------------ parser


def _template_regex(template: str) -> re.Pattern:
    out = []
    for w in template.split():
        m = _SLOT_RE.fullmatch(w)
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


def _expansions(template: str) -> list[tuple[str, ...]]:
    """Every word sequence a template can produce (slots filled with every filler)."""
    seqs: list[tuple[str, ...]] = [()]
    for w in template.split():
        m = _SLOT_RE.fullmatch(w)
        options = SLOTS[m.group(1)] if m else [w]
        seqs = [s + (o,) for s in seqs for o in options]
    return seqs


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
    sentences = [(pole, seq) for pole, roles in POLE_SENTENCES.items() for t in roles["act"] for seq in _expansions(t)]
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
    return {seq[0] for t in OPENERS for seq in _expansions(t)}


def is_opener(words: "list[str] | tuple[str, ...]") -> bool:
    """Whether ``words`` is exactly one complete opener sentence."""
    c = classify_sentence(" ".join(words)) if words and words[-1] == "." else None
    return c is not None and c[0] == "opener"


# ------------------------------------------------------------------------------------------------ data file

DATA_SEED = 1234


def steering_data(n_contexts: int = 96, n_prompts: int = 320, n_eval: int = 200, seed: int = DATA_SEED) -> dict:
    """The steering data for the world (deterministic): persona pair, contexts, prompts, eval prompts.

    The three pools of user questions are pairwise disjoint."""
    rng = random.Random(seed)
    seen: set[str] = set()
    pools: list[list[str]] = []
    for n in (n_contexts, n_prompts, n_eval):
        pool: list[str] = []
        while len(pool) < n:
            q, _ = make_question(rng)
            if q not in seen:
                seen.add(q)
                pool.append(q)
        pools.append(pool)
    return {
        "positive": {"name": POSITIVE, "system": PERSONA_LINES[POSITIVE]},
        "negative": {"name": NEGATIVE, "system": PERSONA_LINES[NEGATIVE]},
        "neutral_system": None,
        "contexts": pools[0],
        "prompts": pools[1],
        "eval_prompts": pools[2],
        "narration_words": ["persona", "caring", "authority", "trait"],
    }


def data_yaml() -> str:
    import yaml

    header = (
        f"# Steering data for the toy world ({WORLD_VERSION}). Generated; do not edit by hand:\n"
        "#   python -m shl_plugins.toyworld.world --write-data experiments/data/toyworld.yaml\n"
    )
    return header + yaml.safe_dump(steering_data(), sort_keys=False, width=200)


def main(argv: Optional[list[str]] = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--write-data", metavar="PATH", help="write the steering data YAML file")
    ap.add_argument("--sample", type=int, default=0, metavar="N", help="print N samples")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    if args.write_data:
        with open(args.write_data, "w") as fh:
            fh.write(data_yaml())
        print(f"wrote {args.write_data}")
    rng = random.Random(args.seed)
    for _ in range(args.sample):
        s = make_sample(rng)
        print(f"[{s.system}] {s.user}\n  -> ({s.pole}) {s.answer}")


if __name__ == "__main__":
    main()
