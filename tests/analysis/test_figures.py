"""Report figures: forest plot from the table's numbers, per-seed differences for every metric, bounded bands."""

import json

import numpy as np
import pandas as pd
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.collections import LineCollection, PolyCollection

from shl_analysis import ComparisonSpec, MetricSpec, write_report
from shl_analysis.figures import (
    forest_figure,
    metric_bounds,
    paired_figure,
    spread,
    trajectory_figure,
    verdict_kind,
)

from shl.store import RunStore
from fake_rounds import add_round_files

SPEC = ComparisonSpec(baseline="base", correction="none",
                      metrics=[MetricSpec(name="trait"), MetricSpec(name="coherence")])


def _table():
    rows = [
        {"metric": "trait", "arm": "steer", "n": 5, "delta": 0.2, "ci_low": 0.1, "ci_high": 0.3, "p_adj": 0.004,
         "verdict": "better"},
        {"metric": "trait", "arm": "heal", "n": 5, "delta": -0.05, "ci_low": -0.2, "ci_high": 0.1, "p_adj": 0.4,
         "verdict": "inconclusive: could detect |delta| >= 0.2"},
        {"metric": "coherence", "arm": "steer", "n": 5, "delta": -0.3, "ci_low": -0.4, "ci_high": -0.2,
         "p_adj": 0.001, "verdict": "worse"},
        {"metric": "coherence", "arm": "heal", "n": 1, "delta": 0.01, "ci_low": np.nan, "ci_high": np.nan,
         "p_adj": np.nan, "verdict": "too few paired seeds (n=1)"},
    ]
    return pd.DataFrame(rows)


def _draw(fig):
    FigureCanvasAgg(fig)
    fig.canvas.draw()
    return fig


def test_forest_plots_the_table_intervals_zero_line_and_verdicts():
    fig = _draw(forest_figure(_table(), SPEC))
    ax_trait, ax_coh = fig.axes
    segs = [s for c in ax_trait.collections if isinstance(c, LineCollection) for s in c.get_segments()]
    spans = sorted((round(s[0][0], 6), round(s[1][0], 6)) for s in segs if s[0][1] == s[1][1])
    assert spans == [(-0.2, 0.1), (0.1, 0.3)]
    assert any(list(line.get_xdata()) == [0, 0] for line in ax_trait.lines)  # zero line
    texts = [t.get_text() for t in ax_trait.texts]
    assert "better, p(adj) = 0.004, n = 5" in texts and "inconclusive, p(adj) = 0.4, n = 5" in texts
    assert "worse, p(adj) = 0.001, n = 5" in [t.get_text() for t in ax_coh.texts]
    assert "not tested, n = 1" in [t.get_text() for t in ax_coh.texts]
    assert ax_trait.get_xlim()[0] < -0.2 and ax_trait.get_xlim()[1] > 0.3
    assert ax_coh.get_xlim()[1] > 0  # the zero line stays in view when every interval is negative
    assert "95% t-CI" in ax_trait.get_xlabel()
    assert [t.get_text() for t in ax_trait.get_yticklabels()] == ["steer", "heal"]


def test_verdict_kind():
    assert [verdict_kind(v) for v in ("better", "worse", "inconclusive: x", "no paired seeds")] == \
        ["better", "worse", "inconclusive", "not tested"]


def _sub(values):
    """Tidy rows: one round-1 value per seed of arm `a` for each metric in `values`."""
    return pd.DataFrame([{"arm": "a", "seed": s, "run_id": f"a{s}", "round": r, "metric": m, "value": v}
                         for m, vs in values.items() for s, v in enumerate(vs) for r in (0, 1)])


