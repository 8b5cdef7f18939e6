"""Delivering a rendered message: SMTP (smtplib), or the debug sink (``.eml`` files).

The sink stands in for a mail server in demo mode and in tests: each message is one file,
written under a temporary name and renamed, so a reader never sees half a message.
"""

from __future__ import annotations

import smtplib
import ssl
from email.message import EmailMessage
from pathlib import Path
from typing import Protocol

from engine.notifications.settings import NotificationSettings


class Mailer(Protocol):
    """Sends one message or raises (the outbox retries later)."""

    name: str

    def send(self, message: EmailMessage, *, reference: str) -> None: ...


class FileSink:
    """Writes each message to ``<directory>/<reference>.eml``."""

    name = "file"

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def send(self, message: EmailMessage, *, reference: str) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        target = self.directory / f"{reference}.eml"
        partial = target.with_suffix(".eml.partial")
        partial.write_bytes(message.as_bytes())
        partial.replace(target)


class SmtpMailer:
    """Sends through an SMTP server, with STARTTLS or implicit TLS unless told ``none``."""

    name = "smtp"

    def __init__(self, settings: NotificationSettings) -> None:
        assert settings.smtp_host is not None
        self.settings = settings

    def send(self, message: EmailMessage, *, reference: str) -> None:
        s = self.settings
        assert s.smtp_host is not None
        context = ssl.create_default_context()
        client: smtplib.SMTP
        if s.smtp_tls == "ssl":
            client = smtplib.SMTP_SSL(
                s.smtp_host, s.smtp_port, timeout=s.smtp_timeout, context=context
            )
        else:
            client = smtplib.SMTP(s.smtp_host, s.smtp_port, timeout=s.smtp_timeout)
        with client:
            if s.smtp_tls == "starttls":
                client.starttls(context=context)
            if s.smtp_user and s.smtp_password:
                client.login(s.smtp_user, s.smtp_password)
            refused = client.send_message(message)
            if refused:
                raise smtplib.SMTPRecipientsRefused(refused)


def mailer_for(settings: NotificationSettings) -> Mailer:
    """The debug sink when one is configured, otherwise SMTP."""
    if settings.sink_dir is not None:
        return FileSink(settings.sink_dir)
    return SmtpMailer(settings)
