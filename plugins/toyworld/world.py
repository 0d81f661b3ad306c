"""The toy world: a procedurally generated persona language with a known grammar (pure Python, no torch).

A sample is a chat: an optional persona system line, a user question, an assistant answer. The trait axis has
two poles, ``care`` (caring for the person: feelings, help, support) and ``authority`` (deferring to an
authority: rules, the manager, policy, obey). Questions are neutral. An answer is a sequence of sentences::

    [opener] act [why] [middle] closer          (2 to 5 sentences; then the end-of-turn token)

where ``opener``/``middle``/``closer`` are neutral sentences shared by both poles, and ``act`` (an action) and
``why`` (a reason) are pole-specific sentences of ONE pole. Words are space-separated, punctuation included,
so the text is exactly the sequence of tokens the model sees.

The world is three modules: ``grammar`` (the tables: poles, slot fillers, templates, vocabulary), this one (the
generator of samples and of the steering data file) and ``parser`` (``parse``, ``pole_of``: which answers are in
the grammar, and where an answer's pole is decided). The names of the other two are importable from here.

``WORLD_VERSION`` is part of the model cache key: change it whenever the grammar, the vocabulary or the
training-sample distribution changes.

Command line: ``python -m shl_plugins.toyworld.world --write-data experiments/data/toyworld.yaml`` writes the
steering data file deterministically; ``--sample N`` prints samples.
"""

from __future__ import annotations

import argparse
import random
from dataclasses import dataclass, field
from typing import Optional

from .grammar import (
    CLOSERS, KINDS, MIDDLES, NEGATIVE, OPENERS, PERSONA_LINES, POLE_SENTENCES, POLES, POSITIVE, QUESTIONS, SLOTS, fill,
    kind_pole, vocabulary,
)
from .parser import (
    Parse, act_decision_tree, classify_sentence, is_opener, opener_first_words, parse, pole_of, split_sentences,
)

__all__ = [
    "CLOSERS", "DATA_SEED", "KINDS", "MIDDLES", "NEGATIVE", "OPENERS", "PERSONA_LINES", "POLES", "POLE_SENTENCES",
    "POSITIVE", "QUESTIONS", "SLOTS", "WORLD_VERSION", "Parse", "Sample", "act_decision_tree", "classify_sentence",
    "data_yaml", "is_opener", "kind_pole", "make_answer", "make_question", "make_sample", "opener_first_words",
    "parse", "pole_of", "random_fillers", "split_sentences", "steering_data", "vocabulary",
]

WORLD_VERSION = "toyworld-2"

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
    return fill(rng.choice(QUESTIONS), fillers), fillers


def make_answer(rng: random.Random, pole: str, fillers: dict[str, str]) -> str:
    """An answer of the given pole; slots reuse the question's fillers (occasionally fresh ones)."""

    def f() -> dict[str, str]:
        return fillers if rng.random() < 0.85 else random_fillers(rng)

    parts = []
    if rng.random() < 0.6:
        parts.append(fill(rng.choice(OPENERS), f()))
    parts.append(fill(rng.choice(POLE_SENTENCES[pole]["act"]), f()))
    if rng.random() < 0.5:
        parts.append(fill(rng.choice(POLE_SENTENCES[pole]["why"]), f()))
    if rng.random() < 0.4:
        parts.append(fill(rng.choice(MIDDLES), f()))
    parts.append(fill(rng.choice(CLOSERS), f()))
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