def test_trajectory_band_of_a_share_stays_in_0_1_and_says_so():
    spec = ComparisonSpec(baseline="a", metrics=[MetricSpec(name="share"), MetricSpec(name="loss")])
    fig = _draw(trajectory_figure(_sub({"share": [0.95, 0.05], "loss": [2.0, 5.0]}), spec, ["a"],
                                  {"a": "C0"}, n_seeds=2))
    ax_share, ax_loss = fig.axes
    ys = np.concatenate([p.vertices[:, 1] for c in ax_share.collections if isinstance(c, PolyCollection)
                         for p in c.get_paths()])
    assert ys.min() >= 0.0 and ys.max() <= 1.0
    assert ys.min() == 0.0 and ys.max() == 1.0  # the unclipped t-band (half-width 5.7) is cut at the bounds
    ys_loss = np.concatenate([p.vertices[:, 1] for c in ax_loss.collections if isinstance(c, PolyCollection)
                              for p in c.get_paths()])
    assert ys_loss.min() < 0  # a metric not in [0, 1] is not clipped: 3.5 - 12.71 * 2.12 / sqrt(2)
    assert "95% t-CI" in ax_share.get_ylabel() and "clipped to [0, 1]" in ax_share.get_ylabel()
    assert "clipped" not in ax_loss.get_ylabel()
    caption = " ".join(t.get_text() for t in fig.texts).replace("\n", " ")
    assert "Band: two-sided 95% t-interval of that mean" in caption and "clipped to [0, 1]" in caption
    # the legend sits outside every axes (off the data)
    legend = fig.legends[0].get_window_extent()
    assert not any(legend.overlaps(ax.get_window_extent()) for ax in fig.axes)


def test_metric_bounds_and_spread():
    assert metric_bounds([0.0, 0.5, 1.0, float("nan")]) == (0.0, 1.0)
    assert metric_bounds([0.5, 1.2]) is None and metric_bounds([]) is None
    off = spread(np.array([0.1, 0.1, 0.1, 0.9]))
    assert len(set(off[:3])) == 3 and off[3] == 0.0  # tied points side by side, a lone point centred
    np.testing.assert_array_equal(off, spread(np.array([0.1, 0.1, 0.1, 0.9])))  # deterministic


def test_paired_figure_shows_each_seed_and_the_mean_interval():
    diffs = {("coherence", "steer"): pd.DataFrame({"seed": [0, 1, 2], "diff": [-0.2, -0.3, -0.4]})}
    table = _table()
    fig = _draw(paired_figure("coherence", "higher", ["base", "steer"], diffs, table, SPEC,
                              {"base": "C0", "steer": "C1"}))
    ax = fig.axes[0]
    pts = np.concatenate([c.get_offsets() for c in ax.collections if not isinstance(c, LineCollection)])
    assert sorted(pts[:, 1]) == pytest.approx([-0.4, -0.3, -0.2])
    segs = [s for c in ax.collections if isinstance(c, LineCollection) for s in c.get_segments()]
    assert any(s[0][1] == pytest.approx(-0.4) and s[1][1] == pytest.approx(-0.2) for s in segs)
    assert [t.get_text() for t in ax.get_xticklabels()] == ["steer\n(n = 3)"]


def _write_run(root, arm, seed, stop=None):
    d = root / "runs" / f"{arm}__seed{seed}__abcdef012345"
    run = RunStore(d)
    run.start({}, {"experiment": "toy", "arm": arm, "seed": seed, "config_hash": "abcdef012345"})
    gain = {"base": 0.0, "steer": 0.1}[arm]
    last = 3 if stop is None else stop
    rows = [{"round": r, "trait": 0.5 + gain * r + 0.01 * seed, "coherence": 0.9 - 0.02 * r - 0.01 * seed}
            for r in range(last + 1)]
    (d / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    add_round_files(d, last)
    run.finish("complete" if stop is None else "stopped", "ok", last)


def test_write_report_draws_every_figure(tmp_path):
    for arm in ("base", "steer"):
        for seed in range(3):
            _write_run(tmp_path, arm, seed, stop=1 if (arm, seed) == ("steer", 2) else None)
    res = write_report(tmp_path, SPEC)
    figs = tmp_path / "report" / "figures"
    for name in ("forest", "paired_trait", "paired_coherence", "trajectories", "tradeoff"):
        for ext in ("png", "svg"):
            assert (figs / f"{name}.{ext}") in res.paths and (figs / f"{name}.{ext}").stat().st_size > 0
    svg = (figs / "forest.svg").read_bytes()
    write_report(tmp_path, SPEC)
    assert (figs / "forest.svg").read_bytes() == svg  # reproducible from one report to the next
