"""The sweep's band: cells where the vector beats the random control by more than z standard errors in the
persona's direction while coherence stays >= floor x the unsteered model's."""

from __future__ import annotations

import pytest

from shl_analysis.sweep import format_table, suggest


def _row(layer, coeff, vector, trait, coherence, trait_se=0.01):
    return {"layer": layer, "coeff": coeff, "vector": vector, "trait": trait, "trait_se": trait_se,
            "coherence": coherence, "coherence_se": 0.02}


ROWS = [
    _row(None, 0.0, "none", 0.50, 0.90),
    _row(1, 1.0, "mean_diff", 0.60, 0.90), _row(1, 1.0, "random", 0.50, 0.90),   # in the band, shift 0.10
    _row(1, 2.0, "mean_diff", 0.75, 0.80), _row(1, 2.0, "random", 0.49, 0.85),   # coherence 0.80 < 0.9 x 0.90
    _row(2, 1.0, "mean_diff", 0.70, 0.88), _row(2, 1.0, "random", 0.52, 0.90),   # in the band, shift 0.20: best
    _row(2, 2.0, "mean_diff", 0.56, 0.89, trait_se=0.05), _row(2, 2.0, "random", 0.50, 0.90, trait_se=0.05),
]   # the last: 0.06 over random with SE 0.071: not beyond 2 SE


def test_the_band_and_its_best_cell():
    s = suggest(ROWS, "trait", "coherence", floor=0.9, z=2.0)
    assert [(c.layer, c.coeff) for c in s.band] == [(1, 1.0), (2, 1.0)]
    assert (s.best.layer, s.best.coeff) == (2, 1.0)
    assert s.best.trait_shift == pytest.approx(0.20) and s.best.over_random == pytest.approx(0.18)
    assert s.best.se == pytest.approx(0.01 * 2 ** 0.5)
    assert s.best.coherence_share == pytest.approx(0.88 / 0.90)
    assert s.config_lines() == ["steer:", "  layers: [2]", "dose:", "  scale: 1"]
    assert s.summary().startswith("band (trait beyond the random control by > 2 SE, coherence >= 0.9 x unsteered): "
                                  "layer 1: 1; layer 2: 1. Best: layer 2, coefficient 1 (trait +0.2 from unsteered")


def test_a_lower_floor_admits_the_stronger_dose_and_no_band_says_what_to_do():
    s = suggest(ROWS, "trait", "coherence", floor=0.85)
    assert (s.best.layer, s.best.coeff) == (1, 2.0)  # coherence 0.80 >= 0.85 x 0.90 = 0.765; shift 0.25
    none = suggest(ROWS, "trait", "coherence", floor=0.9, z=50)
    assert none.best is None and none.band == [] and none.config_lines() == []
    assert "widen --coeffs or try other --layers" in none.summary()


def test_a_vector_that_moves_the_trait_the_wrong_way_is_not_in_the_band():
    rows = [_row(None, 0.0, "none", 0.5, 0.9), _row(1, 1.0, "mean_diff", 0.40, 0.9), _row(1, 1.0, "random", 0.2, 0.9)]
    assert suggest(rows, "trait", "coherence").band == []  # beats random, but moves away from the persona


def test_the_table():
    table = format_table(ROWS, "trait", "coherence").splitlines()
    assert table[0] == "| layer | coeff | trait (mean_diff) | coherence (mean_diff) | trait (random) | coherence (random) |"
    assert table[2] == "| - | 0 | 0.500 ± 0.010 | 0.900 ± 0.020 | | |"
    assert table[3] == "| 1 | 1 | 0.600 ± 0.010 | 0.900 ± 0.020 | 0.500 ± 0.010 | 0.900 ± 0.020 |"
    assert len(table) == 7


def test_agreement_of_two_trait_measures_across_cells():
    """Pearson's r by hand (and its Fisher-z interval), Spearman's rho from ranks, over the cells reporting both."""
    import math

    from shl_analysis.sweep import agreement

    x = [0.0, 0.1, 0.2, 0.4, 0.3, -0.1]
    y = [0.0, 0.3, 0.2, 0.9, 0.5, -0.2]
    rows = [dict(_row(1, float(k), "mean_diff", a, 0.9), trait_logodds=b) for k, (a, b) in enumerate(zip(x, y))]
    rows.append(_row(2, 1.0, "random", 0.1, 0.9))  # no trait_logodds: not a cell of the agreement
    (a,) = agreement(rows)
    mx, my = sum(x) / 6, sum(y) / 6
    sxy = sum((p - mx) * (q - my) for p, q in zip(x, y))
    r = sxy / math.sqrt(sum((p - mx) ** 2 for p in x) * sum((q - my) ** 2 for q in y))
    assert (a.a, a.b, a.n) == ("trait", "trait_logodds", 6)
    assert a.r == pytest.approx(r)
    z, half = math.atanh(r), 1.959964 / math.sqrt(6 - 3)
    assert (a.r_low, a.r_high) == (pytest.approx(math.tanh(z - half), abs=1e-5), pytest.approx(math.tanh(z + half),
                                                                                                abs=1e-5))
    # ranks: x 2 3 4 6 5 1, y 2 4 3 6 5 1: d^2 = 0+1+1+0+0+0 = 2; rho = 1 - 6*2/(6*35)
    assert a.rho == pytest.approx(1 - 12 / 210)
    assert "agree across the 6 cells: Pearson r = " in a.summary()
    assert agreement([_row(1, 1.0, "mean_diff", 0.1, 0.9)] * 5) == []  # one measure only: nothing to agree
