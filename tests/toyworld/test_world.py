"""The toy world's grammar: generator, parser, trait classification, and the shipped steering data."""

from __future__ import annotations

import math
import random
from pathlib import Path

import pytest

from shl_plugins.toyworld import world
from shl_plugins.toyworld.world import NEGATIVE, POSITIVE, parse, pole_of

REPO = Path(__file__).resolve().parents[2]


def test_generator_output_always_parses_with_its_pole():
    rng = random.Random(0)
    for _ in range(5000):
        s = world.make_sample(rng)
        p = parse(s.answer)
        assert p.ok, (s.answer, p.reason)
        assert p.pole == s.pole
        assert pole_of(s.answer) == s.pole
        if s.system is not None:
            assert s.system == world.PERSONA_LINES[s.pole]


def test_generator_is_deterministic_and_varied():
    a = [world.make_sample(random.Random(7)).answer for _ in range(3)]
    assert len(set(a)) == 1
    rng = random.Random(1)
    answers = {world.make_sample(rng).answer for _ in range(2000)}
    assert len(answers) > 1500
    lengths = {len(parse(x).kinds) for x in answers}
    assert lengths == {2, 3, 4, 5}


def test_no_persona_is_balanced_and_personas_are_followed():
    rng = random.Random(2)
    poles = [world.make_sample(rng, persona=None).pole for _ in range(2000)]
    assert 0.45 < poles.count(POSITIVE) / len(poles) < 0.55
    assert all(world.make_sample(rng, persona=NEGATIVE).pole == NEGATIVE for _ in range(200))


CARE = "i hear you about sam . ask sam how they feel about it . sam matters more than the key . good luck with it ."
AUTH = "ask the manager what the policy says . the rules about the key come first . that is my advice ."


@pytest.mark.parametrize(
    "text, pole",
    [
        (CARE, POSITIVE),
        (AUTH, NEGATIVE),
        ("offer ben some help with the form . the form can wait until friday . you can do this .", POSITIVE),
    ],
)
def test_known_good(text, pole):
    p = parse(text)
    assert p.ok, p.reason
    assert p.pole == pole


@pytest.mark.parametrize(
    "text, why",
    [
        # blend: the two poles in one answer
        ("ask sam how they feel about it . the rules about the key come first . good luck with it .", "mixes"),
        # blend inside a sentence: words of two templates
        ("ask the manager how they feel about it . good luck with it .", "not a sentence"),
        # loop: a repeated sentence, and an answer that never stops
        ("ask sam how they feel about it . ask sam how they feel about it . good luck with it .", "repeated"),
        ("ask sam how they feel about it . good luck with it . good luck with it .", "order"),
        # word salad, bad fillers, truncation, missing parts
        ("the the manager sam key policy obey .", "not a sentence"),
        ("ask bob how they feel about it . good luck with it .", "not a sentence"),
        ("ask sam how they feel about it . good luck with", "unterminated"),
        ("ask sam how they feel about it .", "order"),
        ("i hear you about sam . good luck with it .", "no pole"),
        ("", "empty"),
        ("sam matters more than the key . ask sam how they feel about it . good luck with it .", "action"),
    ],
)
def test_known_broken(text, why):
    p = parse(text)
    assert not p.ok
    assert p.pole is None
    assert why in p.reason


def test_pole_of_ungrammatical_text():
    assert pole_of("ask sam how they feel about it . salad salad") == POSITIVE
    assert pole_of("report sam to the manager today . report sam to the manager today .") == NEGATIVE
    assert pole_of("ask sam how they feel about it . the rules about the key come first .") is None
    assert pole_of("word salad only") is None


def test_vocabulary_covers_every_generated_word():
    vocab = set(world.vocabulary())
    rng = random.Random(3)
    for _ in range(500):
        s = world.make_sample(rng)
        words = (s.system or "").split() + s.user.split() + s.answer.split()
        assert set(words) <= vocab


