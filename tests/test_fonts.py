"""Chinese labels in charts render as glyphs, not empty boxes."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from chatpulse.reports.fonts import configure  # noqa: E402


def _render(text: str) -> np.ndarray:
    figure = plt.figure(figsize=(1, 1), dpi=100)
    try:
        figure.text(0.5, 0.5, text, fontsize=40, ha="center", va="center")
        figure.canvas.draw()
        return np.asarray(figure.canvas.buffer_rgba())[..., 0].copy()
    finally:
        plt.close(figure)


def test_cjk_text_renders_with_real_glyphs() -> None:
    family = configure()
    if family is None:
        pytest.skip("no CJK font: `make` installs Debian's fonts-wqy-microhei, or install Noto Sans CJK")
    # pytest turns warnings into errors, so a "Glyph ... missing from font(s)" warning fails here.
    coding, translation = _render("编"), _render("译")
    assert (coding < 128).sum() > 100 and (translation < 128).sum() > 100  # ink on the page
    assert not np.array_equal(coding, translation)  # two different glyphs, not the same missing-glyph box
    assert not np.array_equal(_render("A"), _render("B"))  # Latin text still draws


def test_report_charts_draw_chinese_labels(tmp_path) -> None:  # noqa: ANN001
    if configure() is None:
        pytest.skip("no CJK font: `make` installs Debian's fonts-wqy-microhei, or install Noto Sans CJK")
    import pandas as pd

    from chatpulse.reports import charts

    # Labels from the logs: a custom scenario and a model, both Chinese; missing glyphs would warn (an error here).
    scenario_daily = pd.DataFrame(
        {
            "scenario": ["客服问答", "coding"],
            "sessions": [30, 10],
            "share": [0.75, 0.25],
            "satisfaction": [0.8, 0.6],
            "rated_sessions": [10, 5],
            "ratings": [12, 5],
        }
    )
    model_costs = pd.DataFrame(
        {
            "model": ["通义千问-max", "gpt-4o"],
            "requests": [10, 5],
            "total_tokens": [1000, 500],
            "cost_estimate_usd": [0.5, 0.2],
        }
    )
    assert charts.scenarios(scenario_daily, tmp_path / "s.png").read_bytes()[:4] == b"\x89PNG"
    assert charts.tokens_and_cost(model_costs, tmp_path / "t.png").read_bytes()[:4] == b"\x89PNG"


# Renders the whole report of a full day (every chart, titles in bold) in a fresh interpreter, whose font
# lookups are not yet cached, keeping every warning the matplotlib loggers emit; prints the CJK family first.
_RENDER_REPORT = """
import logging, sys
from pathlib import Path
sys.path.insert(0, sys.argv[1])
kept = []
class Keep(logging.Handler):
    def emit(self, record):
        kept.append(record.getMessage())
logging.getLogger("matplotlib").addHandler(Keep(logging.WARNING))
from fixtures import full_day, render_with
from chatpulse.reports import fonts
html = render_with(Path(sys.argv[2]), full_day(alerts=2))
print(fonts.cjk_family(), html.count("data:image/png"), sep="\\n")
print("\\n".join(kept))
"""


@pytest.mark.subprocess
def test_rendering_the_charts_warns_of_no_missing_font_weight(tmp_path) -> None:  # noqa: ANN001
    import subprocess
    import sys

    from fixtures import ROOT

    done = subprocess.run(
        [sys.executable, "-c", _RENDER_REPORT, str(ROOT / "tests"), str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    family, charts, *logged = done.stdout.splitlines()
    if family == "None":
        pytest.skip("no CJK font: `make` installs Debian's fonts-wqy-microhei, or install Noto Sans CJK")
    assert int(charts) > 0  # charts drawn, so their titles and labels looked up their fonts
    assert [line for line in logged if "findfont" in line] == []
    assert "findfont" not in done.stderr


def test_a_family_without_bold_gets_its_regular_face_as_bold() -> None:
    from matplotlib import font_manager

    from chatpulse.reports.fonts import bold_stand_in

    family = configure()
    if family is None:
        pytest.skip("no CJK font: `make` installs Debian's fonts-wqy-microhei, or install Noto Sans CJK")
    files = {font.fname for font in font_manager.fontManager.ttflist if font.name == family}
    bold = font_manager.findfont(font_manager.FontProperties(family=family, weight="bold"), fallback_to_default=False)
    # The bold lookup finds a face of the family itself (its own bold, or the regular face standing in for it)...
    assert str(getattr(bold, "path", bold)) in files
    assert bold_stand_in(family) is False  # ...and a family that has a bold face gets no second one
