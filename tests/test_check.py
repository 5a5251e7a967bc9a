"""Mapping mistakes said out loud: `chatpulse check` before a run, and the mapping check and warnings of a run.

Expected numbers are counted from the files with the csv and json modules, not through ChatPulse's reader.
BurstGPT: Wang et al., "BurstGPT", KDD'25 (CC-BY-4.0), read from ../shared/realdata.
"""

import csv
import gzip
import json
import os
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner, Result
from dagster import AssetCheckSeverity, DagsterInstance

from chatpulse.config import CONFIG_ENV, load_settings
from chatpulse.ingest.check_report import check_day
from chatpulse.ingest.extract import extract_day
from chatpulse.pipelines.cli import cli
from chatpulse.pipelines.definitions import DAILY_JOB, build_definitions
from chatpulse.schema import Kind

from fixtures import ROOT, write_jsonl

TODAY = datetime.now(UTC).date()  # the configs below keep the default zone, UTC
# As the README documents them, not read from the code: exit status 3 with warnings; 1,000 rows read per file.
WARNINGS_EXIT, DEFAULT_ROWS = 3, 1_000
BURSTGPT = "burstgpt3_first400.csv"
TRACE_HEADER = ["Timestamp", "Session ID", "Elapsed time", "Model", "Request tokens", "Response tokens"]
TRACE_ROWS = [
    ["19440110.0", "s-1", "43", "GPT-4", "906", "446"],
    ["19440161.0", "", "2", "ChatGPT", "36", "29"],
    ["19440192.0", "s-2", "8", "GPT-4", "1779", "0"],
]
TRACE_SOURCE = {
    "name": "trace",
    "kind": "requests",
    "pattern": "trace*.csv",
    "columns": {
        "timestamp": "Timestamp",
        "session_id": "Session ID",
        "latency_ms": "Elapsed time",
        "model": "Model",
        "prompt_tokens": "Request tokens",
        "completion_tokens": "Response tokens",
    },
    "timestamp": {"format": "seconds_since", "origin": "2023-01-01"},
    "latency_unit": "s",
}


def check(config: Path, *args: str) -> Result:
    """`chatpulse --config CONFIG check ARGS` in this process."""
    return CliRunner().invoke(cli, ["--config", str(config), "check", *args], env={CONFIG_ENV: None})


def warnings(result: Result) -> list[str]:
    return [line.removeprefix("warning: ") for line in result.stdout.splitlines() if line.startswith("warning: ")]


def write_config(folder: Path, **settings: object) -> Path:
    path = folder / "chatpulse.yaml"
    path.write_text(yaml.safe_dump({"data_home": ".", "start_date": "2023-08-01", **settings}))
    return path