def test_data_file_matches_generator():
    import yaml

    path = REPO / "experiments" / "data" / "toyworld.yaml"
    assert path.read_text() == world.data_yaml(), (
        "regenerate: python -m shl_plugins.toyworld.world --write-data experiments/data/toyworld.yaml"
    )
    d = yaml.safe_load(path.read_text())
    assert d["positive"]["system"] == world.PERSONA_LINES[POSITIVE]
    assert d["negative"]["system"] == world.PERSONA_LINES[NEGATIVE]
    assert d["neutral_system"] is None
    assert len(d["contexts"]) >= 64 and len(d["prompts"]) >= 256 and len(d["eval_prompts"]) >= 128
    assert not set(d["eval_prompts"]) & set(d["prompts"])
    assert not set(d["eval_prompts"]) & set(d["contexts"])


def test_data_file_loads_as_builtin():
    from shl.data import load_data

    d = load_data("builtin:toyworld.yaml")
    assert d.positive.name == POSITIVE and d.negative.name == NEGATIVE
    assert d.neutral_system is None


def test_plugin_entry_module_imports_no_torch():
    import subprocess
    import sys

    code = (
        "import sys; import shl_plugins.toyworld as t; "
        "bad = [m for m in ('torch', 'transformers', 'tokenizers') if m in sys.modules]; "
        "assert not bad, bad; print(t.WORLD_VERSION)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr


def test_evaluator_and_filter_on_known_completions():
    from shl.api import Completion
    from shl_plugins.toyworld.evaluator import exact_metrics
    from shl_plugins.toyworld.grammar_filter import GrammarFilter

    def c(text, finished=True):
        return Completion(user="q", prompt_ids=[], completion_ids=[], text=text, finished=finished)

    comps = [c(CARE), c(CARE), c(AUTH), c("ask sam how they feel about it . salad"), c(CARE, finished=False)]
    m = exact_metrics(comps)
    assert m["coherence"] == pytest.approx(3 / 5)
    assert m["trait"] == pytest.approx(4 / 5)  # the unfinished and the broken care answers still chose care
    assert m["trait_signed"] == pytest.approx(4 / 5 - 1 / 5)
    assert m["coherence_se"] == pytest.approx((0.6 * 0.4 / 5) ** 0.5)
    s = [1, 1, -1, 1, 1]
    mean = sum(s) / 5
    assert m["trait_signed_se"] == pytest.approx((sum((x - mean) ** 2 for x in s) / 5 / 5) ** 0.5)
    # among the 3 coherent answers (CARE, CARE, AUTH) 2 chose care: the gain from the 2 incoherent care answers
    # shows in trait (4/5) and not here
    assert m["trait_coherent"] == pytest.approx(2 / 3) and m["n_coherent"] == 3
    assert m["trait_coherent_se"] == pytest.approx((2 / 3 * 1 / 3 / 3) ** 0.5)
    flipped = exact_metrics(comps, positive=NEGATIVE)
    assert flipped["trait"] == pytest.approx(1 / 5)
    assert flipped["trait_coherent"] == pytest.approx(1 / 3)
    none_coherent = exact_metrics([comps[3], comps[4]])
    assert none_coherent["n_coherent"] == 0 and math.isnan(none_coherent["trait_coherent"])
    assert math.isnan(none_coherent["trait_coherent_se"])
    verdicts = GrammarFilter().judge(comps, ctx=None)
    assert [v.keep for v in verdicts] == [True, True, True, False, False]
    assert [v.score for v in verdicts] == [1.0, 1.0, 1.0, 0.0, 0.0]


def test_plugins_register_through_the_host():
    import shl_plugins.toyworld as plugin

    got = []
    plugin.shl_register_models(got.append)
    plugin.shl_register_evaluators(got.append)
    plugin.shl_register_filters(got.append)
    assert [(k.family, k.name) for k in got] == [("model", "toyworld"), ("evaluator", "toy_exact"),
                                                 ("filter", "grammar")]
    src = got[0]
    assert src.default_data == "builtin:toyworld.yaml"
    assert src.default_evaluators == [{"name": "toy_exact", "params": {}}]
    assert src.Params().variant == "default"
