"""The four properties of the DEFAULT toy model (the issue's acceptance criteria), through the engine's own
extraction, steering and generation code. Slow: trains the default model on first use (cached afterwards)."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.slow

torch = pytest.importorskip("torch")

from shl.engine.chat import render_prompt  # noqa: E402
from shl.engine.extract import extract_pairs  # noqa: E402
from shl.engine.generate import generate  # noqa: E402
from shl.engine.steering import Steerer  # noqa: E402
from shl_plugins.steering.mean_diff import MeanDiff  # noqa: E402
from shl_plugins.toyworld.evaluator import exact_metrics  # noqa: E402
from shl_plugins.toyworld.source import ToyWorldSource  # noqa: E402

LAYER = 1  # early layer: the recommended steering layer of the default model
N_EVAL = 200
MAX_NEW = 64
# coefficients on the RAW mean-diff vector (|v| ~ 54 at layer 1 for the default model)
COEFFS = (0.0, 1.0, 2.0)
HIGH = 6.0


@pytest.fixture(scope="module")
def world():
    from shl.data import load_data

    loaded = ToyWorldSource(ToyWorldSource.Params(variant="default", seed=0)).load("cpu", "float32")
    data = load_data("builtin:toyworld.yaml")
    return loaded.model, loaded.tokenizer, data


def _measure(model, tok, users, system=None, steerer=None, seed=0):
    prompts = [(u, render_prompt(tok, u, system)) for u in users]
    if steerer is None:
        comps = generate(model, tok, prompts, max_new_tokens=MAX_NEW, seed=seed)
    else:
        with steerer.installed(model):
            comps = generate(model, tok, prompts, max_new_tokens=MAX_NEW, seed=seed, steerer=steerer)
    return exact_metrics(comps)


@pytest.fixture(scope="module")
def vectors(world):
    model, tok, data = world
    pairs = extract_pairs(model, tok, data, data.contexts, [LAYER], "prompt_mean", batch_size=64)
    pos, neg = pairs[LAYER]
    v = MeanDiff().fit(pos, neg)
    g = torch.Generator().manual_seed(1234)
    r = torch.randn(v.shape, generator=g)
    r = r / r.norm() * v.norm()
    return v, r


def _sweep(world, vec, coeffs):
    model, tok, data = world
    users = data.eval_prompts[:N_EVAL]
    out = {}
    for c in coeffs:
        steerer = Steerer(MeanDiff(), {LAYER: vec}, c)
        out[c] = _measure(model, tok, users, steerer=steerer, seed=1)
    return out


def test_property_1_persona_following_and_neutral_balance(world):
    model, tok, data = world
    users = data.eval_prompts[:N_EVAL]
    care = _measure(model, tok, users, system=data.positive.system)
    auth = _measure(model, tok, users, system=data.negative.system)
    none = _measure(model, tok, users, system=None)
    print("care persona", care, "\nauthority persona", auth, "\nno persona", none)
    assert care["trait"] >= 0.95
    assert auth["trait_signed"] <= -0.90 and (auth["trait"] - auth["trait_signed"]) >= 0.95  # neg share >= .95
    assert 0.3 <= none["trait"] <= 0.7
    assert none["coherence"] >= 0.9


def test_properties_2_3_4_steering(world, vectors):
    v, r = vectors
    md = _sweep(world, v, COEFFS + (HIGH,))
    rd = _sweep(world, r, COEFFS)
    for c in COEFFS:
        print(f"c={c}: mean-diff trait {md[c]['trait']:.3f} coh {md[c]['coherence']:.3f} | "
              f"random trait {rd[c]['trait']:.3f} coh {rd[c]['coherence']:.3f}")
    print(f"c={HIGH}: mean-diff trait {md[HIGH]['trait']:.3f} coh {md[HIGH]['coherence']:.3f}")
    base = md[0.0]["trait"]
    # (2) monotone over the range where coherence stays >= 0.8, gaining >= +0.25 there
    ok = [c for c in COEFFS if md[c]["coherence"] >= 0.8]
    traits = [md[c]["trait"] for c in ok]
    assert all(b >= a - 0.03 for a, b in zip(traits, traits[1:])), traits  # monotone up to sampling noise
    assert max(traits) - base >= 0.25, traits
    # (3) high coefficient: grammar collapses
    assert md[HIGH]["coherence"] < 0.3
    # (4) a random vector of the same norm moves the trait by less than a third as much
    for c in ok[1:]:
        assert abs(rd[c]["trait"] - base) < abs(md[c]["trait"] - base) / 3, (c, rd[c], md[c])
