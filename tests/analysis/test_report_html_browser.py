"""report.html of a real tiny ablation, opened in a real headless Chromium (Debian's chromium + chromium-driver,
driven by selenium): no console errors, every figure renders, the comparison table shows the numbers of
comparison.csv, and the page makes no request beyond its own file. A full-page screenshot is kept in
``$SHL_TEST_ARTIFACTS`` (default ``tests/artifacts/``).

Skipped only when the browser (or selenium) is missing and SHL_REQUIRE_BROWSER is unset; CI sets it."""

from __future__ import annotations

import base64
import json
import os
import shutil
import sys
from pathlib import Path

import pandas as pd
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "cli"))
from cli_helpers import run_shl, write_experiment  # noqa: E402
from html_report_store import EVIL_ARM, SPEC, make_store  # noqa: E402

from shl_analysis import write_report  # noqa: E402

CHROMIUM = os.environ.get("SHL_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("SHL_CHROMEDRIVER", "/usr/bin/chromedriver")
ARTIFACTS = Path(os.environ.get("SHL_TEST_ARTIFACTS") or Path(__file__).resolve().parents[1] / "artifacts")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", "--window-size=1280,900", "--hide-scrollbars"]


def _browser_or_skip():
    missing = [p for p in (CHROMIUM, CHROMEDRIVER) if not Path(p).is_file()]
    try:
        import selenium  # noqa: F401
    except ImportError:
        missing.append("the selenium package (pip install -e '.[dev]')")
    if missing:
        if os.environ.get("SHL_REQUIRE_BROWSER"):
            pytest.fail(f"SHL_REQUIRE_BROWSER is set but the browser test cannot run: missing {', '.join(missing)}")
        pytest.skip(f"no headless browser: missing {', '.join(missing)}")


@pytest.fixture(scope="module")
def driver(tmp_path_factory):
    _browser_or_skip()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for flag in FLAGS + [f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}"]:
        opts.add_argument(flag)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    drv = webdriver.Chrome(options=opts, service=Service(executable_path=CHROMEDRIVER))
    drv.set_page_load_timeout(60)
    yield drv
    drv.quit()


@pytest.fixture(scope="module")
def ablation(tmp_path_factory):
    """A real ablation on the tiny random model (2 arms x 2 seeds); its report is written at the end by default."""
    tmp = tmp_path_factory.mktemp("html-ablate")
    exp = write_experiment(tmp)
    proc = run_shl("ablate", exp.name, "--out", "abl", cwd=tmp)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return tmp, tmp / "abl"


def fmt(value: float, spec: str = ".3g") -> str:
    """A number of comparison.csv as the report prints it (n/a for an empty cell)."""
    return "n/a" if pd.isna(value) else format(float(value), spec)


def open_page(driver, page: Path) -> dict:
    """Load ``page``; return its console messages, requested URLs and figure sizes, and the comparison table."""
    driver.get_log("browser"), driver.get_log("performance")  # drop what an earlier page left
    driver.get(page.resolve().as_uri())
    images = driver.execute_script(
        "return Array.from(document.images).map(i => [i.complete, i.naturalWidth, i.naturalHeight]);")
    table = driver.execute_script(
        "const t = document.getElementById('comparison'); if (!t) return null;"
        "const text = row => Array.from(row.cells).map(c => c.textContent);"
        "return {head: text(t.tHead.rows[0]), rows: Array.from(t.querySelectorAll('tr.cmp')).map(text),"
        "        verdicts: Array.from(t.querySelectorAll('tr.verdict-row')).map(r => r.textContent)};")
    urls = []
    for entry in driver.get_log("performance"):
        msg = json.loads(entry["message"])["message"]
        if msg.get("method") == "Network.requestWillBeSent":
            urls.append(msg["params"]["request"]["url"])
    return {"console": driver.get_log("browser"), "urls": urls, "images": images, "table": table}


def screenshot(driver, path: Path) -> Path:
    """A PNG of the whole page, not only the window (Chrome DevTools protocol)."""
    size = driver.execute_cdp_cmd("Page.getLayoutMetrics", {})["cssContentSize"]
    shot = driver.execute_cdp_cmd("Page.captureScreenshot", {
        "format": "png", "captureBeyondViewport": True,
        "clip": {"x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1}})
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(base64.b64decode(shot["data"]))
    return path


def test_report_page_in_a_real_browser(driver, ablation):  # driver first: a skip costs no ablation
    tmp, out = ablation
    page = out / "report" / "report.html"
    assert page.is_file()  # written by `shl ablate` by default, next to comparison.md
    proc = run_shl("report", "abl", "--format", "html", cwd=tmp)
    assert proc.returncode == 0, proc.stderr
    assert f"html report: {Path('abl') / 'report' / 'report.html'}" in proc.stdout

    seen = open_page(driver, page)
    assert [m for m in seen["console"] if m["level"] in ("SEVERE", "WARNING")] == []
    assert seen["urls"] and all(u.startswith(("file://", "data:")) for u in seen["urls"]), seen["urls"]
    pngs = sorted((out / "report" / "figures").glob("*.png"))
    assert len(seen["images"]) == len(pngs) >= 4  # forest, paired_coherence, paired_trait, trajectories, tradeoff
    assert all(done and w > 0 and h > 0 for done, w, h in seen["images"]), seen["images"]

    csv = pd.read_csv(out / "report" / "comparison.csv")
    table = seen["table"]
    col = {h: k for k, h in enumerate(table["head"])}
    assert len(table["rows"]) == len(table["verdicts"]) == len(csv) == 2  # rmse vs mean on coherence and trait
    for row, verdict, (_, want) in zip(table["rows"], table["verdicts"], csv.iterrows()):
        assert (row[col["metric"]], row[col["arm"]], row[col["n"]]) == (want.metric, want.arm, str(want.n))
        assert row[col["delta"]] == fmt(want.delta, "+.3g")
        assert row[col["95% CI"]] == f"[{fmt(want.ci_low)}, {fmt(want.ci_high)}]"
        assert row[col["p (t)"]] == fmt(want.p_t) and row[col["p (adj)"]] == fmt(want.p_adj)
        assert row[col["MDE"]] == fmt(want.mde)
        assert verdict == want.verdict

    shot = screenshot(driver, ARTIFACTS / "report_html.png")
    shutil.copy(page, ARTIFACTS / "report.html")
    assert shot.stat().st_size > 10_000


def test_markup_in_names_does_not_run(tmp_path, driver):
    """An arm named <script>..., markup in a run's message: shown as text, nothing runs, nothing is loaded."""
    write_report(make_store(tmp_path), SPEC)
    seen = open_page(driver, tmp_path / "report" / "report.html")
    assert seen["console"] == []
    assert all(u.startswith(("file://", "data:")) for u in seen["urls"]), seen["urls"]
    assert driver.execute_script("return document.scripts.length") == 0
    assert EVIL_ARM in driver.find_element("id", "runs-table").text
    assert all(done and w > 0 for done, w, _ in seen["images"])
    screenshot(driver, ARTIFACTS / "report_html_markup.png")
