"""report.html: one self-contained page with the numbers of comparison.csv, every user string escaped, the runs,
the plugin versions and the command that reproduces the ablation (no browser here: see
test_report_html_browser.py)."""

from __future__ import annotations

import re
from html.parser import HTMLParser

import pandas as pd
import pytest
from html_report_store import EVIL_ARM, EVIL_EXPERIMENT, EVIL_MESSAGE, SPEC, make_store

from shl_analysis import write_report


class Tables(HTMLParser):
    """Text of every cell per table id (tables without one are skipped), and every src attribute."""

    def __init__(self):
        super().__init__()
        self.tables: dict[str, list[list[str]]] = {}
        self.srcs: list[str] = []
        self._table = None
        self._cell = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if "src" in a or "href" in a:
            self.srcs.append(a.get("src") or a.get("href"))
        if tag == "table" and a.get("id"):
            self._table = self.tables.setdefault(a["id"], [])
        elif tag == "tr" and self._table is not None:
            self._table.append([])
        elif tag in ("td", "th") and self._table is not None:
            self._cell = []

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None:
            self._table[-1].append("".join(self._cell))
            self._cell = None
        elif tag == "table":
            self._table = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)


@pytest.fixture
def report(tmp_path):
    res = write_report(make_store(tmp_path), SPEC)
    page = (tmp_path / "report" / "report.html").read_text()
    parsed = Tables()
    parsed.feed(page)
    return res, page, parsed, tmp_path


def test_page_is_written_by_default_and_self_contained(report):
    res, page, parsed, root = report
    assert root / "report" / "report.html" in res.paths
    assert page.startswith("<!DOCTYPE html>")
    assert "<script" not in page.lower()
    assert "http://" not in page and "https://" not in page
    assert parsed.srcs and all(s.startswith(("data:", "#")) for s in parsed.srcs)  # inline data, in-page links
    n_png = len(list((root / "report" / "figures").glob("*.png")))
    assert page.count('src="data:image/png;base64,') == n_png == 5  # forest, 2 paired, trajectories, tradeoff
    assert "default-src 'none'" in page  # the page may load nothing and run no script


def test_user_strings_are_escaped(report):
    res, page, parsed, root = report
    for raw in (EVIL_ARM, EVIL_EXPERIMENT, EVIL_MESSAGE, "a <i>toy</i> study"):
        assert raw not in page
    assert "&lt;img src=x onerror=alert(&#x27;arm&#x27;)&gt;" in page
    assert "&lt;img src=x onerror=alert(&#x27;msg&#x27;)&gt;" in page
    runs = parsed.tables["runs-table"]
    assert any(EVIL_ARM == row[0] for row in runs[1:])
    assert any(EVIL_MESSAGE == row[5] for row in runs[1:])


def test_comparison_table_holds_the_csv_numbers(report):
    res, page, parsed, root = report
    csv = pd.read_csv(root / "report" / "comparison.csv", keep_default_na=False)
    head, *rows = parsed.tables["comparison"]
    rows, verdicts = rows[0::2], rows[1::2]  # each comparison: its numbers, then its verdict in a row of its own
    assert len(rows) == len(verdicts) == len(csv) == 4
    col = {h: k for k, h in enumerate(head)}
    for row, (verdict,), (_, want) in zip(rows, verdicts, csv.iterrows()):
        assert (row[col["metric"]], row[col["arm"]], row[col["baseline"]]) == (want.metric, want.arm, "base")
        assert row[col["n"]] == str(want.n) and row[col["dropped"]] == str(want.dropped)
        assert row[col["delta"]] == format(float(want.delta), "+.3g")
        assert row[col["p (t)"]] == format(float(want.p_t), ".3g")
        assert row[col["p (adj)"]] == format(float(want.p_adj), ".3g")
        assert row[col["d_z"]] == format(float(want.d_z), ".2f")
        assert row[col["95% CI"]] == f"[{float(want.ci_low):.3g}, {float(want.ci_high):.3g}]"
        assert verdict == want.verdict
    steer = csv.set_index(["metric", "arm"]).loc[("trait", "steer")]
    assert steer.n == 3 and steer.delta == pytest.approx(0.15)  # seed 3 dropped: steer failed there


def test_page_content(report):
    res, page, parsed, root = report
    assert "<title>toy: shl report, " in page and "<h1>toy</h1>" in page
    # the Markdown report's text: dropped seeds and why, the small-n note, the power footnote
    assert "seed 3: failed in <code>steer</code>" in page
    assert "no two-sided sign-flip test can reach" in page and "MDE: smallest |delta| detectable" in page
    assert 'class="badge inconclusive"' in page
    runs = parsed.tables["runs-table"]
    assert len(runs) == 1 + 12
    assert [r[5] for r in runs if r[:3] == ["steer", "3", "failed"]] == [EVIL_MESSAGE]
    assert [r[4] for r in runs if r[1] == "3"] == ["no: seed dropped (failed in steer)"] * 3
    assert parsed.tables.get("runs-table") and "shl-extra" in page and "2.3.4" in page
    cmd = re.search(r"<pre><code>(shl ablate .*?)</code></pre>", page).group(1)
    assert cmd == f"shl ablate &#x27;experiments/my exp.yaml&#x27; --seeds 0-3 --set loop.rounds=2 --out {root}"


def test_only_requested_formats(tmp_path):
    res = write_report(make_store(tmp_path), SPEC, formats=("md",), figures=False)
    assert not (tmp_path / "report" / "report.html").exists()
    res = write_report(tmp_path, SPEC, formats=("html",), figures=False)
    page = (tmp_path / "report" / "report.html").read_text()
    assert "No figures were drawn" in page and "data:image/png" not in page
    with pytest.raises(ValueError, match="choose from md, csv, latex, html"):
        write_report(tmp_path, SPEC, formats=("pdf",))


def test_no_record_names_no_experiment_file(tmp_path):
    make_store(tmp_path)
    (tmp_path / "shl-ablation.yaml").unlink()
    write_report(tmp_path, SPEC, formats=("html",), figures=False)
    page = (tmp_path / "report" / "report.html").read_text()
    assert f"shl ablate EXPERIMENT.yaml --out {tmp_path}" in page
    assert "<h1>toy &lt;b&gt;bold&lt;/b&gt; &amp; co</h1>" in page  # the experiment named in meta.json, escaped
