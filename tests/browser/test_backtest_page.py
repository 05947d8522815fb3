"""The backtest report in headless Chromium: it opens offline, fetches nothing, and shows
its plots."""

from __future__ import annotations

from pathlib import Path

from playwright.sync_api import Browser, Request

from backtests.backtest import Backtest, run_backtest
from bench.markets import world, write_export
from config.settings import Settings
from tests.backtests.test_replay import MODEL, model_variant
from tests.conftest import ARTIFACTS


def test_the_report_opens_offline_with_its_plots(tmp_path: Path, browser: Browser):
    export = write_export(world(3, leads=150).signals, tmp_path / "events.jsonl.gz")
    candidate = model_variant(
        tmp_path / "candidate",
        ('paths = ["/pricing*"]\npoints = 10', 'paths = ["/pricing*"]\npoints = 20'),
    )
    run_backtest(
        Settings(),
        Backtest(model=candidate, against=MODEL, export=export),
        tmp_path / "out",
        quiet=True,
    )

    page = browser.new_page(viewport={"width": 1540, "height": 1000})
    fetched: list[str] = []

    def note(request: Request) -> None:
        if not request.url.startswith("file://"):
            fetched.append(request.url)

    page.on("request", note)
    page.goto((tmp_path / "out" / "report.html").as_uri())
    figures = page.locator("figure svg")
    assert figures.count() >= 8
    # Every plot drew something: bars or a line.
    for n in range(figures.count()):
        assert figures.nth(n).locator("rect, polyline").count() > 0, n
    captions = page.locator("figcaption").all_inner_texts()
    assert "Lift by decile of the score at the fixed age (1 = top)" in captions
    assert "candidate · sales_ready precision" in page.inner_text(".cards")
    assert "Alerts the candidate sends earlier" in page.inner_text("body")
    assert fetched == []
    page.screenshot(path=str(ARTIFACTS / "backtest-report.png"), full_page=True)
    page.close()
