"""The report as a browser shows it: headless Chromium renders the page and its charts."""

import shutil
import subprocess
from datetime import date
from pathlib import Path

import matplotlib.image
import numpy as np
import pandas as pd
import pytest

from reports.charts import BLUE
from reports.render import render_report
from tests.test_report import _daily, _hourly, _quality, _scenarios

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1200,1600",
    "--hide-scrollbars",
)


def _screenshot(page: Path, out: Path) -> np.ndarray:
    subprocess.run(
        [CHROMIUM, *FLAGS, f"--user-data-dir={out.parent / 'profile'}", f"--screenshot={out}", page.as_uri()],
        check=True,
        capture_output=True,
        timeout=120,
    )
    return matplotlib.image.imread(out)[..., :3]


def _chart_pixels(image: np.ndarray) -> int:
    """Pixels of the bar colour: the charts' bars, almost nothing else on the page."""
    target = np.array([int(BLUE[i : i + 2], 16) for i in (1, 3, 5)]) / 255
    return int((np.abs(image - target).max(axis=2) < 0.03).sum())


@pytest.mark.skipif(CHROMIUM is None, reason="headless Chromium not installed (Debian package 'chromium')")
def test_the_page_shows_its_charts_in_a_browser(tmp_path: Path) -> None:
    requests = [0, 0, 0, 0, 0, 0, 5, 40, 120, 180, 160, 90, 60, 110, 150, 130, 90, 40, 20, 10, 5, 3, 1, 0]
    page = render_report(
        date(2026, 11, 20),
        _daily(),
        _hourly(requests, [r // 20 for r in requests]),
        pd.Series(np.random.default_rng(1).lognormal(6, 0.8, 1200)),
        _quality({"timestamp: x": 1}),
        _scenarios(["coding", "writing"]),
        tmp_path / "reports",
    )
    with_charts = _chart_pixels(_screenshot(page, tmp_path / "with.png"))
    shutil.rmtree(page.with_suffix(""))
    without_charts = _chart_pixels(_screenshot(page, tmp_path / "without.png"))
    assert with_charts > 20_000
    assert without_charts < with_charts / 10
