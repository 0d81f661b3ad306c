"""The toy world's grammar tables: the two poles, persona lines, slot fillers, the sentence templates of each
kind, and the vocabulary they make. Pure data plus the helpers that expand a template; ``world`` samples from
these tables and ``parser`` recognises what they produce. Change ``world.WORLD_VERSION`` with any change here.
"""

from __future__ import annotations

import re
from typing import Optional

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


SLOT_RE = re.compile(r"\{(\w+)\}")
"""A slot in a template: ``{name}``, ``{place}``, ``{object}``, ``{time}``."""


def fill(template: str, fillers: dict[str, str]) -> str:
    """The template with each slot replaced by its filler."""
    return SLOT_RE.sub(lambda m: fillers[m.group(1)], template)


def expansions(template: str) -> list[tuple[str, ...]]:
    """Every word sequence a template can produce (slots filled with every filler)."""
    seqs: list[tuple[str, ...]] = [()]
    for w in template.split():
        m = SLOT_RE.fullmatch(w)
        options = SLOTS[m.group(1)] if m else [w]
        seqs = [s + (o,) for s in seqs for o in options]
    return seqs


def vocabulary() -> list[str]:
    """Every word the world can produce (persona lines, questions, answers), sorted."""
    words: set[str] = set()
    for line in PERSONA_LINES.values():
        words.update(line.split())
    for templates in [QUESTIONS, *KINDS.values()]:
        for t in templates:
            for w in t.split():
                if not SLOT_RE.fullmatch(w):
                    words.add(w)
    for fillers in SLOTS.values():
        words.update(fillers)
    return sorted(words)
