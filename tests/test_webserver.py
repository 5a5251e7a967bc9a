"""The real Dagster webserver shows the asset graph, partitions, checks and CLI runs."""

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from fixtures import ASSET_NAMES as ASSETS
from fixtures import PIPELINE_DAY as DAY
from fixtures import PIPELINE_REQUESTS as REQUESTS
from fixtures import ROOT, free_port, run_cli, write_jsonl

QUERY = """query ($day: String) {
  assetNodes { assetKey { path } partitionDefinition { description }
    assetChecksOrError { ... on AssetChecks { checks { name } } } }
  assetOrError(assetKey: {path: ["daily_report"]}) { ... on Asset { assetMaterializations(limit: 5) { partition } } }
  assetCheckExecutions(assetKey: {path: ["daily_report"]}, checkName: "day_consistent", partition: $day, limit: 5) {
    partition status evaluation { severity } }
  quarantine: assetCheckExecutions(assetKey: {path: ["clean_requests"]}, checkName: "quarantine_rate",
    partition: $day, limit: 5) { partition status evaluation { description } }
}"""


@pytest.fixture
def webserver(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    write_jsonl(tmp_path / "landing" / "requests-1.jsonl", REQUESTS)
    config = tmp_path / "chatpulse.yaml"
    config.write_text("data_home: .\n")
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster"))
    monkeypatch.setenv("CHATPULSE_CONFIG", str(config))
    result = run_cli("run", "--start", DAY)
    assert result.returncode == 0, result.stderr
    port = free_port()
    server = subprocess.Popen(
        [
            str(Path(sys.executable).with_name("dagster-webserver")),
            "-w",
            "workspace.yaml",
            "-h",
            "127.0.0.1",
            "-p",
            str(port),
        ],
        cwd=ROOT,
        env=dict(os.environ),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_until_up(url, server)
        yield url
    finally:
        server.terminate()
        server.wait(timeout=30)


def _wait_until_up(url: str, process: subprocess.Popen) -> None:
    deadline = time.monotonic() + 120
    while True:
        try:
            urllib.request.urlopen(f"{url}/server_info", timeout=2)
            return
        except OSError:
            if time.monotonic() > deadline or process.poll() is not None:
                raise
            time.sleep(0.5)


@pytest.mark.subprocess
@pytest.mark.webserver
def test_the_ui_shows_assets_partitions_checks_and_runs(webserver: str) -> None:
    request = urllib.request.Request(
        f"{webserver}/graphql",
        data=json.dumps({"query": QUERY, "variables": {"day": DAY}}).encode(),
        headers={"Content-Type": "application/json"},
    )
    data = json.load(urllib.request.urlopen(request, timeout=60))["data"]
    nodes = {node["assetKey"]["path"][-1]: node for node in data["assetNodes"]}
    assert set(nodes) == ASSETS
    daily_through_today = "Daily, starting 2026-01-01 UTC. End offsetted by 1 partition."
    assert all(node["partitionDefinition"]["description"] == daily_through_today for node in nodes.values())
    checks = {check["name"] for check in nodes["clean_requests"]["assetChecksOrError"]["checks"]}
    assert checks == {"rows_accounted_for", "quarantine_rate", "expectations_pass", "day_consistent"}
    assert [m["partition"] for m in data["assetOrError"]["assetMaterializations"]] == [DAY]
    # The day's state, per day: the CLI's run left it complete.
    executions = data["assetCheckExecutions"]
    assert executions == [{"partition": DAY, "status": "SUCCEEDED", "evaluation": {"severity": "WARN"}}]
    # Every check's result is the day's: the day's share of quarantined rows (one latency that is not a number,
    # of the lines dated that day) is over the default 5% limit, and the UI shows the failure under the day.
    rows_in = sum(1 for row in REQUESTS if row["timestamp"].startswith(DAY))
    bad = sum(1 for row in REQUESTS if row.get("latency_ms") == "quick")
    (result,) = data["quarantine"]
    assert (result["partition"], result["status"]) == (DAY, "FAILED" if bad / rows_in > 0.05 else "SUCCEEDED")
    assert result["evaluation"]["description"].startswith(f"{DAY}: {bad / rows_in:.1%} of rows quarantined")


@pytest.mark.subprocess
@pytest.mark.webserver
def test_chatpulse_ui_starts_dagster_dev_on_a_home_that_runs_one_day_at_a_time(tmp_path: Path) -> None:
    config = tmp_path / "chatpulse.yaml"
    config.write_text("data_home: .\n")
    env = {name: value for name, value in os.environ.items() if name not in ("DAGSTER_HOME", "CHATPULSE_CONFIG")}
    port = free_port()
    ui = subprocess.Popen(
        [sys.executable, "-m", "chatpulse.pipelines.cli", "--config", str(config), "ui", "--port", str(port)],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # dagster dev starts a webserver and a daemon: stop them all
    )
    try:
        _wait_until_up(f"http://127.0.0.1:{port}", ui)
    finally:
        os.killpg(ui.pid, signal.SIGTERM)
        ui.wait(timeout=60)
    assert "applyLimitPerUniqueValue: true" in (tmp_path / "dagster" / "dagster.yaml").read_text()
