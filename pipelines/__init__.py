"""Dagster definitions, jobs, schedules, resources and the `chatpulse` CLI."""
