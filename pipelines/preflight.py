"""What `chatpulse run` and `check` look at before any step, and what a failed `run` does besides saying so."""

from __future__ import annotations

from datetime import date

from chatpulse.behaviour.scenario_model import ModelFileError
from chatpulse.behaviour.scenario_rules import ScenarioRuleError
from chatpulse.behaviour.scenarios import check_scenario_files, scenario_labels
from chatpulse.config import Settings
from chatpulse.pipelines.cli_errors import CliError


def check_rule_files(settings: Settings) -> None:
    """CliError naming the file and key when the configured scenario rules or model file, or the alert rules
    file, is wrong: a run fails before its first step rather than at the step that reads it, after the
    earlier ones wrote."""
    _check_scenarios(settings)
    _check_alert_rules(settings)


def _check_scenarios(settings: Settings) -> None:
    """The scenario rules and model file, as the sessions step reads them (check_scenario_files)."""
    try:
        check_scenario_files(settings.scenario_rules, settings.scenario_model)
    except (ScenarioRuleError, ModelFileError) as exc:
        raise CliError(str(exc)) from exc


def _check_alert_rules(settings: Settings) -> None:
    """The alert rules file, as the alerts step reads it: a mistake there left the day without its report and mail."""
    from chatpulse.alerting.rules import AlertRuleError, load_rules  # pandas and pydantic: only for run and check

    try:  # the scenario files were checked first (_check_scenarios)
        load_rules(settings.alert_rules, scenario_labels(settings.scenario_rules, settings.scenario_model))
    except AlertRuleError as exc:
        raise CliError(str(exc)) from exc


def mail_failure(settings: Settings, run_id: str, day: date, error: str) -> str:
    """Mail a failed run of `chatpulse run` to the `mail` recipients, as the run_failure_mail sensor mails the
    daemon's runs (that sensor sees only runs launched from its code location, never these, so a cron job's
    failure went unsaid). Returns what the error line adds: nothing, or why the mail was not sent."""
    if settings.mail is None:
        return ""
    from chatpulse.alerting.delivery import failure_mail
    from chatpulse.mail import MailError, send
    from chatpulse.pipelines.definitions import DAILY_JOB

    try:
        send(failure_mail(DAILY_JOB, run_id, day.isoformat(), error, settings.mail), settings.mail)
    except MailError as exc:
        return f" (and the failure mail was not sent: {exc})"
    return ""
