"""The Jinja templates of the report pages and what an embedded chart looks like to them.

The templates are strict (an undefined name fails the render instead of printing nothing) and
autoescape everything, since scenario and model names come from the logs.
"""

from __future__ import annotations

import base64
import os
import uuid
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined

_TEMPLATES = Path(__file__).parent / "templates"
# autoescape=True, not select_autoescape(): the ".html.j2" suffix would not match its extension list.
_ENV = Environment(
    loader=FileSystemLoader(_TEMPLATES),
    autoescape=True,
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)


def render_template(name: str, **context: Any) -> str:
    """The HTML of ``templates/<name>`` with ``context``; raises jinja2.UndefinedError for a name it lacks."""
    return _ENV.get_template(name).render(**context)


def write_page(path: Path, text: str) -> None:
    """Write `text` (UTF-8) to `path` whole or not at all: into a new file beside it, then renamed over it.

    A reader (a browser, the mail step, another day's run rewriting the index at the same time) sees the
    old page or the new one, never half of one. Raises OSError when the folder cannot be written.
    """
    # A name of its own (not mkstemp's, which makes the file private to its owner): the page keeps the
    # permissions the umask gives any file written here.
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex}.tmp")
    try:
        with temporary.open("x", encoding="utf-8") as out:
            out.write(text)
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def chart_ref(title: str, png: Path) -> dict[str, str]:
    """What a template needs for an <img>: the PNG as a data: URI (``src``), its ``name`` (file stem), alt ``title``
    and pixel ``width`` and ``height``, so the page carries the chart itself and reserves its space.

    Raises OSError when ``png`` cannot be read.
    """
    data = png.read_bytes()
    width, height = _png_size(data)
    return {
        "title": title,
        "name": png.stem,
        "src": "data:image/png;base64," + base64.b64encode(data).decode("ascii"),
        "width": str(width),
        "height": str(height),
    }


def _png_size(data: bytes) -> tuple[int, int]:
    """Pixel width and height from the PNG header (IHDR), so the <img> reserves its space before it is decoded."""
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
