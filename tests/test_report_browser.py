"""The report as a browser shows it: headless Chromium renders the page and its charts."""

import base64
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

from chatpulse.reports.chartkit import BLUE, DPI, TEXT_PT
from chatpulse.reports.mail import inline_report
from chatpulse.reports.pages import write_index, write_week
from chatpulse.reports.render import render_report

from fixtures import (
    DATA_PNG,
    REPORT_DAY,
    full_day,
    render_with,
    report_daily,
    report_hourly,
    report_quality,
    report_scenarios,
)

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
    assert shown > 10_000 and shown == rendered  # two charts a row at this width, each ~460 px wide
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


# For each page in a frame of a given width: the viewport's width and the page's, every element whose visible
# part (clipped by any scrolling or clipping box it sits in) reaches outside the viewport, every element whose
# own text is under 10 px, each table card's scroll width, and each chart's shown and natural width.
_MEASURE = """<!DOCTYPE html>
<html><head><meta charset="utf-8"><link rel="icon" href="data:,">
<script>
const results = {};
function name(el) {
  return el.tagName.toLowerCase() + (el.className ? "." + el.className : "") + " " + el.textContent.trim().slice(0, 40);
}
function measure(frame) {
  const doc = frame.contentDocument, win = frame.contentWindow, width = doc.documentElement.clientWidth;
  const outside = [], small = [];
  for (const el of doc.body.querySelectorAll("*")) {
    const rect = el.getBoundingClientRect();
    if (rect.width === 0 && rect.height === 0) continue;
    let left = rect.left, right = rect.right;
    for (let up = el.parentElement; up; up = up.parentElement) {
      if (win.getComputedStyle(up).overflowX !== "visible") {
        const box = up.getBoundingClientRect();
        left = Math.max(left, box.left);
        right = Math.min(right, box.right);
      }
    }
    if (right > width + 0.5 || left < -0.5) outside.push(name(el) + " at " + left + "-" + right);
    const text = [...el.childNodes].some((node) => node.nodeType === 3 && node.textContent.trim());
    if (text && parseFloat(win.getComputedStyle(el).fontSize) < 10) small.push(name(el));
  }
  results[frame.name] = {
    viewport: width, page: doc.documentElement.scrollWidth, outside, small,
    cards: [...doc.querySelectorAll("body div")].filter((d) => d.querySelector(":scope > table"))
      .map((d) => ({table: d.querySelector("th").textContent, shown: d.clientWidth, content: d.scrollWidth})),
    charts: [...doc.images].map((image) => ({shown: image.getBoundingClientRect().width, natural: image.naturalWidth})),
    texts: doc.body.innerText.length,
  };
  document.getElementById("results").textContent = JSON.stringify(results);
}
</script></head>
<body><pre id="results"></pre>
FRAMES
</body></html>
"""
_PHONE, _SCREEN = 420, 1400


def _full_report(folder: Path) -> dict[str, str]:
    """A full day (every section, six alerts, long model names and e-mail user ids) as its page, its e-mail
    body (CSS inlined, each cid: chart put back as the PNG it attaches), the index and the weekly page."""
    tables = full_day(scenarios=15, models=8, alerts=6)
    long_name = "org/" + "very-long-model-name-" * 20  # a label with no space to break at
    first = tables["model_costs"]["model"].iloc[0]
    for name, column in (("model_costs", "model"), ("request_metrics", "value")):
        tables[name][column] = tables[name][column].replace(first, long_name)
    history = pd.concat([report_daily(day=f"2026-11-{d:02d}") for d in range(1, 21)], ignore_index=True)
    reports = folder / "reports"
    page = render_with(reports, tables, history=history, comparisons={"yesterday": report_daily(requests=1000).iloc[0]})
    inlined = inline_report(reports / f"{REPORT_DAY.isoformat()}.html")
    mail = inlined.html
    for cid, png in inlined.images.items():
        mail = mail.replace(f"cid:{cid}", DATA_PNG + base64.b64encode(png).decode("ascii"))
    for day in history["day"].iloc[:-1]:  # the days before have pages too, for the index to list
        (reports / f"{day}.html").write_text("<html></html>", encoding="utf-8")
    index = write_index(reports, history, tables["alerts"]).read_text(encoding="utf-8")
    week = write_week(reports, date(2026, 11, 22), history).read_text(encoding="utf-8")
    return {"report": page, "mail": mail, "index": index, "week": week}


@pytest.mark.browser
@pytest.mark.subprocess
@pytest.mark.skipif(CHROMIUM is None, reason="headless Chromium not installed (Debian package 'chromium')")
def test_a_full_report_reads_at_phone_and_screen_width(tmp_path: Path) -> None:
    """At 420 and 1400 px: nothing reaches outside the viewport (a wide table scrolls inside its own card, the
    page itself never scrolls sideways), no text is under 10 px, and the charts' text (12 pt drawn at 150 dpi)
    is shown at 10 px or more; the page, its e-mail body, the index and the weekly page alike."""
    pages = _full_report(tmp_path)
    site = tmp_path / "site"
    site.mkdir()
    frames = []
    for name, html_text in pages.items():
        (site / f"{name}.html").write_text(html_text, encoding="utf-8")
        for width in (_PHONE, _SCREEN):
            frames.append(
                f'<iframe name="{name}@{width}" src="{name}.html" onload="measure(this)" '
                f'style="border:0;width:{width}px;height:800px"></iframe>'
            )
    (site / "harness.html").write_text(_MEASURE.replace("FRAMES", "\n".join(frames)), encoding="utf-8")
    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(SimpleHTTPRequestHandler, directory=str(site)))
    Thread(target=server.serve_forever, daemon=True).start()
    try:
        dom = subprocess.run(
            [CHROMIUM, *FLAGS, f"--user-data-dir={tmp_path / 'profile'}", _LOOPBACK_ONLY, "--dump-dom",
             "--virtual-time-budget=20000", f"http://127.0.0.1:{server.server_address[1]}/harness.html"],
            check=True, capture_output=True, text=True, timeout=180,
        ).stdout  # fmt: skip
    finally:
        server.shutdown()
        server.server_close()
    results = json.loads(html.unescape(re.search(r'<pre id="results">(.*?)</pre>', dom, re.DOTALL).group(1)))
    assert sorted(results) == sorted(f"{name}@{width}" for name in pages for width in (_PHONE, _SCREEN))
    for frame, seen in results.items():
        width = int(frame.split("@")[1])
        assert seen["viewport"] == width and seen["page"] == width, frame  # the page never scrolls sideways
        assert seen["outside"] == [], frame
        assert seen["small"] == [] and seen["texts"] > 200, frame  # the page has text, all of it 10 px or more
        assert all(card["shown"] <= width for card in seen["cards"]) and seen["cards"], frame
        for chart in seen["charts"]:
            assert chart["natural"] > 0, frame  # the chart decoded
            assert TEXT_PT / 72 * DPI * chart["shown"] / chart["natural"] >= 10, (frame, chart)
    phone, screen = results["report@420"], results["report@1400"]
    assert any(card["content"] > card["shown"] for card in phone["cards"])  # wide tables do scroll on a phone
    assert [card for card in screen["cards"] if card["content"] > card["shown"]] == []  # and fit on a screen
    assert len(phone["charts"]) == len(screen["charts"]) == pages["report"].count("<img ") == 8
