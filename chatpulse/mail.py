"""Send a built e-mail over SMTP: the one mailer behind the daily report, alert mails and run-failure mails.

It only delivers an `EmailMessage` already built by its caller, with the server, security and login of
`MailSettings`; what goes into a message is the caller's business.
"""

from __future__ import annotations

import ipaddress
import smtplib
import ssl
from email.message import EmailMessage
from email.utils import formatdate, make_msgid, parseaddr

from chatpulse.config import MailSettings


class MailError(RuntimeError):
    """The message could not be mailed; the message says which server refused it and why. `permanent`: trying
    again cannot help (the login, sender or recipients refused, the settings unusable), unlike an unreachable
    server or a busy one (a 4xx reply)."""

    def __init__(self, message: str, *, permanent: bool = False) -> None:
        super().__init__(message)
        self.permanent = permanent


def _permanent(exc: Exception) -> bool:
    """Whether a send failed for good: a 5xx reply (RFC 5321 4.2.1: a permanent negative completion), recipients
    refused, a server without what was asked of it, or a certificate that does not verify."""
    if isinstance(exc, smtplib.SMTPResponseException):
        return 500 <= exc.smtp_code < 600
    return isinstance(exc, smtplib.SMTPRecipientsRefused | smtplib.SMTPNotSupportedError | ssl.SSLCertVerificationError)


def _this_machine(host: str) -> bool:
    """Whether `host` is this machine (localhost or a loopback address), where no network sees a login."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def message_id(settings: MailSettings, name: str) -> str:
    """A new, unique Message-ID naming what the message is (`name`), in the sender's domain."""
    domain = parseaddr(settings.sender)[1].rpartition("@")[2] or "chatpulse"
    return make_msgid(idstring=name, domain=domain)


def send(message: EmailMessage, settings: MailSettings) -> None:
    """Deliver ``message`` to its To/Cc over SMTP with SSL, STARTTLS or plain, logging in when a user is set.

    A message without a ``Date`` or ``Message-ID`` header gets one here (the send time; a new id), so every
    message leaves with both: spam filters and mail clients need them. TLS checks the server's certificate
    against the system's CAs, or ``settings.ca_file`` when given. Raises MailError naming ``host:port``
    when the server cannot be reached, refuses TLS or the login, or rejects the message, when a username
    is set and its password's variable is not, or when that login would go unencrypted to another machine
    (security none); the error never quotes the password.
    """
    if settings.username and settings.password is None:  # else a login with no password, refused as a wrong one
        raise MailError(
            f"cannot send mail through {settings.host}:{settings.port}: mail.username is set but "
            f"{settings.password_env}, the variable of its password (mail.password_env), is not",
            permanent=True,
        )
    if settings.username and settings.security == "none" and not _this_machine(settings.host):
        raise MailError(
            f"cannot send mail through {settings.host}:{settings.port}: with mail.security none the login would "
            "send the password unencrypted over the network; use starttls or ssl (none is for a relay on this machine)",
            permanent=True,
        )
    if message["Date"] is None:
        message["Date"] = formatdate(localtime=True)
    if message["Message-ID"] is None:
        message["Message-ID"] = message_id(settings, "chatpulse")
    context = ssl.create_default_context(cafile=settings.ca_file)
    try:
        if settings.security == "ssl":
            client: smtplib.SMTP = smtplib.SMTP_SSL(
                settings.host, settings.port, timeout=settings.timeout_s, context=context
            )
        else:
            client = smtplib.SMTP(settings.host, settings.port, timeout=settings.timeout_s)
        with client:
            if settings.security == "starttls":
                client.starttls(context=context)
            if settings.username:
                client.login(settings.username, settings.password or "")
            client.send_message(message)
    except (OSError, smtplib.SMTPException) as exc:
        said = str(exc).replace(settings.password, "***") if settings.password else str(exc)
        # from None: a chained error would print the server's exchange (and anything in it) again.
        raise MailError(
            f"cannot send mail through {settings.host}:{settings.port}: {said}", permanent=_permanent(exc)
        ) from None
