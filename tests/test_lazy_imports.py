"""Heavy libraries are imported by the steps that use them, never with the Definitions (issue 14).

Loading the Definitions is what every code server (evaluating the sensors) pays before anything else; Great Expectations
(with SciPy's stats and Altair) and matplotlib take seconds to import. Each probe runs in a fresh
interpreter, since this test process has imported them all long before.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

HEAVY = ("great_expectations", "matplotlib", "scipy.stats", "altair")

LOAD_DEFINITIONS = """
import json, sys
import chatpulse.pipelines.cli
from chatpulse.pipelines.definitions import daily_job
daily_job()
loaded = [sys.modules.get(name) is not None for name in HEAVY]
from chatpulse.reports import charts  # what the report step imports: the probe sees it
print(json.dumps({"definitions": loaded, "charts": [sys.modules.get(name) is not None for name in HEAVY]}))
"""

VALIDATE = """
import json, sys
import pandas as pd
from chatpulse.ingest.extract import empty_frame
from chatpulse.ingest.validate import DeferredModule, validate
from chatpulse.schema import Kind
frame = empty_frame(Kind.REQUESTS).reindex(range(2))
frame["timestamp"] = pd.to_datetime(["2026-11-20T08:00:00Z", None], utc=True)
frame["latency_ms"] = [120.0, -5.0]
frame["status_code"] = pd.array([200, 700], dtype="Int64")
result = validate(frame, Kind.REQUESTS)
from great_expectations.expectations.core import expect_column_kl_divergence_to_be_less_than as kl
deferred = isinstance(kl.stats, DeferredModule)
loaded_while_validating = "scipy.stats._stats_py" in sys.modules
entropy = kl.stats.entropy([0.5, 0.5], [0.9, 0.1])  # first use imports the real module
import scipy.stats
print(json.dumps({
    "reasons": {str(row): sorted(reasons) for row, reasons in result.row_reasons.items()},
    "gx": "great_expectations" in sys.modules,
    "deferred": deferred,
    "loaded_while_validating": loaded_while_validating,
    "entropy": entropy,
    "real_entropy": scipy.stats.entropy([0.5, 0.5], [0.9, 0.1]),
    "real_module": not isinstance(sys.modules["scipy.stats"], DeferredModule),
}))
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


@pytest.mark.subprocess
def test_validating_imports_gx_without_scipy_stats_until_gx_uses_it(tmp_path: Path) -> None:
    seen = _probe(VALIDATE, tmp_path)
    assert seen["gx"] and seen["deferred"] and not seen["loaded_while_validating"]
    # The suite still judges rows: the second request has no time, a negative latency and no such status.
    assert seen["reasons"] == {
        "1": [
            "latency_ms: expect_column_values_to_be_between",
            "status_code: expect_column_values_to_be_between",
            "timestamp: expect_column_values_to_not_be_null",
        ]
    }
    assert seen["entropy"] == pytest.approx(seen["real_entropy"]) and seen["real_module"]
