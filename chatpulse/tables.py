"""Every warehouse table, declared once: names, columns and types, and no engine code.

Computations take their column lists from here (`table_columns`), so a table and the frame
that fills it cannot drift apart.
"""

from __future__ import annotations

import sqlalchemy as sa

from chatpulse.schema import COLUMNS, SOURCE_FILE, SOURCE_LINE, UNMETERED_COLUMN, Kind

TYPES: dict[str, sa.types.TypeEngine] = {
    "string": sa.Text(),
    "datetime": sa.DateTime(timezone=True),
    "int": sa.BigInteger(),
    "float": sa.Float(),
    "json": sa.Text(),
}

metadata = sa.MetaData()


def _table(name: str, *columns: sa.Column, day_index: bool = True) -> sa.Table:
    table = sa.Table(name, metadata, sa.Column("day", sa.String(10), nullable=False), *columns)
    if day_index:
        sa.Index(f"ix_{name}_day", table.c.day)
    return table


def _canonical(kind: Kind) -> list[sa.Column]:
    columns = [sa.Column(name, TYPES[value_kind]) for name, value_kind in COLUMNS[kind].items()]
    return [*columns, sa.Column(SOURCE_FILE, sa.Text()), sa.Column(SOURCE_LINE, sa.BigInteger())]


def _floats(*names: str) -> list[sa.Column]:
    return [sa.Column(name, sa.Float()) for name in names]


def _counts(*names: str) -> list[sa.Column]:
    return [sa.Column(name, sa.BigInteger()) for name in names]


def _scenario_summary() -> list[sa.Column]:
    """The columns scenarios.scenario_summary adds after sessions and requests."""
    return [
        *_floats("share"),
        *_counts("users", "turns"),
        *_floats("duration_p50_s", "duration_p95_s", "latency_p50_ms", "latency_p95_ms"),
        *_counts("errors"),
        *_floats("error_rate"),
        *_counts("prompt_tokens", "completion_tokens", "total_tokens"),
        *_floats("cost_usd"),
        *_counts("rated_sessions"),
        *_floats("feedback_coverage"),
        *_counts("ratings"),
        *_floats("satisfaction"),
    ]


LATENCY = ("latency_mean_ms", "latency_p50_ms", "latency_p95_ms", "latency_p99_ms")
TOKENS = ("prompt_tokens", "completion_tokens", "total_tokens")
# Every token kind a request logs (canonical convention, chatpulse.tokens), as the cost tables sum them.
USAGE_TOKENS = (
    "prompt_tokens",
    "cached_tokens",
    "cache_write_tokens",
    "completion_tokens",
    "reasoning_tokens",
    "total_tokens",
)

