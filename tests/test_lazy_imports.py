"""Heavy libraries are imported by the steps that use them, never with the Definitions (issue 14).

Loading the Definitions is what every code server (evaluating the sensors) pays before anything else; Great Expectations
(with SciPy's stats) and matplotlib take seconds to import. Each probe runs in a fresh
interpreter, since this test process has imported them all long before.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

HEAVY = ("great_expectations", "matplotlib", "scipy.stats")

LOAD_DEFINITIONS = """
import json, sys
import chatpulse.pipelines.cli
from chatpulse.pipelines.definitions import daily_job
daily_job()
loaded = [sys.modules.get(name) is not None for name in HEAVY]
from chatpulse.reports import charts  # what the report step imports: the probe sees it
print(json.dumps({"definitions": loaded, "charts": [sys.modules.get(name) is not None for name in HEAVY]}))
"""


def _probe(code: str, tmp_path: Path) -> dict:
    env = {**os.environ, "CHATPULSE_HOME": str(tmp_path), "DAGSTER_HOME": str(tmp_path / "dagster")}
    env.pop("CHATPULSE_CONFIG", None)
    result = subprocess.run(
        [sys.executable, "-c", f"HEAVY = {HEAVY!r}\n{code}"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.subprocess
def test_loading_the_definitions_imports_neither_gx_nor_matplotlib(tmp_path: Path) -> None:
    loaded = _probe(LOAD_DEFINITIONS, tmp_path)
    assert dict(zip(HEAVY, loaded["definitions"], strict=True)) == dict.fromkeys(HEAVY, False)
    assert dict(zip(HEAVY, loaded["charts"], strict=True))["matplotlib"] is True
