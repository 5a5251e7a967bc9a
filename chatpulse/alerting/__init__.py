"""Alerting: alert rules, their evaluation over the metric tables, delivery, and the Prometheus output."""