TABLES: dict[str, sa.Table] = {
    "requests": _table("requests", *_canonical(Kind.REQUESTS), sa.Column(UNMETERED_COLUMN, sa.Boolean())),
    "messages": _table("messages", *_canonical(Kind.MESSAGES)),
    "feedback": _table("feedback", *_canonical(Kind.FEEDBACK)),
    "quarantine": _table(
        "quarantine",
        sa.Column("kind", sa.String(16)),
        sa.Column(SOURCE_FILE, sa.Text()),
        sa.Column(SOURCE_LINE, sa.BigInteger()),
        sa.Column("record_id", sa.Text()),
        sa.Column("reasons", sa.Text()),
        sa.Column("raw", sa.Text()),
    ),
    "data_quality": _table(
        "data_quality",
        sa.Column("kind", sa.String(16)),
        *_counts("rows_in", "clean", "quarantined", "duplicates", "repaired"),
        sa.Column("reasons", sa.Text()),
        sa.Column("repairs", sa.Text()),
        *_counts("flagged"),
        sa.Column("flags", sa.Text()),
    ),
    "hourly_metrics": _table(
        "hourly_metrics",
        sa.Column("hour", sa.Integer()),
        *_counts("requests", "errors"),
        *_floats("error_rate"),
        *_counts("peak_rpm"),
        *_floats(*LATENCY),
        *_counts(*TOKENS),
    ),
    "daily_metrics": _table(
        "daily_metrics",
        *_counts("requests", "errors"),
        *_floats("error_rate"),
        *_counts("peak_rpm"),
        sa.Column("peak_minute", sa.Text()),
        *_floats(*LATENCY, "ttft_p50_ms", "ttft_p95_ms"),
        *_counts(*TOKENS),
        *_floats("cost_usd"),
        *_counts("users", "models", "sessions"),
        *_floats("session_duration_p50_s", "session_duration_p95_s", "turns_mean"),
        *_counts("unmetered_requests"),
        *_floats("cost_estimate_usd"),
        *_counts("estimated_requests", "unpriced_requests", "logged_requests"),
        *_floats("spend_usd"),
    ),
    "sessions": _table(
        "sessions",
        sa.Column("session_id", sa.Text()),
        sa.Column("user_id", sa.Text()),
        sa.Column("start", sa.DateTime(timezone=True)),
        sa.Column("end", sa.DateTime(timezone=True)),
        *_floats("duration_s"),
        *_counts("turns", "messages", "requests"),
        sa.Column("delimited_by", sa.String(16)),
        sa.Column("scenario", sa.String(64)),
        # Behaviour (issue 4): why the label, the session's model, and its outcome.
        sa.Column("scenario_rule", sa.String(64)),
        *_floats("scenario_confidence"),
        sa.Column("language", sa.String(16)),  # issue 15: of the first user message, ISO 639
        sa.Column("model", sa.Text()),
        *_counts("errors"),
        *_floats("latency_mean_ms", "latency_max_ms"),
        *_counts("total_tokens"),
        *_floats("cost_usd"),
        *_counts("ratings"),
        *_floats("satisfaction"),
    ),
    "scenario_daily": _table(
        "scenario_daily",
        sa.Column("scenario", sa.String(64)),
        *_counts("sessions", "requests"),
        *_scenario_summary(),
    ),
    "scenario_language_daily": _table(
        "scenario_language_daily",
        sa.Column("language", sa.String(16)),
        sa.Column("scenario", sa.String(64)),
        *_counts("sessions"),
        *_floats("share"),
    ),
    "scenario_model_daily": _table(
        "scenario_model_daily",
        sa.Column("scenario", sa.String(64)),
        sa.Column("model", sa.Text()),
        *_counts("sessions", "requests"),
        *_scenario_summary(),
    ),
    "feedback_daily": _table(
        "feedback_daily",
        *_counts("ratings", "thumbs", "stars", "sessions", "rated_sessions"),
        *_floats("feedback_coverage", "satisfaction"),
        *_counts("negative_sessions"),
    ),
    "feedback_by_model": _table(
        "feedback_by_model",
        sa.Column("model", sa.Text()),
        *_counts("ratings", "rated_sessions"),
        *_floats("satisfaction"),
    ),
    "feedback_by_latency": _table(
        "feedback_by_latency",
        sa.Column("bucket", sa.String(16)),
        *_counts("bucket_order", "ratings"),
        *_floats("satisfaction"),
    ),
    "negative_sessions": _table(
        "negative_sessions",
        sa.Column("session_id", sa.Text()),
        sa.Column("user_id", sa.Text()),
        sa.Column("scenario", sa.String(64)),
        sa.Column("model", sa.Text()),
        *_counts("ratings", "negative_ratings"),
        *_floats("satisfaction", "latency_mean_ms", "latency_max_ms"),
        *_counts("requests", "errors"),
    ),
    "scenario_spotlight": _table(
        "scenario_spotlight",
        sa.Column("metric", sa.String(32)),
        *_counts("rank"),
        sa.Column("scenario", sa.String(64)),
        *_floats("value", "baseline", "change", "score"),
        *_counts("baseline_days"),
    ),
    # Metrics in depth (docs/metrics.md defines every column).
    "minute_metrics": _table(
        "minute_metrics",
        sa.Column("start", sa.DateTime(timezone=True)),
        sa.Column("hour", sa.Integer()),
        *_counts("requests", "errors"),
    ),
    "request_metrics": _table(
        "request_metrics",
        sa.Column("dimension", sa.String(16)),
        sa.Column("value", sa.Text()),
        *_counts("requests", "errors"),
        *_floats("error_rate"),
        *_counts("peak_rpm"),
        sa.Column("peak_minute", sa.Text()),
        *_counts("peak_rps"),
        sa.Column("peak_second", sa.Text()),
        *_counts("concurrency_peak"),
        sa.Column("concurrency_peak_at", sa.Text()),
        *_floats(
            "concurrency_p95",
            "latency_mean_ms",
            "latency_p50_ms",
            "latency_p90_ms",
            "latency_p95_ms",
            "latency_p99_ms",
            "latency_max_ms",
            "ttft_p50_ms",
            "ttft_p90_ms",
            "ttft_p95_ms",
            "ttft_p99_ms",
            "output_tps_p10",
            "output_tps_p50",
            "output_tps_mean",
        ),
        *_counts("slow_requests"),
        *_floats("slow_share"),
        *_counts("users"),
    ),
    "error_kinds": _table(
        "error_kinds",
        sa.Column("error_kind", sa.String(32)),
        *_counts("errors"),
        *_floats("share_of_errors", "share_of_requests"),
    ),
    "failed_requests": _table(
        "failed_requests",
        *[sa.Column(name, sa.Text()) for name in ("request_id", "user_id", "session_id", "model", "endpoint")],
        sa.Column("timestamp", sa.DateTime(timezone=True)),
        *_counts("status_code"),
        sa.Column("error_type", sa.Text()),
        sa.Column("error_kind", sa.String(32)),
        *_floats("latency_ms"),
    ),
    "slowest_requests": _table(
        "slowest_requests",
        sa.Column("rank", sa.Integer()),
        *[sa.Column(name, sa.Text()) for name in ("request_id", "user_id", "session_id", "model", "endpoint")],
        sa.Column("timestamp", sa.DateTime(timezone=True)),
        *_counts("status_code"),
        *_floats("latency_ms", "ttft_ms"),
    ),
    "model_costs": _table(
        "model_costs",
        sa.Column("model", sa.Text()),
        *_counts("requests", "prompt_tokens", "cached_tokens", "completion_tokens", "reasoning_tokens", "total_tokens"),
        *_floats("input_usd_per_mtok", "cached_input_usd_per_mtok", "output_usd_per_mtok"),
        sa.Column("price_from", sa.String(10)),
        *_counts("unpriced_requests"),
        *_floats("cost_estimate_usd", "cost_logged_usd"),
        *_counts("logged_requests"),
        *_floats("cost_difference_usd"),
        *_counts("cache_write_tokens"),
        *_floats("cache_write_input_usd_per_mtok"),
        *_counts("unmetered_requests", "estimated_requests"),
        sa.Column("price_source", sa.Text()),
        *_floats("spend_usd"),
    ),
    # The rates that priced each model's requests (chatpulse.metrics.costs.model_prices).
    "model_prices": _table(
        "model_prices",
        *[sa.Column(name, sa.Text()) for name in ("model", "provider", "service_tier", "priced_as", "price_provider")],
        *_floats(
            "input_usd_per_mtok", "cached_input_usd_per_mtok", "cache_write_input_usd_per_mtok", "output_usd_per_mtok"
        ),
        sa.Column("price_tiers", sa.Text()),
        sa.Column("price_from", sa.String(10)),
        sa.Column("price_source", sa.Text()),
        *_counts("requests"),
    ),
    "daily_users": _table(
        "daily_users",
        sa.Column("user_id", sa.Text()),
        sa.Column("rank", sa.Integer()),
        *_counts("requests", "errors", "total_tokens"),
        *_floats("cost_logged_usd", "cost_estimate_usd"),
        *_counts("unpriced_requests"),
    ),
    "user_metrics": _table(
        "user_metrics",
        *_counts("active_users", "wau", "mau", "new_users", "returning_users", "days_7", "days_28"),
        *_floats(
            "requests_per_user_mean",
            "requests_per_user_p50",
            "tokens_per_user_mean",
            "cost_estimate_per_user_mean",
            "top_user_share",
        ),
    ),
    "session_metrics": _table(
        "session_metrics",
        *_counts("sessions"),
        *_floats(
            "duration_mean_s",
            "duration_p50_s",
            "duration_p90_s",
            "duration_max_s",
            "turns_mean",
            "turns_p50",
            "turns_p90",
        ),
        *_counts("turns_max"),
        *_floats("messages_mean", "requests_mean"),
        *_counts("turn_gaps"),
        *_floats("turn_gap_mean_s", "turn_gap_p50_s", "turn_gap_p90_s"),
        *_counts("single_turn_sessions"),
        *_floats("single_turn_share"),
        *_counts("unanswered_sessions"),
        *_floats("unanswered_share"),
    ),
    "daily_trends": _table(
        "daily_trends",
        sa.Column("metric", sa.String(32)),
        *_floats(
            "value",
            "previous_day",
            "day_over_day",
            "day_over_day_pct",
            "week_ago",
            "week_over_week",
            "week_over_week_pct",
            "mean_7d",
            "mean_28d",
        ),
        *_counts("days_7", "days_28"),
    ),
    # Who spends, budgets and the provider's bill (issue 13; docs/metrics.md, "Attribution, budgets and the bill").
    "dimension_daily": _table(
        "dimension_daily",
        sa.Column("dimension", sa.String(32)),
        sa.Column("value", sa.Text()),
        sa.Column("bucket", sa.String(8)),
        *_counts("rank", "folded_values", "requests", "errors"),
        *_floats("error_rate"),
        *_counts(*USAGE_TOKENS),
        *_floats("cost_estimate_usd", "cost_logged_usd"),
        *_counts("logged_requests", "unpriced_requests"),
        *_floats("spend_usd"),
        *_counts("unknown_cost_requests"),
        *_floats("latency_p95_ms"),
        *_counts("users"),
    ),
    "budget_status": _table(
        "budget_status",
        sa.Column("budget", sa.String(64)),
        sa.Column("dimension", sa.String(32)),
        sa.Column("value", sa.Text()),
        sa.Column("period", sa.String(8)),
        *_floats("budget_usd", "spend_usd", "used_share", "trailing_mean_usd", "forecast_usd", "forecast_share"),
        *_counts("days_run", "days_in_period", "days_left"),
    ),
    "provider_costs": _table(
        "provider_costs",
        sa.Column("provider", sa.String(32)),
        sa.Column("project", sa.Text()),
        sa.Column("line_item", sa.Text()),
        sa.Column("model", sa.Text()),
        *_floats("amount"),
        sa.Column("currency", sa.String(8)),
        *_floats("amount_usd"),
        sa.Column(SOURCE_FILE, sa.Text()),
        sa.Column(SOURCE_LINE, sa.BigInteger()),
    ),
    "cost_reconciliation": _table(
        "cost_reconciliation",
        sa.Column("provider", sa.String(32)),
        sa.Column("scope", sa.String(32)),
        sa.Column("value", sa.Text()),
        *_floats("billed_usd", "logged_usd", "estimated_usd"),
        *_floats("logged_gap_usd", "logged_gap_share", "estimated_gap_usd", "estimated_gap_share"),
        *_counts("requests", "logged_requests", "unpriced_requests", "bill_lines", "non_usd_lines"),
        sa.Column("non_usd_currencies", sa.Text()),
    ),
    "report_sends": _table(
        "report_sends",
        sa.Column("message_id", sa.Text()),
        sa.Column("sent_at", sa.DateTime(timezone=True)),
        sa.Column("recipients", sa.Text()),
        sa.Column("subject", sa.Text()),
    ),
    # Alerts (issue 6): one row per rule and breach, updated over runs (chatpulse/alerting/evaluate.py).
    "alerts": _table(
        "alerts",
        sa.Column("rule", sa.String(64)),
        sa.Column("metric", sa.String(32)),
        sa.Column("severity", sa.String(8)),
        sa.Column("window_start", sa.DateTime(timezone=True)),
        sa.Column("window_end", sa.DateTime(timezone=True)),
        *_floats("value", "threshold", "baseline"),
        *_counts("requests"),
        sa.Column("first_seen", sa.DateTime(timezone=True)),
        sa.Column("last_seen", sa.DateTime(timezone=True)),
        sa.Column("resolved_at", sa.DateTime(timezone=True)),
    ),
    # Per-window values of the request-based series baseline rules compare with (chatpulse/alerting/evaluate.py),
    # so a run reads a week of windows rather than a week of requests.
    "alert_windows": _table(
        "alert_windows",
        sa.Column("series", sa.Text()),
        sa.Column("window_start", sa.DateTime(timezone=True)),
        *_floats("value"),
        *_counts("requests"),
    ),
    # Which run last finished each step of a day, written with the step's own tables (chatpulse/daystate.py).
    "day_steps": _table(
        "day_steps",
        sa.Column("step", sa.String(64)),
        sa.Column("run_id", sa.String(64)),
        sa.Column("finished_at", sa.DateTime(timezone=True)),
        sa.Column("output", sa.Text()),
    ),
    # Alert notifications not delivered yet, retried on the next run (chatpulse/alerting/delivery.py).
    "alert_deliveries": _table(
        "alert_deliveries",
        sa.Column("delivery_id", sa.String(32)),
        sa.Column("channel", sa.String(16)),
        sa.Column("target", sa.Text()),
        sa.Column("payload", sa.Text()),
        *_counts("attempts"),
        sa.Column("last_error", sa.Text()),
        sa.Column("failed_at", sa.DateTime(timezone=True)),
    ),
}

LANDING_FILES = sa.Table(
    "landing_files",
    metadata,
    sa.Column("kind", sa.String(16), primary_key=True),
    sa.Column("path", sa.Text(), primary_key=True),
    sa.Column("size", sa.BigInteger()),
    sa.Column("mtime_ns", sa.BigInteger()),
    sa.Column("days", sa.Text()),
)


def table_columns(name: str) -> tuple[str, ...]:
    """A table's column names in order: the one list a computation that fills it should emit."""
    return tuple(column.name for column in TABLES[name].columns)
