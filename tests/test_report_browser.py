"""The report as a browser shows it: headless Chromium renders the page and its charts."""

import re
import shutil
import subprocess
from datetime import date
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from threading import Thread
from typing import ClassVar

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


class _Recorder(SimpleHTTPRequestHandler):
    """Serves the reports folder and remembers what the browser fetched, with the status sent."""

    served: ClassVar[list[tuple[str, int]]] = []

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        self.served.append((self.path, int(code)))


@pytest.mark.skipif(CHROMIUM is None, reason="headless Chromium not installed (Debian package 'chromium')")
def test_the_browser_loads_every_image_of_the_page(tmp_path: Path) -> None:
    requests = [0] * 10 + [50, 120, 90, 60, 110, 150, 130, 90, 40, 20, 10, 5, 3, 1]
    page = render_report(
        date(2026, 11, 20), _daily(), _hourly(requests, [r // 25 for r in requests]),
        pd.Series(np.random.default_rng(2).lognormal(6, 0.8, 500)), _quality({}),
        _scenarios(["coding", "writing"]), tmp_path / "reports",
    )  # fmt: skip
    images = re.findall(r'<img src="([^"]+)"', page.read_text())
    assert len(images) >= 3
    _Recorder.served = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(_Recorder, directory=str(page.parent)))
    Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/{page.name}"
        subprocess.run(
            [CHROMIUM, *FLAGS, f"--user-data-dir={tmp_path / 'profile'}", f"--screenshot={tmp_path / 'p.png'}", url],
            check=True, capture_output=True, timeout=120,
        )  # fmt: skip
    finally:
        server.shutdown()
        server.server_close()
    served = dict(_Recorder.served)
    assert {f"/{src}": 200 for src in images}.items() <= served.items()  # every image fetched, none missing
