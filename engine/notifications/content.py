"""What a notification says: the plain-text templates and the one way to fill them.

A message holds only the case number, the step's name from the process model (not personal
data), the due date and a link. Templates are filled with :class:`string.Template` in a single
pass, so a value is inserted literally and never evaluated: a step name like ``{{7*7}}`` or
``$link`` stays text (security.md §6 case 12). Headers are built by :mod:`email`, which
refuses line breaks, and every value is stripped of control characters first.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from enum import StrEnum
from functools import lru_cache
from pathlib import Path
from string import Template
from typing import Any
from zoneinfo import ZoneInfo

from engine.db import utcnow

TEMPLATES = Path(__file__).with_name("templates.toml")
LOCAL_TZ = ZoneInfo("Europe/Stockholm")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]+")
MAX_STEP_LENGTH = 200


class Kind(StrEnum):
    """Why a user gets a notification about a task."""

    ASSIGNED = "assigned"
    DUE_SOON = "due_soon"
    OVERDUE = "overdue"


#: Reminders about a deadline: for a statutory deadline they cannot be switched off.
DEADLINE_KINDS = frozenset({Kind.DUE_SOON, Kind.OVERDUE})


@dataclass(frozen=True)
class MailFacts:
    """Everything a message may say (nothing here is personal data)."""

    case_number: str
    step: str
    due_at: datetime | None
    link: str
    preferences_link: str


def one_line(value: str, limit: int = MAX_STEP_LENGTH) -> str:
    """``value`` without control characters or line breaks, whitespace collapsed, bounded."""
    text = " ".join(_CONTROL.sub(" ", value).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def format_due(due_at: datetime | None) -> str:
    """The due time on the Stockholm clock, or a dash when the task has none."""
    if due_at is None:
        return "–"
    return due_at.astimezone(LOCAL_TZ).strftime("%Y-%m-%d %H:%M") + " (Europe/Stockholm)"


@lru_cache(maxsize=1)
def _templates() -> dict[str, dict[str, str]]:
    with TEMPLATES.open("rb") as handle:
        data: dict[str, Any] = tomllib.load(handle)
    return {str(k): {str(f): str(v) for f, v in t.items()} for k, t in data.items()}


def _fill(template: str, values: dict[str, str]) -> str:
    # substitute (not safe_substitute): a placeholder the template names must exist, and
    # the values themselves are never scanned for placeholders.
    return Template(template).substitute(values)


def render(kind: Kind, facts: MailFacts, *, sender: str, recipient: str) -> EmailMessage:
    """The complete message of ``kind`` for ``recipient`` (plain text, UTF-8)."""
    templates = _templates()
    values = {
        "case_number": one_line(facts.case_number, 40),
        "step": one_line(facts.step),
        "due": format_due(facts.due_at),
        "link": one_line(facts.link, 500),
        "preferences": one_line(facts.preferences_link, 500),
    }
    message = EmailMessage()
    message["Subject"] = one_line(_fill(templates[kind.value]["subject"], values), 300)
    message["From"] = sender
    message["To"] = recipient
    message["Date"] = format_datetime(utcnow().astimezone(LOCAL_TZ))
    message["Message-ID"] = make_msgid(domain=sender.rpartition("@")[2] or None)
    message["Auto-Submitted"] = "auto-generated"
    body = _fill(templates[kind.value]["body"], values).strip() + "\n\n"
    body += _fill(templates["footer"]["body"], values).strip() + "\n"
    message.set_content(body, charset="utf-8")
    return message