def write_csv(path: Path, header: list[str], rows: list[list[str]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as f:
        csv.writer(f).writerows([header, *rows])
    return path


def test_the_burstgpt_example_shows_its_day_and_fill_rates(realdata: Path, tmp_path: Path) -> None:
    config = yaml.safe_load((ROOT / "examples" / "burstgpt.yaml").read_text())
    config.update(data_home=str(tmp_path), landing_dir=str(realdata))  # the example's path is from /work/main
    path = tmp_path / "burstgpt.yaml"
    path.write_text(yaml.safe_dump(config))
    with (realdata / BURSTGPT).open(newline="") as f:
        rows = list(csv.DictReader(f))
    times = [datetime(2023, 1, 1, tzinfo=UTC) + timedelta(seconds=float(r["Timestamp"])) for r in rows]
    days = sorted({t.date() for t in times})
    first = rows[0]

    def column(name: str, source: str, example: str) -> str:
        filled = sum(r[source].strip() != "" for r in rows)
        return f"  {name} <- '{source}': {filled} of {len(rows)} rows filled ({filled / len(rows):.1%}), e.g. {example}"

    # The example's landing folder is the shared data folder: its other data sets are read by no source.
    strays = sorted(
        p.name for p in realdata.iterdir() if p.suffix in (".csv", ".jsonl", ".json") and p.name != BURSTGPT
    )
    result = check(path)
    assert result.exit_code == WARNINGS_EXIT, result.output
    assert result.stdout.splitlines() == [
        f"landing folder {realdata}",
        f"partitions 2023-08-01 .. {TODAY} (UTC); read the first {DEFAULT_ROWS:,} rows of each file",
        "",
        "source 'burstgpt' (requests), pattern 'burstgpt3_first400.csv':",
        f"  {BURSTGPT}: {len(rows)} rows, {days[0]}",
        f"  days (UTC): {days[0]}",
        column("timestamp", "Timestamp", f"{times[0]:%Y-%m-%d %H:%M:%S}+00:00"),
        column("session_id", "Session ID", json.dumps(next(r["Session ID"] for r in rows if r["Session ID"]))),
        column("model", "Model", json.dumps(first["Model"])),
        column("endpoint", "Log Type", json.dumps(first["Log Type"])),
        column("latency_ms", "Elapsed time", f"{int(first['Elapsed time']) * 1000} ms"),
        column("prompt_tokens", "Request tokens", first["Request tokens"]),
        column("completion_tokens", "Response tokens", first["Response tokens"]),
        column("total_tokens", "Total tokens", first["Total tokens"]),
        "  not in the files: request_id, user_id, provider, status_code (from the failure rule), "
        "error_type (from the failure rule), error_code, finish_reason, ttft_ms, cached_tokens, "
        "cache_write_tokens, reasoning_tokens, cost_usd, metadata, service_tier",
        "",
        f"warning: {len(strays)} files in the landing folder match no source: {', '.join(strays)}",
        "1 warning",
    ]


def test_a_column_renamed_in_one_file_of_several_is_a_warning_naming_that_file(tmp_path: Path) -> None:
    write_csv(tmp_path / "landing" / "trace-1.csv", TRACE_HEADER, TRACE_ROWS)
    renamed = ["Sesion ID" if name == "Session ID" else name for name in TRACE_HEADER]
    write_csv(tmp_path / "landing" / "trace-2.csv", renamed, TRACE_ROWS)
    result = check(write_config(tmp_path, landing_dir="landing", sources=[TRACE_SOURCE]))
    assert result.exit_code == WARNINGS_EXIT
    assert warnings(result) == [
        "source 'trace': column 'Session ID' (session_id) is not in trace-2.csv (1 of its 2 files)"
        " (did you mean 'Sesion ID'?)"
    ]


def test_a_file_of_failed_requests_only_is_not_judged_by_the_columns_answers_hold(tmp_path: Path) -> None:
    """An hour of 429s logs no usage or model: not a renamed field. A file of answers without them still is."""
    answer = {"time": "2026-11-20T10:00:00Z", "status": 200, "usage": {"prompt_tokens": 5}, "model": "m"}
    failure = {"time": "2026-11-20T11:00:00Z", "status": 429, "error": {"type": "rate_limit"}}
    write_jsonl(tmp_path / "landing" / "calls-1.jsonl", [answer] * 3)
    write_jsonl(tmp_path / "landing" / "calls-2.jsonl", [failure] * 2)
    columns = {
        "timestamp": "time",
        "status_code": "status",
        "prompt_tokens": "usage.prompt_tokens",
        "model": "model",
        "error_type": "error.type",
    }
    source = {"name": "calls", "kind": "requests", "pattern": "calls-*", "columns": columns, "optional": ["error_type"]}
    result = check(write_config(tmp_path, landing_dir="landing", start_date="2026-11-01", sources=[source]))
    assert warnings(result) == []
    write_jsonl(tmp_path / "landing" / "calls-3.jsonl", [{**failure, "status": 200, "error": None}])
    result = check(write_config(tmp_path, landing_dir="landing", start_date="2026-11-01", sources=[source]))
    assert warnings(result) == [
        "source 'calls': column 'model' is not in calls-3.jsonl (1 of its 2 files)",
        "source 'calls': column 'usage.prompt_tokens' (prompt_tokens) is not in calls-3.jsonl (1 of its 2 files)",
    ]


def test_a_gemini_stream_without_a_time_is_no_mapping_mistake(tmp_path: Path) -> None:
    """The Gemini API writes no time: a bare stream is dated by its file's modification time, as documented,
    and `check` warned that request_time and createTime were missing from it, exiting 3."""
    usage = {"promptTokenCount": 5, "candidatesTokenCount": 7, "totalTokenCount": 12}
    body = {"responseId": "r2", "modelVersion": "gemini-2.5-flash", "usageMetadata": usage}
    wrapped = {"request_time": "2026-11-20T10:00:00Z", "latency_ms": 900, "response": {**body, "responseId": "r1"}}
    write_jsonl(tmp_path / "landing" / "gemini-a.jsonl", [wrapped])
    (tmp_path / "landing" / "gemini-b.jsonl").write_text(f"data: {json.dumps(body)}\n\n", encoding="utf-8")
    source = {"name": "gemini", "preset": "gemini_generate_content", "pattern": "gemini-*.jsonl"}
    result = check(write_config(tmp_path, landing_dir="landing", start_date="2026-11-01", sources=[source]))
    assert warnings(result) == [] and result.exit_code == 0


def test_a_typo_in_a_column_name_is_named_with_its_source(tmp_path: Path) -> None:
    write_csv(tmp_path / "landing" / "trace-1.csv", TRACE_HEADER, TRACE_ROWS)
    typo = {**TRACE_SOURCE, "columns": {**TRACE_SOURCE["columns"], "session_id": "Sesion ID"}}
    result = check(write_config(tmp_path, landing_dir="landing", sources=[typo]))
    assert result.exit_code == WARNINGS_EXIT
    assert warnings(result) == [
        "source 'trace': column 'Sesion ID' (session_id) is not in its file trace-1.csv (did you mean 'Session ID'?)"
    ]
    lines = result.stdout.splitlines()
    assert "  session_id <- 'Sesion ID': NOT FOUND" in lines
    assert "  other columns (kept in metadata): Session ID" in lines

    fixed = check(write_config(tmp_path, landing_dir="landing", sources=[TRACE_SOURCE]))
    assert fixed.exit_code == 0 and fixed.stdout.splitlines()[-1] == "no warnings"
    filled = sum(row[1] != "" for row in TRACE_ROWS)
    assert f"  session_id <- 'Session ID': {filled} of 3 rows filled (66.7%), e.g. \"s-1\"" in fixed.stdout.splitlines()


def test_a_pattern_that_matches_nothing_or_only_what_another_source_reads(tmp_path: Path) -> None:
    write_csv(tmp_path / "landing" / "trace-1.csv", TRACE_HEADER, TRACE_ROWS)
    sources = [
        TRACE_SOURCE,
        {**TRACE_SOURCE, "name": "typo", "pattern": "traces-*.csv"},
        {**TRACE_SOURCE, "name": "late", "pattern": "trace-1*"},
    ]
    result = check(write_config(tmp_path, landing_dir="landing", sources=sources))
    assert result.exit_code == WARNINGS_EXIT
    assert warnings(result) == [
        "source 'typo': pattern 'traces-*.csv' matches no file",
        "source 'late': every file its pattern matches is read by source 'trace' first",
    ]
    assert "  trace-1.csv: read by source 'trace' first" in result.stdout.splitlines()


def test_a_messages_source_reading_a_requests_sources_files_shadows_nothing(realdata: Path, tmp_path: Path) -> None:
    """A LiteLLM payload holds a request and its messages: two sources of different kinds read it."""
    payload = json.loads((realdata / "formats" / "litellm-standard-logging-payload.json").read_text())
    (tmp_path / "landing" / "litellm").mkdir(parents=True)
    (tmp_path / "landing" / "litellm" / "payload-1.json").write_text(json.dumps(payload))
    sources = [
        {"name": "litellm", "preset": "litellm_standard_logging_payload", "pattern": "litellm/*.json"},
        {
            "name": "litellm_messages",
            "kind": "messages",
            "pattern": "litellm/*.json",
            "layout": "document",
            "records": {"path": "messages"},
            "columns": {"session_id": "id", "timestamp": "startTime"},
        },
    ]
    config = write_config(tmp_path, landing_dir="landing", sources=sources)
    result = check(config)
    assert not [w for w in warnings(result) if "read by source" in w], result.stdout
    assert "read by source" not in result.stdout
    # The run's log warns from the same findings, a kind at a time.
    settings = load_settings(config, env={})
    day = datetime.strptime(payload["startTime"], "%Y-%m-%d %H:%M:%S.%f").date()
    for kind in (Kind.REQUESTS, Kind.MESSAGES):
        frame = extract_day(settings.landing_dir, settings.sources, kind, day, "UTC").frame
        expected = 1 if kind == Kind.REQUESTS else len(payload["messages"])
        assert len(frame) == expected
        findings = check_day(settings.landing_dir, settings.sources, kind, frame, "UTC").findings
        assert not [str(f) for f in findings if "read by source" in str(f)]


def test_files_no_source_reads_are_named(tmp_path: Path) -> None:
    landing = tmp_path / "landing"
    row = {"timestamp": "2026-11-20T10:00:00Z", "latency_ms": 120}
    write_jsonl(landing / "requests-1.jsonl.gz", [row])
    write_jsonl(landing / "request-2.jsonl", [row])  # the typo: no built-in pattern matches it
    write_jsonl(landing / ".requests-3.jsonl", [row])  # hidden: a file still being written
    write_jsonl(landing / "old" / "requests-4.jsonl", [row])  # a folder no pattern reaches
    (landing / "notes.md").write_text("not a log")
    result = check(write_config(tmp_path, landing_dir="landing"))
    # The built-in sources are a menu: no messages, sessions or feedback files is no mistake.
    assert warnings(result) == ["1 file in the landing folder matches no source: request-2.jsonl"]
    assert result.exit_code == WARNINGS_EXIT


def test_timestamp_options_that_change_nothing(tmp_path: Path) -> None:
    landing = tmp_path / "landing"
    noon = datetime(2026, 11, 20, 12, tzinfo=UTC)
    write_jsonl(landing / "epoch-1.jsonl", [{"ts": int(noon.timestamp() * 1000)}])
    write_jsonl(landing / "since-1.jsonl", [{"timestamp": 3600}])
    zoned = ["2026-11-20T10:00:00+08:00", "2026-11-20T02:00:00Z", "2026-11-20 10:00:00.5+0800"]
    write_jsonl(landing / "zoned-1.jsonl", [{"timestamp": t} for t in zoned])
    write_jsonl(landing / "mixed-1.jsonl", [{"timestamp": t} for t in [*zoned, "2026-11-20 10:00:00"]])
    shanghai = "Asia/Shanghai"
    sources = [
        {
            "name": "epoch",
            "kind": "requests",
            "pattern": "epoch-*",
            "columns": {"timestamp": "ts"},
            "timestamp": {"format": "epoch_ms", "origin": "2026-01-01", "timezone": shanghai},
        },
        {
            "name": "since",
            "kind": "requests",
            "pattern": "since-*",
            "timestamp": {"format": "seconds_since", "origin": "2026-11-20T00:00:00+08:00", "timezone": shanghai},
        },
        {"name": "zoned", "kind": "requests", "pattern": "zoned-*", "timestamp": {"timezone": shanghai}},
        {"name": "mixed", "kind": "requests", "pattern": "mixed-*", "timestamp": {"timezone": shanghai}},
    ]
    result = check(write_config(tmp_path, landing_dir="landing", timezone=shanghai, sources=sources))
    assert result.exit_code == WARNINGS_EXIT
    assert warnings(result) == [
        "source 'epoch': timestamp.origin does nothing with format epoch_ms (it is the start for seconds_since)",
        "source 'epoch': timestamp.timezone does nothing with format epoch_ms (epoch numbers are instants)",
        "source 'since': timestamp.timezone does nothing: the origin has its own UTC offset",
        f"source 'zoned': timestamp.timezone {shanghai} does nothing: all 3 sampled times carry their own UTC offset",
    ]  # the mixed source has one naive time: there the zone counts
    lines = result.stdout.splitlines()
    assert "  timestamp <- 'ts': 1 of 1 rows filled (100.0%), e.g. 2026-11-20 20:00:00+08:00" in lines
    assert "  timestamp <- 'timestamp': 1 of 1 rows filled (100.0%), e.g. 2026-11-20 01:00:00+08:00" in lines


def test_text_is_masked_and_content_never_shown(tmp_path: Path) -> None:
    secret = "my number is +44 20 7946 0958, the plan is secret"
    message = {"session_id": "s1", "user_id": "alice@example.com", "timestamp": "2026-11-20T10:00:00Z"}
    write_jsonl(tmp_path / "landing" / "messages-1.jsonl", [{**message, "role": "user", "content": secret}])
    write_jsonl(tmp_path / "landing" / "requests-1.jsonl", [{"timestamp": "2026-11-20T10:00:00Z"}])
    result = check(write_config(tmp_path, landing_dir="landing"))
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert "  user_id <- 'user_id': 1 of 1 rows filled (100.0%), e.g. \"[EMAIL]\"" in lines
    assert "  content <- 'content': 1 of 1 rows filled (100.0%), not shown" in lines
    assert "alice" not in result.stdout and "secret" not in result.stdout and "7946" not in result.stdout


def test_only_the_first_rows_are_read_unless_asked(tmp_path: Path) -> None:
    records = [{"timestamp": f"2026-11-20T10:{n:02d}:00Z", **({"model": "m"} if n % 3 == 0 else {})} for n in range(30)]
    write_jsonl(tmp_path / "landing" / "requests-1.jsonl.gz", records)
    # A quoted field spans two lines: the sample counts records, not lines.
    header = ["timestamp", "user_id"]
    trace = [
        ["2026-11-20T10:00:00Z", "line one\nline two"],
        ["2026-11-20T11:00:00Z", ""],
        ["2026-11-20T12:00:00Z", "u"],
    ]
    write_csv(tmp_path / "landing" / "requests-2.csv", header, trace)
    config = write_config(tmp_path, landing_dir="landing")

    def model_line(json_rows: int, csv_rows: int) -> str:
        filled, rows = sum("model" in r for r in records[:json_rows]), json_rows + csv_rows
        share = f"{filled} of {rows} rows filled ({filled / rows:.1%})"
        return f"  model <- 'model': {share}, not in requests-2.csv, e.g. \"m\""

    sampled = check(config, "--rows", "2").stdout.splitlines()
    assert "  requests-1.jsonl.gz: 2 rows (the file goes on), 2026-11-20" in sampled
    assert "  requests-2.csv: 2 rows (the file goes on), 2026-11-20" in sampled
    assert model_line(2, 2) in sampled
    user = (
        "  user_id <- 'user_id': 1 of 4 rows filled (25.0%), not in requests-1.jsonl.gz, e.g. \"line one\\nline two\""
    )
    assert user in sampled
    whole = check(config, "--rows", "0").stdout.splitlines()
    assert f"  requests-1.jsonl.gz: {len(records)} rows, 2026-11-20" in whole
    assert f"  requests-2.csv: {len(trace)} rows, 2026-11-20" in whole
    assert model_line(len(records), len(trace)) in whole


def test_a_utf16_file_is_sampled_by_its_characters(tmp_path: Path) -> None:
    """A UTF-16 export (PowerShell's, Excel's) is sampled as the run reads it: a newline's byte alone is half a
    character, so the head was cut mid-character and the file called unreadable."""
    records = [{"timestamp": f"2026-11-20T10:{n:02d}:00Z", "model": "m"} for n in range(5)]
    lines = "".join(json.dumps(record) + "\r\n" for record in records)
    (tmp_path / "landing").mkdir()
    (tmp_path / "landing" / "requests-1.jsonl").write_bytes(lines.encode("utf-16"))  # with its byte order mark
    csv_text = "timestamp,model\r\n" + "".join(f"{r['timestamp']},m\r\n" for r in records)
    (tmp_path / "landing" / "requests-2.csv").write_bytes(csv_text.encode("utf-16-le").join([b"\xff\xfe", b""]))
    config = write_config(tmp_path, landing_dir="landing")
    result = check(config, "--rows", "2")
    assert result.exit_code == 0, result.stdout
    assert "  requests-1.jsonl: 2 rows (the file goes on), 2026-11-20" in result.stdout.splitlines()
    assert "  requests-2.csv: 2 rows (the file goes on), 2026-11-20" in result.stdout.splitlines()
    assert not warnings(result)
    whole = check(config, "--rows", "0").stdout.splitlines()
    assert "  requests-1.jsonl: 5 rows, 2026-11-20" in whole and "  requests-2.csv: 5 rows, 2026-11-20" in whole


def test_days_outside_the_partitions(tmp_path: Path) -> None:
    days = [date(2026, 10, 30), date(2026, 10, 31), date(2026, 11, 2), TODAY + timedelta(days=2)]
    write_jsonl(tmp_path / "landing" / "requests-1.jsonl", [{"timestamp": f"{d}T12:00:00Z"} for d in days])
    result = check(write_config(tmp_path, landing_dir="landing", start_date="2026-11-01"))
    early = "rows on 2026-10-30 .. 2026-10-31 (2 days) are before start_date 2026-11-01: never run"
    late = f"rows on {days[-1]} are after today {TODAY}: no partition yet"
    assert warnings(result) == [f"source 'requests': {early}", f"source 'requests': {late}"]
    assert f"  outside the partitions: {early}; {late}" in result.stdout.splitlines()
    assert f"  days (UTC): 2026-10-30 .. {days[-1]} (4 days)" in result.stdout.splitlines()


def test_unreadable_files_and_values_are_warnings_not_crashes(tmp_path: Path) -> None:
    landing = tmp_path / "landing"
    landing.mkdir()
    (landing / "requests-1.jsonl.gz").write_bytes(b"not gzip")
    write_jsonl(landing / "requests-2.jsonl", [{"timestamp": "yesterday"}, {"timestamp": "soon"}])
    write_jsonl(landing / "messages-1.jsonl", ['{"timestamp": "2026-11-20T10:00:00Z"', "[1, 2]"])
    result = check(write_config(tmp_path, landing_dir="landing", start_date="2026-11-01"))
    assert result.exit_code == WARNINGS_EXIT
    found = warnings(result)
    assert found[0].startswith("source 'requests': requests-1.jsonl.gz cannot be read: ")
    unread = "source 'requests': column 'timestamp': none of its 2 sampled values could be read"
    assert found[1:] == [f"{unread}: unrecognised time format"]
    lines = result.stdout.splitlines()
    assert "  requests-1.jsonl.gz: cannot be read" in lines
    assert "  messages-1.jsonl: 0 rows, no readable time, 2 malformed lines (lines 1, 2)" in lines


def test_a_column_with_some_unreadable_values_names_the_first_line_and_why(tmp_path: Path) -> None:
    """Not a mapping mistake (the run quarantines those rows with their reasons), but worth seeing before it."""
    ok = {"timestamp": "2026-11-20T10:00:00Z", "latency_ms": 120}
    rows = [ok, ok, {"timestamp": "2026-11-20T10:01:00Z", "latency_ms": "abc"}, ok, {**ok, "latency_ms": "x"}]
    write_jsonl(tmp_path / "landing" / "requests-1.jsonl", rows)
    result = check(write_config(tmp_path, landing_dir="landing", start_date="2026-11-01"))
    (line,) = [line for line in result.stdout.splitlines() if line.startswith("  latency_ms <- ")]
    assert ", 2 unreadable (first: requests-1.jsonl line 3: not a number)" in line


def test_a_time_format_that_reads_no_value_says_why(tmp_path: Path) -> None:
    write_jsonl(tmp_path / "landing" / "requests-1.jsonl", [{"timestamp": "2026-11-20T10:00:00Z"}] * 3)
    sources = [{"name": "requests", "kind": "requests", "pattern": "requests-*", "timestamp": {"format": "epoch_ms"}}]
    result = check(write_config(tmp_path, landing_dir="landing", start_date="2026-11-01", sources=sources))
    assert result.exit_code == WARNINGS_EXIT
    assert warnings(result) == [
        "source 'requests': column 'timestamp': none of its 3 sampled values could be read:"
        " not a number (timestamp.format is epoch_ms)"
    ]


def test_check_names_the_lines_to_look_at(tmp_path: Path) -> None:
    landing = tmp_path / "landing"
    good = {"timestamp": "2026-11-20T10:00:00Z", "request_id": "r"}
    rows = [good, '{"cut', {"timestamp": "soon"}, good, *(["[1"] * 6), {"timestamp": "later"}]
    write_jsonl(landing / "requests-1.jsonl", rows)
    lines = check(write_config(tmp_path, landing_dir="landing", start_date="2026-11-01")).stdout.splitlines()
    malformed = [n for n, row in enumerate(rows, start=1) if isinstance(row, str)]
    undated = [n for n, row in enumerate(rows, start=1) if isinstance(row, dict) and row is not good]
    assert (len(malformed), len(undated)) == (7, 2)  # more malformed lines than are named
    shown = ", ".join(map(str, malformed[:5]))
    assert (
        f"  requests-1.jsonl: 4 rows, 2026-11-20, 7 malformed lines (lines {shown}, ...), "
        f"2 without a readable time (lines {undated[0]}, {undated[1]})"
    ) in lines


def test_a_configuration_error_exits_2(tmp_path: Path) -> None:
    config = tmp_path / "bad.yaml"
    config.write_text("sources:\n  - kind: requests\n    pattern: '*.csv'\n    timestamp: {format: epoch_days}\n")
    result = check(config)
    assert result.exit_code == 2 and result.stderr.startswith(f"chatpulse: error: {config}: sources[0].timestamp")


def test_a_key_past_the_sample_counts_as_present_on_its_day(tmp_path: Path) -> None:
    """A run's mapping check reads only the first rows of a file, but a day's own rows count too."""
    rows = [{"t": f"2026-11-20T10:{n:02d}:00Z", **({"err": "timeout"} if n == 5 else {})} for n in range(8)]
    write_jsonl(tmp_path / "requests-1.jsonl", rows)
    source = {"kind": "requests", "pattern": "requests-*", "columns": {"timestamp": "t", "error_type": "err"}}
    settings = load_settings(write_config(tmp_path, landing_dir=".", sources=[source]), env={})
    frame = extract_day(tmp_path, settings.sources, Kind.REQUESTS, date(2026, 11, 20), "UTC").frame
    assert frame["error_type"].notna().sum() == 1
    assert check_day(tmp_path, settings.sources, Kind.REQUESTS, frame, "UTC", rows=2).missing == ()
    typo = {**source, "columns": {"timestamp": "t", "error_type": "error"}}
    settings = load_settings(write_config(tmp_path, landing_dir=".", sources=[typo]), env={})
    frame = extract_day(tmp_path, settings.sources, Kind.REQUESTS, date(2026, 11, 20), "UTC").frame
    day = check_day(tmp_path, settings.sources, Kind.REQUESTS, frame, "UTC")
    assert day.missing == (
        {"source": "requests", "column": "error_type", "source_column": "error", "files": ["requests-1.jsonl"]},
    )
    assert [str(f) for f in day.findings] == [
        "source 'requests': column 'error' (error_type) is not in its file requests-1.jsonl (did you mean 'err'?)"
    ]


@pytest.mark.pipeline
def test_a_run_warns_about_a_typo_and_its_check_fails(tmp_path: Path) -> None:
    landing = tmp_path / "landing"
    write_csv(landing / "trace-1.csv", TRACE_HEADER, TRACE_ROWS)
    write_jsonl(landing / "messages-1.jsonl", [{"timestamp": "2023-08-14T10:00:00Z", "role": "user", "content": "hi"}])
    write_jsonl(landing / "stray.jsonl", [{"timestamp": "2023-08-14T10:00:00Z"}])
    typo = {**TRACE_SOURCE, "columns": {**TRACE_SOURCE["columns"], "model": "model_name"}}
    messages = {"kind": "messages", "pattern": "messages-*"}
    config = write_config(tmp_path, landing_dir="landing", sources=[typo, messages])
    job = build_definitions(load_settings(config, env={}), str(config)).resolve_job_def(DAILY_JOB)
    instance = DagsterInstance.ephemeral()
    result = job.execute_in_process(partition_key="2023-08-14", instance=instance)
    assert result.success

    checks = {
        c.asset_key.path[-1]: c
        for c in result.get_asset_check_evaluations()
        if c.check_name == "mapped_columns_present"
    }
    assert set(checks) == {"raw_requests", "raw_messages", "raw_feedback"}
    failed = checks["raw_requests"]
    assert not failed.passed and failed.severity == AssetCheckSeverity.WARN
    assert failed.metadata["missing"].value == [
        {"source": "trace", "column": "model", "source_column": "model_name", "files": ["trace-1.csv"]}
    ]
    assert failed.metadata["files"].value == ["trace-1.csv"]
    assert checks["raw_messages"].passed and checks["raw_messages"].metadata["files"].value == ["messages-1.jsonl"]

    logged = [
        (entry.step_key, entry.user_message)
        for entry in instance.all_logs(result.run_id)
        if entry.user_message.startswith("mapping: ")
    ]
    assert logged == [
        ("raw_requests", "mapping: source 'trace': column 'model_name' (model) is not in its file trace-1.csv"),
        ("raw_requests", "mapping: 1 file in the landing folder matches no source: stray.jsonl"),
    ]


@pytest.mark.pipeline
def test_a_day_left_empty_by_a_time_no_format_reads_says_where_its_rows_went(tmp_path: Path) -> None:
    """Times written as ISO text under `format: epoch_ms`: every row is filed under the file's modification
    day, so the day asked for has none; its run says so and why, instead of an empty report alone."""
    landing = tmp_path / "landing"
    write_jsonl(landing / "requests-2023-08-14.jsonl", [{"timestamp": "2023-08-14T10:00:00Z"}] * 3)
    modified = datetime(2023, 8, 16, 12, tzinfo=UTC).timestamp()
    os.utime(landing / "requests-2023-08-14.jsonl", (modified, modified))
    sources = [{"kind": "requests", "pattern": "requests-*", "timestamp": {"format": "epoch_ms"}}]
    config = write_config(tmp_path, landing_dir="landing", sources=sources)
    job = build_definitions(load_settings(config, env={}), str(config)).resolve_job_def(DAILY_JOB)
    instance = DagsterInstance.ephemeral()
    result = job.execute_in_process(partition_key="2023-08-14", instance=instance)
    assert result.success
    logged = [e.user_message for e in instance.all_logs(result.run_id) if e.step_key == "raw_requests"]
    assert (
        "no requests rows on 2023-08-14: the 1 file(s) read for it hold rows of 2023-08-16 only: "
        "requests-2023-08-14.jsonl (a row whose time cannot be read is filed under its file's day: see the "
        "mapping warnings)"
    ) in logged
    assert (
        "mapping: source 'requests': column 'timestamp': none of its 3 sampled values could be read:"
        " not a number (timestamp.format is epoch_ms)"
    ) in logged


def test_the_sample_reads_gzip_by_lines(tmp_path: Path) -> None:
    """A gzip file is sampled from its start: a damaged tail past the sample does not matter."""
    good = b"".join(json.dumps({"timestamp": "2026-11-20T10:00:00Z"}).encode() + b"\n" for _ in range(5))
    (tmp_path / "landing").mkdir()
    (tmp_path / "landing" / "requests-1.jsonl.gz").write_bytes(gzip.compress(good)[:-8])  # no gzip trailer
    result = check(write_config(tmp_path, landing_dir="landing", start_date="2026-11-01"), "--rows", "3")
    assert "  requests-1.jsonl.gz: 3 rows (the file goes on), 2026-11-20" in result.stdout.splitlines()


def test_a_value_that_always_fills_is_neither_absent_nor_not_found(realdata: Path, tmp_path: Path) -> None:
    """A real Batch API output file through its preset: `provider` comes from a map whose `missing:` fills
    every row where the Azure marker is absent, and `service_tier` from a map that gives "batch" whatever
    it reads; neither is "not in the files", nor is the marker's path NOT FOUND."""
    batch = realdata / "formats" / "openai-batch-output-queryreformulation.jsonl"
    rows = sum(1 for line in batch.read_text().splitlines() if line.strip())
    (tmp_path / "landing").mkdir()
    (tmp_path / "landing" / "batch.jsonl").write_bytes(batch.read_bytes())
    source = {"preset": "openai_batch_output", "pattern": "batch*.jsonl"}
    lines = check(write_config(tmp_path, start_date="2025-01-01", sources=[source])).stdout.splitlines()
    column = {line.split(" <- ")[0].strip(): line for line in lines if " <- " in line}
    filled = f"{rows} of {rows} rows filled (100.0%)"
    described = "provider or (map of error.innererror) or (map of prompt_filter_results)"  # Azure's two markers
    assert column["provider"].endswith(f"'{described}': {filled}, e.g. \"openai\"")
    assert column["service_tier"].endswith(f'\'"batch" on every row\': {filled}, e.g. "batch"')
    (absent,) = [line for line in lines if line.startswith("  not in the files: ")]
    assert not {"provider", "service_tier"} & set(absent.removeprefix("  not in the files: ").split(", "))
    assert not [line for line in lines if "NOT FOUND" in line]
