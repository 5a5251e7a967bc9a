"""Labels from the logs are untrusted text: shown literally, shortened for display, kept whole in the warehouse,
and no label size slows a step (issue 11.6, field case 12)."""

from __future__ import annotations

import json
import shutil
import warnings
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
import yaml
from dagster import DagsterInstance

from chatpulse.config import MailSettings, load_settings
from chatpulse.pipelines.definitions import DAILY_JOB, build_definitions
from chatpulse.reports import chartkit
from chatpulse.reports.labels import ELLIPSIS, LABEL_MAX, display_label
from chatpulse.reports.mail import MAX_HTML_BYTES, build_message
from chatpulse.warehouse import Warehouse

from fixtures import FIELD_CASES, REPORT_DAY, Inbox, full_day, render_with, report_daily

CASE = FIELD_CASES / "12-model-name-breaks-report"


def _width(text: str) -> int:
    return sum(2 if "\u3000" <= char <= "\u9fff" or "\uff00" <= char <= "\uffef" else 1 for char in text)


@pytest.mark.parametrize(
    ("label", "shown"),
    [
        ("gpt-4o", "gpt-4o"),
        (r"gpt-$\badcmd$", r"gpt-$\badcmd$"),  # text, not a formula
        ("a" * LABEL_MAX, "a" * LABEL_MAX),  # at the maximum: whole
        ("anthropic.claude-3-5-sonnet-" + "x" * 40 + "-20240620-v1:0", None),  # over it: start … end
        ("tab\there\nnew line", "tab here new line"),
        ("bell\x07 and \u202eevil", "bell\ufffd and \ufffdevil"),  # controls and bidi overrides visible
        ("half an emoji \ud83d", "half an emoji \ufffd"),  # a lone surrogate UTF-8 cannot encode
        (None, "—"),
        (float("nan"), "—"),
        (12345, "12345"),
    ],
)
def test_display_label(label: object, shown: str | None) -> None:
    result = display_label(label)
    if shown is not None:
        assert result == shown
    else:
        assert len(result) == LABEL_MAX and result.count(ELLIPSIS) == 1
        head, tail = result.split(ELLIPSIS)
        assert str(label).startswith(head) and str(label).endswith(tail) and len(head) > len(tail) > 10
    result.encode("utf-8")  # always writable to a page


def test_wide_characters_count_twice() -> None:
    chinese = "通义千问" * 30
    shown = display_label(chinese, 24)
    assert _width(shown) <= 24 and shown.startswith("通义千问") and ELLIPSIS in shown


class _EndsOnly(str):
    """A label that fails the test when code reads more of it than its ends (a loop or a slice past LABEL_MAX)."""

    def __iter__(self) -> Iterator[str]:
        raise AssertionError("the whole label was read")

    def __getitem__(self, key: slice) -> str:  # type: ignore[override]
        part = str.__getitem__(self, key)
        assert len(part) <= LABEL_MAX, f"read {len(part)} characters of the label"
        return part


def test_a_label_of_any_size_costs_what_a_short_one_does() -> None:
    """Only the ends of a long label are read, so its size does not matter (checked by what is read, not timed)."""
    huge = _EndsOnly("m" * 20_000_000)
    assert display_label(huge) == display_label("m" * 20_000_000) == display_label("m" * (LABEL_MAX + 1))


def _huge_labels(size: int) -> dict[str, pd.DataFrame]:
    """A full day whose first model name, first user id and first session and request ids are ``size`` long."""
    tables = full_day(models=4)
    model, user = "m" * size, "u" * size
    tables["model_costs"].loc[0, "model"] = model
    tables["request_metrics"].loc[1, "value"] = model
    tables["daily_users"].loc[0, "user_id"] = user
    tables["slowest_requests"].loc[0, ["model", "user_id", "request_id"]] = [model, user, "r" * size]
    tables["negative_sessions"].loc[0, ["model", "session_id"]] = [model, "s" * size]
    tables["feedback_by_model"].loc[0, "model"] = model
    return tables


def test_huge_labels_neither_slow_the_report_nor_break_its_mail(tmp_path: Path) -> None:
    history = pd.concat([report_daily(day=f"2026-11-{d:02d}") for d in range(1, 21)], ignore_index=True)
    pages = {size: render_with(tmp_path / str(size), _huge_labels(size), history=history) for size in (12, 5_000_000)}
    page = pages[5_000_000]
    # Each of the 8 huge labels is shown in at most LABEL_MAX characters (not timed: the page is the same size).
    assert len(page) - len(pages[12]) < 8 * LABEL_MAX * 4
    assert "m" * (LABEL_MAX + 1) not in page and "u" * (LABEL_MAX + 1) not in page
    assert f'<td class="text">{display_label("m" * 5_000_000)}</td>' in page
    settings = MailSettings(host="127.0.0.1", sender="reports@example.com", recipients=("ops@example.com",))
    message = build_message(REPORT_DAY, report_daily().iloc[0], tmp_path / "5000000" / "2026-11-20.html", settings)
    assert len(message.get_payload()[1].get_payload()[0].get_content().encode()) < MAX_HTML_BYTES


@pytest.mark.pipeline
@pytest.mark.parametrize("landing", ["requests-mathtext.jsonl", "requests-long-model.jsonl"])
def test_field_case_12_labels_are_shown_literally_and_short_and_kept_whole(
    landing: str, tmp_path: Path, smtp: tuple[Inbox, int]
) -> None:
    if not CASE.is_dir():
        pytest.skip(f"field case 12 not found at {CASE}")
    inbox, port = smtp
    (tmp_path / "landing").mkdir()
    shutil.copy(CASE / landing, tmp_path / "landing" / landing)
    case = yaml.safe_load((CASE / "cfg.yaml").read_text())
    config = tmp_path / "chatpulse.yaml"
    config.write_text(
        f"data_home: .\nlanding_dir: landing\nstart_date: {case['start_date']}\nmail:\n  host: 127.0.0.1\n"
        f"  port: {port}\n  security: none\n  sender: reports@example.com\n  recipients: [ops@example.com]\n"
    )
    day = "2026-11-20"
    models = [json.loads(line)["model"] for line in (CASE / landing).read_text().splitlines() if line.strip()]
    job = build_definitions(load_settings(config, env={}), str(config)).resolve_job_def(DAILY_JOB)
    assert job.execute_in_process(partition_key=day, instance=DagsterInstance.ephemeral()).success

    stored = Warehouse(f"sqlite:///{tmp_path / 'warehouse.db'}").read("requests", day)
    assert sorted(stored["model"]) == sorted(models)  # the warehouse keeps the full value
    page = (tmp_path / "reports" / f"{day}.html").read_text(encoding="utf-8")
    for model in models:
        assert f'<td class="text">{display_label(model)}</td>' in page  # literally, shortened to LABEL_MAX
        assert (model in page) == (len(model) <= LABEL_MAX)
    assert (tmp_path / "reports" / day / "tokens_and_cost.png").is_file()  # the chart with the label drawn
    (message,) = inbox.messages
    html = message.get_payload()[1].get_payload()[0].get_content()
    assert len(html.encode()) < MAX_HTML_BYTES and display_label(models[0]) in html


def test_a_glyph_no_font_has_is_a_box_without_a_warning() -> None:
    """An emoji in a model name printed matplotlib's raw UserWarning into `chatpulse run`'s output."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        chartkit.fonts.configure()
        figure, axes = chartkit.plt.subplots()
        axes.set_title("gpt-4o 🚀")
        figure.canvas.draw()
        chartkit.plt.close(figure)
