"""E-mail notifications about tasks: new, deadline near, deadline passed (issue 6).

No personal data in any message: the case number, the step's name from the process model,
the due date and a link. See :mod:`engine.notifications.outbox` for how each notification is
sent exactly once by any number of workers, and :mod:`engine.notifications.statutory` for the
deadlines that users cannot opt out of.
"""

from __future__ import annotations

from engine.notifications.content import DEADLINE_KINDS, Kind, MailFacts, render
from engine.notifications.mailer import FileSink, Mailer, SmtpMailer, mailer_for
from engine.notifications.outbox import SweepStats, queue_due, recipients, send_due, sweep
from engine.notifications.preferences import opt_outs, set_opt_outs
from engine.notifications.settings import NotificationSettings, load_notification_settings
from engine.notifications.statutory import is_statutory

__all__ = [
    "DEADLINE_KINDS",
    "FileSink",
    "Kind",
    "MailFacts",
    "Mailer",
    "NotificationSettings",
    "SmtpMailer",
    "SweepStats",
    "is_statutory",
    "load_notification_settings",
    "mailer_for",
    "opt_outs",
    "queue_due",
    "recipients",
    "render",
    "send_due",
    "set_opt_outs",
    "sweep",
]
