"""Notification settings, read from the same environment as ``engine.config``.

Kept apart from :class:`engine.config.Settings` so that mail delivery can be configured (and
tested) without touching the core settings. Without an SMTP host, and always in demo mode,
mail goes to a debug sink: ``.eml`` files in a directory under the instance folder.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from engine.config import ConfigError, Settings
from engine.workflow.deadlines import parse_duration

TLS_MODES = ("starttls", "ssl", "none")
_URL = re.compile(r"https?://[A-Za-z0-9.-]+(?::\d{1,5})?(?:/[A-Za-z0-9._~/-]*)?")
#: A plain address (no display name, no line breaks): what a header may safely carry.
ADDRESS = re.compile(r"[A-Za-z0-9._%+-]{1,64}@[A-Za-z0-9.-]{1,190}")


@dataclass(frozen=True)
class NotificationSettings:
    """Where mail goes, what links point at, and when reminders are due."""

    base_url: str
    sender: str
    sink_dir: Path | None
    smtp_host: str | None = None
    smtp_port: int = 587
    smtp_tls: str = "starttls"
    smtp_user: str | None = None
    smtp_password: str | None = None
    smtp_timeout: float = 30.0
    #: How long before a deadline the reminder goes out (ISO 8601 duration).
    lead: str = "P1D"
    #: Count the days of ``lead`` as working days (Mon-Fri, Swedish holidays excluded).
    lead_working_days: bool = True
    #: Tasks older than this get no "new task" mail (a first sweep never mails the backlog).
    assigned_within: str = "P3D"
    #: The procedure catalogue folder (``bpmn/``): ``statutory_deadlines.toml`` lives there.
    bpmn_dir: Path | None = None

    @property
    def uses_sink(self) -> bool:
        """True when mail is written to ``sink_dir`` instead of being sent."""
        return self.sink_dir is not None


def _secret(env: Mapping[str, str], name: str) -> str | None:
    if env.get(f"{name}_FILE"):
        return Path(env[f"{name}_FILE"]).read_text(encoding="utf-8").strip()
    value = env.get(name)
    return value.strip() if value else None


def _flag(value: str | None, default: bool) -> bool:
    if value is None or not value.strip():
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def load_notification_settings(
    settings: Settings, env: Mapping[str, str] | None = None
) -> NotificationSettings:
    """Build the settings from ``LOTSEN_*`` variables; refuse values that cannot work.

    ``LOTSEN_BASE_URL``, ``LOTSEN_SMTP_HOST``/``_PORT``/``_TLS``/``_USER``/``_PASSWORD``
    (or ``_PASSWORD_FILE``), ``LOTSEN_MAIL_FROM``, ``LOTSEN_MAIL_SINK_DIR``,
    ``LOTSEN_NOTIFY_LEAD``, ``LOTSEN_NOTIFY_LEAD_WORKING_DAYS``, ``LOTSEN_NOTIFY_NEW_WITHIN``.
    """
    env = os.environ if env is None else env
    if not settings.is_dev and not (env.get("LOTSEN_BASE_URL") or "").strip():
        raise ConfigError("LOTSEN_BASE_URL is required outside demo/development (mail links)")
    base_url = (env.get("LOTSEN_BASE_URL") or "http://127.0.0.1:5000").strip().rstrip("/")
    if not _URL.fullmatch(base_url):
        raise ConfigError("LOTSEN_BASE_URL must be an absolute http(s) URL without a query")
    sender = (env.get("LOTSEN_MAIL_FROM") or "lotsen@localhost.localdomain").strip()
    if not ADDRESS.fullmatch(sender):
        raise ConfigError("LOTSEN_MAIL_FROM must be a plain e-mail address")
    host = (env.get("LOTSEN_SMTP_HOST") or "").strip() or None
    tls = (env.get("LOTSEN_SMTP_TLS") or "starttls").strip().lower()
    if tls not in TLS_MODES:
        raise ConfigError(f"LOTSEN_SMTP_TLS must be one of {', '.join(TLS_MODES)}")
    default_port = {"starttls": 587, "ssl": 465, "none": 25}[tls]
    try:
        port = int(env.get("LOTSEN_SMTP_PORT") or default_port)
    except ValueError as exc:
        raise ConfigError("LOTSEN_SMTP_PORT must be a number") from exc
    lead = (env.get("LOTSEN_NOTIFY_LEAD") or "P1D").strip()
    within = (env.get("LOTSEN_NOTIFY_NEW_WITHIN") or "P3D").strip()
    for name, value in (("LOTSEN_NOTIFY_LEAD", lead), ("LOTSEN_NOTIFY_NEW_WITHIN", within)):
        try:
            parse_duration(value)
        except ValueError as exc:
            raise ConfigError(f"{name} must be an ISO 8601 duration such as P1D") from exc
    sink: Path | None = None
    if settings.demo or host is None:
        sink = Path(env.get("LOTSEN_MAIL_SINK_DIR") or settings.instance_dir / "mail")
    return NotificationSettings(
        base_url=base_url,
        sender=sender,
        sink_dir=sink,
        smtp_host=host,
        smtp_port=port,
        smtp_tls=tls,
        smtp_user=(env.get("LOTSEN_SMTP_USER") or "").strip() or None,
        smtp_password=_secret(env, "LOTSEN_SMTP_PASSWORD"),
        lead=lead,
        lead_working_days=_flag(env.get("LOTSEN_NOTIFY_LEAD_WORKING_DAYS"), True),
        assigned_within=within,
        bpmn_dir=settings.bpmn_dir,
    )
