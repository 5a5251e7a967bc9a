"""Chinese labels in charts render as glyphs, not empty boxes."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from reports.fonts import configure  # noqa: E402


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
