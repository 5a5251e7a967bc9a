"""The demo's configuration: the packaged spend settings (demo.yaml: dimensions, budgets, the sample's bill)."""

from __future__ import annotations

from pathlib import Path

DEMO_SETTINGS = Path(__file__).with_name("demo.yaml")


def write_demo_config(data_home: Path) -> Path:
    """Write ``<data_home>/demo.yaml``: the data home itself, then the packaged demo settings; return its path.

    Rewritten on every demo, so it follows the installed version; a user's own configuration is never touched.
    """
    path = data_home / "demo.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("data_home: .\n" + DEMO_SETTINGS.read_text(encoding="utf-8"), encoding="utf-8")
    return path
