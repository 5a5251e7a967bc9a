"""CJK glyphs for the charts: scenario and model names from the logs may be Chinese.

matplotlib's default DejaVu Sans has no CJK glyphs, so a Chinese label would render
as empty boxes. `make` installs WenQuanYi Micro Hei (Debian's fonts-wqy-microhei,
fetched without root) into the virtual environment; a CJK font the system already
has (Noto Sans CJK, PingFang, Microsoft YaHei ...) serves as well. Charts keep
DejaVu Sans for Latin text and fall back to the CJK font glyph by glyph.

    python -m chatpulse.reports.fonts     # install the font when no CJK font is found
"""

from __future__ import annotations

import dataclasses
import shutil
import subprocess
import sys
import tempfile
import warnings
from pathlib import Path

import matplotlib
from matplotlib import font_manager

FONT_DIR = Path(sys.prefix) / "share" / "chatpulse" / "fonts"
DEBIAN_PACKAGE = "fonts-wqy-microhei"
CJK_FAMILIES = (
    "WenQuanYi Micro Hei",
    "Noto Sans CJK SC",
    "Noto Sans SC",
    "Source Han Sans SC",
    "PingFang SC",
    "Hiragino Sans GB",
    "Microsoft YaHei",
    "SimHei",
)
BOLD = 700  # the weight chart titles ask for (chartkit's axes.titleweight)


def cjk_family() -> str | None:
    """The first CJK family matplotlib knows, after registering the fonts `make` installed."""
    for path in sorted(FONT_DIR.glob("*.tt[cf]")):
        font_manager.fontManager.addfont(str(path))
    known = {font.name for font in font_manager.fontManager.ttflist}
    return next((family for family in CJK_FAMILIES if family in known), None)


def configure() -> str | None:
    """Put the CJK family behind DejaVu Sans in matplotlib's fallback list; returns it (None: none found).
    Glyphs no font has are drawn as boxes without a warning."""
    # A glyph no font has (an emoji in a model name) draws as a box; matplotlib's warning about it only
    # printed a raw UserWarning into the run's output.
    warnings.filterwarnings("ignore", message=r"Glyph \d+ .* missing from", category=UserWarning)
    family = cjk_family()
    if family is not None:
        bold_stand_in(family)
        # An explicit list, not the generic "sans-serif": matplotlib falls back glyph by glyph only along it.
        matplotlib.rcParams["font.family"] = ["DejaVu Sans", family]
    return family


def bold_stand_in(family: str) -> bool:
    """Register ``family``'s regular face as its bold too, when it has no bold face; True if it did.

    A bold title looks along the whole family list for every glyph, so matplotlib asks the CJK family
    for a bold face. WenQuanYi Micro Hei (like SimHei) ships one weight only: matplotlib then draws the
    regular face anyway, with a "findfont: Failed to find font weight bold" warning on every run.
    Declaring that face as the family's bold draws exactly the same glyphs without the warning; Latin
    text stays DejaVu Sans Bold. A family with a real bold face is left alone.
    """
    manager = font_manager.fontManager
    faces = [font for font in manager.ttflist if font.name == family and font.style == "normal"]
    if not faces or any(_weight(font.weight) >= BOLD for font in faces):
        return False
    regular = min(faces, key=lambda font: abs(_weight(font.weight) - 400))
    manager.ttflist.append(dataclasses.replace(regular, weight=BOLD))
    manager._findfont_cached.cache_clear()  # as FontManager.addfont does after adding a face
    return True


def _weight(weight: str | int) -> int:
    """A font weight as a number (matplotlib stores names such as "bold" or numbers)."""
    return weight if isinstance(weight, int) else font_manager.weight_dict[weight]


def install(target: Path = FONT_DIR) -> Path:
    """Fetch Debian's WenQuanYi Micro Hei into `target` with apt-get download and dpkg-deb (no root)."""
    with tempfile.TemporaryDirectory() as work:
        subprocess.run(["apt-get", "download", DEBIAN_PACKAGE], cwd=work, check=True, capture_output=True)
        package = next(Path(work).glob(f"{DEBIAN_PACKAGE}_*.deb"))
        subprocess.run(["dpkg-deb", "-x", str(package), str(Path(work) / "root")], check=True, capture_output=True)
        font = next((Path(work) / "root").rglob("wqy-microhei.ttc"))
        target.mkdir(parents=True, exist_ok=True)
        return Path(shutil.copy2(font, target / font.name))


def main() -> int:
    # A glyph no font has (an emoji in a model name) draws as a box; matplotlib's warning about it only
    # printed a raw UserWarning into the run's output.
    warnings.filterwarnings("ignore", message=r"Glyph \d+ .* missing from", category=UserWarning)
    family = cjk_family()
    if family is not None:
        print(f"charts draw CJK text with {family}")
        return 0
    if shutil.which("apt-get") is None or shutil.which("dpkg-deb") is None:
        print("no CJK font found and no apt-get here: install one (e.g. Noto Sans CJK) so Chinese labels render")
        return 0
    try:
        path = install()
    except (subprocess.CalledProcessError, StopIteration, OSError) as exc:
        print(f"could not install {DEBIAN_PACKAGE} ({exc}); Chinese labels show as boxes until a CJK font is installed")
        return 0
    print(f"installed {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
