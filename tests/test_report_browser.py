"""The report as a browser shows it: headless Chromium renders the page and its charts."""

import html
import json
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

from chatpulse.reports.charts import BLUE
from chatpulse.reports.render import render_report

from fixtures import DATA_PNG, report_daily, report_hourly, report_quality, report_scenarios

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


@pytest.mark.browser
@pytest.mark.subprocess
@pytest.mark.skipif(CHROMIUM is None, reason="headless Chromium not installed (Debian package 'chromium')")
def test_the_page_shows_its_charts_in_a_browser(tmp_path: Path) -> None:
    requests = [0, 0, 0, 0, 0, 0, 5, 40, 120, 180, 160, 90, 60, 110, 150, 130, 90, 40, 20, 10, 5, 3, 1, 0]
    page = render_report(
        date(2026, 11, 20),
        report_daily(),
        report_hourly(requests, [r // 20 for r in requests]),
        pd.Series(np.random.default_rng(1).lognormal(6, 0.8, 1200)),
        report_quality({"timestamp: x": 1}),
        report_scenarios(["coding", "writing"]),
        tmp_path / "reports",
    )
    rendered = _chart_pixels(_screenshot(page, tmp_path / "rendered.png"))
    shutil.rmtree(page.with_suffix(""))  # the PNG folder is gone, and the page is moved on its own
    (tmp_path / "elsewhere").mkdir()
    alone = page.rename(tmp_path / "elsewhere" / page.name)
    shown = _chart_pixels(_screenshot(alone, tmp_path / "alone.png"))
    blanked = alone.with_name("blanked.html")
    blanked.write_text(re.sub(r'src="data:[^"]*"', 'src=""', alone.read_text(encoding="utf-8")), encoding="utf-8")
    without_charts = _chart_pixels(_screenshot(blanked, tmp_path / "blanked.png"))
    assert shown > 20_000 and shown == rendered
    assert without_charts < shown / 10  # the count measures the charts, not the rest of the page


class _Recorder(SimpleHTTPRequestHandler):
    """Serves a folder and remembers what the browser fetched, with the status sent."""

    served: ClassVar[list[tuple[str, int]]] = []

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        self.served.append((self.path, int(code)))


_LOOPBACK_ONLY = "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1"  # no other host resolves

# Loads pages in same-origin frames and writes, for each, whether every <img> of it decoded to a picture
# and every URL the page fetched (Resource Timing lists a fetch to any host, even one that failed).
_HARNESS = """<!DOCTYPE html>
<html><head><meta charset="utf-8"><link rel="icon" href="data:,">
<script>
const results = {};
function loaded(frame) {
  results[frame.name] = {
    images: [...frame.contentDocument.images].map((image) => image.complete && image.naturalWidth > 0),
    fetched: frame.contentWindow.performance.getEntriesByType("resource").map((entry) => entry.name),
  };
  document.getElementById("results").textContent = JSON.stringify(results);
}
</script></head>
<body><pre id="results"></pre>
<iframe name="report" src="report.html" onload="loaded(this)"></iframe>
<iframe name="broken" src="broken.html" onload="loaded(this)"></iframe>
</body></html>
"""


@pytest.mark.browser
@pytest.mark.subprocess
@pytest.mark.skipif(CHROMIUM is None, reason="headless Chromium not installed (Debian package 'chromium')")
def test_the_browser_loads_every_image_of_the_page(tmp_path: Path) -> None:
    requests = [0] * 10 + [50, 120, 90, 60, 110, 150, 130, 90, 40, 20, 10, 5, 3, 1]
    page = render_report(
        date(2026, 11, 20), report_daily(), report_hourly(requests, [r // 25 for r in requests]),
        pd.Series(np.random.default_rng(2).lognormal(6, 0.8, 500)), report_quality({}),
        report_scenarios(["coding", "writing"]), tmp_path / "reports",
    )  # fmt: skip
    report = page.read_text(encoding="utf-8")
    site = tmp_path / "site"  # the page alone, without its PNG folder
    site.mkdir()
    (site / "report.html").write_text(report, encoding="utf-8")
    first, second, third = re.findall(r'src="(data:[^"]*)"', report)[:3]
    broken = report.replace(first, DATA_PNG + "bm90IGEgcG5n")  # "not a png"
    broken = broken.replace(second, "2026-11-20/latency_distribution.png")  # the old relative link
    broken = broken.replace(third, "https://charts.example.invalid/error_rate_by_hour.png")
    (site / "broken.html").write_text(broken, encoding="utf-8")
    (site / "harness.html").write_text(_HARNESS, encoding="utf-8")
    _Recorder.served = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(_Recorder, directory=str(site)))
    Thread(target=server.serve_forever, daemon=True).start()
    try:
        origin = f"http://127.0.0.1:{server.server_address[1]}"
        dom = subprocess.run(
            [CHROMIUM, *FLAGS, f"--user-data-dir={tmp_path / 'profile'}", _LOOPBACK_ONLY, "--dump-dom",
             "--virtual-time-budget=10000", f"{origin}/harness.html"],
            check=True, capture_output=True, text=True, timeout=120,
        ).stdout  # fmt: skip
    finally:
        server.shutdown()
        server.server_close()
    results = json.loads(html.unescape(re.search(r'<pre id="results">(.*?)</pre>', dom, re.DOTALL).group(1)))
    images = results["report"]["images"]
    assert len(images) == report.count("<img ") >= 3
    assert all(images) and results["report"]["fetched"] == []  # every chart decoded, nothing fetched
    assert results["broken"]["images"] == [False, False, False] + [True] * (len(images) - 3)
    assert sorted(results["broken"]["fetched"]) == [
        f"{origin}/2026-11-20/latency_distribution.png",
        "https://charts.example.invalid/error_rate_by_hour.png",
    ]
    assert dict(_Recorder.served) == {
        "/harness.html": 200,
        "/report.html": 200,
        "/broken.html": 200,
        "/2026-11-20/latency_distribution.png": 404,
    }
