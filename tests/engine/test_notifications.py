"""E-mail notifications (engine/notifications): what a message may say (no personal data, and
template text stays text), who gets it, opt-outs versus statutory deadlines, exactly once with
two concurrent sweeps, and retries against a real local SMTP server (aiosmtpd).
SQLite, and PostgreSQL when configured."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session, sessionmaker

from engine import actions, audit
from engine.audit import SYSTEM
from engine.config import ConfigError
from engine.db import clock, unit_of_work
from engine.models import AuditEntry, Case, OpenTask, RoleAssignment, User
from engine.models.notifications import NotificationOutbox
from engine.notifications import (
    Kind,
    MailFacts,
    NotificationSettings,
    load_notification_settings,
    queue_due,
    render,
    send_due,
    set_opt_outs,
    sweep,
)
from engine.processes import ProcedureFiles, latest_published, model_for, publish
from forms.fields import luhn_ok
from forms.spec import load_form_spec
from tests.conftest import actor, unit_id

T0 = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)  # Monday 09:00 in Stockholm
BASE_URL = "https://lotsen.example.org"
CHILD_SCENARIO = (
    Path(__file__).resolve().parents[2]
    / "bpmn"
    / "child_safeguarding"
    / "scenarios"
    / "02_voluntary_placement_violence_interventions.json"
)

# Personal data that must never reach a message.
CHILD_NAME = "Zelmira Unikfjärilsdotter"
REPORTER = "Rapportör Hemligsson"
REPORTER_PHONE = "070-987 65 43"
WHEREABOUTS = "Hemligvägen 17, 141 52 Huddinge"


def _personnummer() -> str:
    """A valid (Luhn) personnummer of a child born 2015-03-12."""
    ymd = "150312"
    serial = next(
        f"{n:03d}{c}" for n in range(100, 999) for c in range(10) if luhn_ok(ymd + f"{n:03d}{c}")
    )
    return f"20{ymd}-{serial}"


PERSONNUMMER = _personnummer()
SECRETS = (
    CHILD_NAME,
    "Zelmira",
    "Unikfjärilsdotter",
    REPORTER,
    "Hemligsson",
    REPORTER_PHONE,
    WHEREABOUTS,
    "Hemligvägen",
    PERSONNUMMER,
    PERSONNUMMER.replace("-", ""),
    PERSONNUMMER[2:],
)

# --------------------------------------------------------------------------- a mini procedure

NS = (
    'xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL" '
    'xmlns:spiffworkflow="http://spiffworkflow.org/bpmn/schema/1.0/core"'
)


def _mini_bpmn(process_id: str, task_name: str, **props: str) -> str:
    items = "".join(
        f'<spiffworkflow:property name="{k}" value="{v}" />'
        for k, v in {"formKey": "mini_review", "deadline": "P2D", **props}.items()
    )
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions {NS} id="d_{process_id}" targetNamespace="http://lotsen.test">
  <bpmn:process id="{process_id}" name="Mini" isExecutable="true">
    <bpmn:laneSet id="ls"><bpmn:lane id="l_cw" name="caseworker">
      <bpmn:flowNodeRef>start</bpmn:flowNodeRef><bpmn:flowNodeRef>task_check_mini</bpmn:flowNodeRef>
      <bpmn:flowNodeRef>end</bpmn:flowNodeRef></bpmn:lane></bpmn:laneSet>
    <bpmn:startEvent id="start"><bpmn:extensionElements><spiffworkflow:properties>
      <spiffworkflow:property name="formKey" value="mini_intake" />
      </spiffworkflow:properties></bpmn:extensionElements>
      <bpmn:outgoing>f1</bpmn:outgoing></bpmn:startEvent>
    <bpmn:userTask id="task_check_mini" name="{task_name}"><bpmn:extensionElements>
      <spiffworkflow:properties>{items}</spiffworkflow:properties></bpmn:extensionElements>
      <bpmn:incoming>f1</bpmn:incoming><bpmn:outgoing>f2</bpmn:outgoing></bpmn:userTask>
    <bpmn:endEvent id="end"><bpmn:incoming>f2</bpmn:incoming></bpmn:endEvent>
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="task_check_mini" />
    <bpmn:sequenceFlow id="f2" sourceRef="task_check_mini" targetRef="end" />
  </bpmn:process>
</bpmn:definitions>
"""


def _text(key: str) -> dict[str, Any]:
    return {"type": "textfield", "key": key, "label": {"sv": key, "en": key}}


MINI_FORMS = {
    "mini_intake": {"id": "mini_intake", "components": [_text("note")]},
    "mini_review": {"id": "mini_review", "components": [_text("finding")]},
}
INJECTION = "B1 {{7*7}} ${case_number} $link {% print(1) %}"


# --------------------------------------------------------------------------- fixtures


@pytest.fixture
def frozen() -> Iterator[None]:
    clock.frozen = T0
    yield
    clock.frozen = None


@pytest.fixture
def sessions(app: Flask, frozen: None) -> sessionmaker[Session]:
    factory: sessionmaker[Session] = app.extensions["lotsen_db"]
    with unit_of_work(factory) as s:
        publish(
            s,
            SYSTEM,
            ProcedureFiles(
                "mini_local", _mini_bpmn("mini_local", "M1 Kontroll").encode(), MINI_FORMS
            ),
        )
        publish(
            s,
            SYSTEM,
            ProcedureFiles(
                "mini_statutory",
                _mini_bpmn("mini_statutory", "M1 Lagstadgad", deadlineStatutory="true").encode(),
                MINI_FORMS,
            ),
        )
        publish(
            s,
            SYSTEM,
            ProcedureFiles(
                "mini_injection", _mini_bpmn("mini_injection", INJECTION).encode(), MINI_FORMS
            ),
        )
    return factory


@pytest.fixture
def settings(app: Flask, tmp_path: Path) -> NotificationSettings:
    """Demo mode: the debug sink in the instance folder; links to BASE_URL."""
    result = load_notification_settings(app.extensions["lotsen"], {"LOTSEN_BASE_URL": BASE_URL})
    assert result.sink_dir == tmp_path / "mail"
    return result


def _mini_case(
    factory: sessionmaker[Session], procedure: str = "mini_local", username: str = "handlaggare"
) -> int:
    with unit_of_work(factory) as s:
        case = actions.start_case(
            s,
            actor(s, username),
            procedure=procedure,
            unit_id=unit_id(s, "vuxenenheten"),
            intake={"note": "x"},
        )
        return case.id


def _child_case(factory: sessionmaker[Session]) -> int:
    """A child report (bpmn/child_safeguarding) full of personal data we can look for."""
    intake = json.loads(CHILD_SCENARIO.read_text(encoding="utf-8"))["intake"]
    intake.update(
        child_name=CHILD_NAME,
        child_personnummer=PERSONNUMMER,
        child_whereabouts=f"Bor på {WHEREABOUTS}.",
        reporter_name=REPORTER,
        reporter_contact=REPORTER_PHONE,
        concern_description=f"{CHILD_NAME} ({PERSONNUMMER}) tigger, bor på {WHEREABOUTS}.",
        journal_note=f"Ringde {REPORTER} på {REPORTER_PHONE}.",
    )
    with unit_of_work(factory) as s:
        version = latest_published(s, "child_safeguarding")
        spec = load_form_spec(version.forms[model_for(version).start_form_key or ""])
        case = actions.start_case(
            s,
            actor(s, "handlaggare.barn"),
            procedure="child_safeguarding",
            unit_id=unit_id(s, "barn_och_unga"),
            intake={**spec.empty_data(), **intake},
            subject_fields=spec.subject_fields,
        )
        return case.id


def _mails(settings: NotificationSettings) -> list[EmailMessage]:
    assert settings.sink_dir is not None
    if not settings.sink_dir.exists():
        return []
    return [
        message_from_bytes(p.read_bytes(), policy=policy.default)
        for p in sorted(settings.sink_dir.glob("*.eml"))
    ]


def _text_of(message: EmailMessage) -> str:
    """Every header (decoded) and the decoded body, as one string."""
    headers = "\n".join(f"{k}: {v}" for k, v in message.items())
    return headers + "\n" + str(message.get_content())


def _email(s: Session, username: str) -> str:
    email = s.execute(select(User.email).where(User.username == username)).scalar_one()
    return str(email)


def _uid(s: Session, username: str) -> int:
    return int(s.execute(select(User.id).where(User.username == username)).scalar_one())


def _outbox(s: Session) -> list[tuple[str, str, int, str]]:
    return [
        (r.task_id, r.kind, r.user_id, r.status)
        for r in s.execute(select(NotificationOutbox).order_by(NotificationOutbox.id)).scalars()
    ]


def _task(s: Session, case_id: int) -> OpenTask:
    return s.execute(
        select(OpenTask).where(OpenTask.case_id == case_id, OpenTask.status == "open")
    ).scalar_one()


def _audit(s: Session, action: str) -> list[AuditEntry]:
    return list(
        s.execute(
            select(AuditEntry).where(AuditEntry.action == action).order_by(AuditEntry.seq)
        ).scalars()
    )


# --------------------------------------------------------------------------- content


def test_mail_about_a_child_report_holds_no_personal_data(
    sessions: sessionmaker[Session], settings: NotificationSettings
) -> None:
    case_id = _child_case(sessions)
    stats = sweep(sessions, settings, "w1")
    assert stats.failed == 0 and stats.sent >= 1
    mails = _mails(settings)
    assert len(mails) == stats.sent
    with sessions() as s:
        case = s.get(Case, case_id)
        assert case is not None and case.subjects, "the subject's data is stored"
        task = _task(s, case_id)
        own = _email(s, "handlaggare.barn")
    for mail in mails:
        text = _text_of(mail)
        raw = mail.as_bytes().decode("ascii", "replace")
        for secret in SECRETS:
            assert secret not in text, f"{secret!r} leaked into a mail"
            assert secret not in raw
        assert case.number in str(mail["Subject"]) and case.number in text
        assert f"{BASE_URL}/tasks/{task.id}" in text
        assert task.name in text  # the step's name from the BPMN model
        assert str(mail["Auto-Submitted"]) == "auto-generated"
    to = {str(m["To"]) for m in mails}
    assert own in to, "the unit's caseworker hears about the new report"
    assert all(addr.endswith("@example.org") for addr in to)
    with sessions() as s:
        sent = _audit(s, "notification:sent")
        assert len(sent) == stats.sent
        for entry in sent:
            assert entry.case_id == case_id and entry.object_type == "user"
            assert entry.details["kind"] in {k.value for k in Kind}
            dumped = json.dumps(entry.details, ensure_ascii=False)
            assert "@" not in dumped and "Hej" not in dumped and case.number not in dumped
        assert audit.verify_chain(s) is None


def test_template_syntax_in_a_step_name_stays_text(
    sessions: sessionmaker[Session], settings: NotificationSettings
) -> None:
    case_id = _mini_case(sessions, "mini_injection")
    sweep(sessions, settings, "w1")
    mails = _mails(settings)
    assert mails
    with sessions() as s:
        number = s.get(Case, case_id).number  # type: ignore[union-attr]
    for mail in mails:
        lines = mail.get_content().splitlines()
        # inserted literally, and its placeholders were not filled in a second pass
        assert f"Steg: {INJECTION}" in lines and f"Step: {INJECTION}" in lines
        assert not any("49" in line for line in lines if line.startswith("Ste"))
        assert sum(number in line for line in lines) == 2  # "Ärende:" and "Case:" only


def test_header_injection_through_a_value_is_impossible() -> None:
    facts = MailFacts(
        case_number="ID-2026-1\r\nBcc: evil@example.com",
        step="Steg\nBcc: evil@example.com\n\nFake body",
        due_at=T0,
        link=f"{BASE_URL}/tasks/x",
        preferences_link=f"{BASE_URL}/account/notifications",
    )
    message = render(Kind.OVERDUE, facts, sender="lotsen@example.org", recipient="a@example.org")
    parsed = message_from_bytes(message.as_bytes(), policy=policy.default)
    assert parsed["Bcc"] is None
    assert len(parsed.get_all("To") or []) == 1
    assert "Steg Bcc: evil@example.com Fake body" in parsed.get_content()
    assert "2026-03-02 09:00" in parsed.get_content()


# --------------------------------------------------------------------------- when and to whom


def test_new_task_then_deadline_near_then_passed_each_exactly_once(
    sessions: sessionmaker[Session], settings: NotificationSettings
) -> None:
    case_id = _mini_case(sessions)
    assert sweep(sessions, settings, "w1").sent == 1  # assigned (due in 2 days: not yet near)
    assert sweep(sessions, settings, "w1").sent == 0
    with sessions() as s:
        task = _task(s, case_id)
        me = _uid(s, "handlaggare")
        assert task.due_at == T0 + timedelta(days=2)
    clock.frozen = T0 + timedelta(days=1, hours=1)  # Tuesday: due within one working day
    stats = sweep(sessions, settings, "w1")
    assert (stats.queued, stats.sent) == (1, 1)
    clock.frozen = T0 + timedelta(days=2, minutes=1)
    assert sweep(sessions, settings, "w1").sent == 1
    assert sweep(sessions, settings, "w1").sent == 0
    with sessions() as s:
        assert _outbox(s) == [
            (task.id, "assigned", me, "sent"),
            (task.id, "due_soon", me, "sent"),
            (task.id, "overdue", me, "sent"),
        ]
    subjects = [str(m["Subject"]) for m in _mails(settings)]
    assert "ny uppgift" in subjects[0] and "närmar sig" in subjects[1] and "passerad" in subjects[2]


def test_a_closed_task_gets_nothing_more(
    sessions: sessionmaker[Session], settings: NotificationSettings
) -> None:
    case_id = _mini_case(sessions)
    with unit_of_work(sessions) as s:
        actions.complete_task(
            s, actor(s, "handlaggare"), task_id=_task(s, case_id).id, data={"finding": "ok"}
        )
    clock.frozen = T0 + timedelta(days=3)
    stats = sweep(sessions, settings, "w1")
    assert (stats.queued, stats.sent) == (0, 0)


def test_a_task_closed_before_its_mail_went_out_is_skipped_and_audited(
    sessions: sessionmaker[Session], settings: NotificationSettings
) -> None:
    case_id = _mini_case(sessions)
    with unit_of_work(sessions) as s:
        assert queue_due(s, settings, T0) == 1
        actions.complete_task(
            s, actor(s, "handlaggare"), task_id=_task(s, case_id).id, data={"finding": "ok"}
        )
    stats = send_due(sessions, settings, "w1", T0)
    assert (stats.sent, stats.skipped) == (0, 1)
    assert _mails(settings) == []
    with sessions() as s:
        (row,) = _outbox(s)
        assert row[1:] == ("assigned", _uid(s, "handlaggare"), "skipped")
        (entry,) = _audit(s, "notification:skipped")
        assert entry.details["reason"] == "task_closed" and entry.case_id == case_id


def test_a_malformed_address_is_skipped_not_retried_forever(
    sessions: sessionmaker[Session], settings: NotificationSettings
) -> None:
    with unit_of_work(sessions) as s:
        user = s.execute(select(User).where(User.username == "handlaggare")).scalar_one()
        user.email = "handlaggare@example.org\r\nBcc: evil@example.com"
    _mini_case(sessions)
    stats = sweep(sessions, settings, "w1")
    assert (stats.sent, stats.skipped, stats.failed) == (0, 1, 0)
    assert _mails(settings) == []
    with sessions() as s:
        (entry,) = _audit(s, "notification:skipped")
        assert entry.details["reason"] == "bad_address"


def test_an_old_backlog_is_not_mailed_as_new(
    sessions: sessionmaker[Session], settings: NotificationSettings
) -> None:
    quiet = replace(settings, lead="PT1H", lead_working_days=False)
    _mini_case(sessions)
    clock.frozen = T0 + timedelta(days=1)  # within P3D: still new
    assert sweep(sessions, quiet, "w1").sent == 1
    _mini_case(sessions)  # created at T0+1d
    clock.frozen = T0 + timedelta(days=1, hours=20) + timedelta(days=3)  # older than P3D, overdue
    stats = sweep(sessions, quiet, "w1")
    assert stats.sent == 2  # the two overdue reminders, no "new task" for the second
    with sessions() as s:
        kinds = sorted(k for _, k, _, _ in _outbox(s))
    assert kinds == ["assigned", "overdue", "overdue"]


def test_unassigned_goes_to_the_role_and_a_protected_case_only_to_its_team(
    sessions: sessionmaker[Session], settings: NotificationSettings
) -> None:
    with unit_of_work(sessions) as s:
        colleague = User(
            username="kollega", display_name="K", email="kollega@example.org", active=True
        )
        colleague.roles = [RoleAssignment(role="caseworker", unit_id=unit_id(s, "vuxenenheten"))]
        nomail = User(username="utan.adress", display_name="U", email=None, active=True)
        nomail.roles = [RoleAssignment(role="caseworker", unit_id=unit_id(s, "vuxenenheten"))]
        s.add_all([colleague, nomail])
    open_case = _mini_case(sessions)
    sweep(sessions, settings, "w1")
    assert sorted(str(m["To"]) for m in _mails(settings)) == [
        "handlaggare@example.org",
        "kollega@example.org",
    ]
    # A protected identity: the same kind of task goes to the named team only.
    with unit_of_work(sessions) as s:
        case = s.get(Case, open_case)
        assert case is not None
        case.secrecy_class = "PROTECTED_IDENTITY"
        task = _task(s, open_case)
        task.assignee_id = None
        s.execute(delete(NotificationOutbox))
    for path in (settings.sink_dir or Path("/nonexistent")).glob("*.eml"):
        path.unlink()
    sweep(sessions, settings, "w1")
    assert [str(m["To"]) for m in _mails(settings)] == ["handlaggare@example.org"]


def test_opt_outs_are_respected_except_for_statutory_deadlines(
    sessions: sessionmaker[Session], settings: NotificationSettings
) -> None:
    with unit_of_work(sessions) as s:
        set_opt_outs(s, actor(s, "handlaggare"), [Kind.ASSIGNED, Kind.DUE_SOON, Kind.OVERDUE])
        set_opt_outs(s, actor(s, "handlaggare.barn"), [Kind.ASSIGNED, Kind.OVERDUE, Kind.DUE_SOON])
    local = _mini_case(sessions, "mini_local")
    marked = _mini_case(sessions, "mini_statutory")  # deadlineStatutory="true" in the model
    child = _child_case(sessions)  # listed in bpmn/statutory_deadlines.toml
    clock.frozen = T0 + timedelta(days=3)  # every deadline has passed
    sweep(sessions, settings, "w1")
    with sessions() as s:
        rows = {(r[0], r[1], r[2]) for r in _outbox(s)}
        me, barn = _uid(s, "handlaggare"), _uid(s, "handlaggare.barn")
        local_task, marked_task = _task(s, local).id, _task(s, marked).id
        child_task = _task(s, child)
        assert child_task.bpmn_id == "task_assess_immediate_protection"
    assert not any(task == local_task for task, _, _ in rows), "local deadline: opted out"
    assert (marked_task, "overdue", me) in rows
    assert (marked_task, "assigned", me) not in rows, "only deadline reminders are mandatory"
    assert (child_task.id, "overdue", barn) in rows
    assert (child_task.id, "assigned", barn) not in rows
    # Opting back in brings the local reminder (the next sweep queues it).
    with unit_of_work(sessions) as s:
        set_opt_outs(s, actor(s, "handlaggare"), [Kind.ASSIGNED])
    sweep(sessions, settings, "w1")
    with sessions() as s:
        assert (local_task, "overdue", me) in {(r[0], r[1], r[2]) for r in _outbox(s)}
        changes = _audit(s, "notification_preferences:changed")
        assert [e.details["opted_out"] for e in changes][-1] == ["assigned"]


# --------------------------------------------------------------------------- exactly once


def test_two_concurrent_sweeps_send_each_notification_once(
    sessions: sessionmaker[Session], settings: NotificationSettings
) -> None:
    cases = [_mini_case(sessions) for _ in range(12)]
    clock.frozen = T0 + timedelta(days=2, minutes=5)  # new and overdue at once: 2 per task
    barrier = threading.Barrier(2)
    errors: list[BaseException] = []
    results = []

    def work(n: int) -> None:
        try:
            barrier.wait()
            results.append(sweep(sessions, settings, f"worker-{n}", batch=5))
            results.append(sweep(sessions, settings, f"worker-{n}"))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors
    assert sum(r.sent for r in results) == 2 * len(cases)
    assert sum(r.failed for r in results) == 0
    mails = _mails(settings)
    assert len(mails) == 2 * len(cases)
    with sessions() as s:
        rows = _outbox(s)
        assert len(rows) == len({r[:3] for r in rows}) == 2 * len(cases)
        assert {r[3] for r in rows} == {"sent"}
        assert len(_audit(s, "notification:sent")) == 2 * len(cases)
        assert audit.verify_chain(s) is None


# --------------------------------------------------------------------------- SMTP and retries


class _FlakyHandler:
    """An aiosmtpd handler that refuses the first ``failures`` messages with a 451."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.received: list[bytes] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.failures > 0:
            self.failures -= 1
            return "451 4.3.0 Try again later"
        self.received.append(envelope.content)
        return "250 OK"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def smtp_server() -> Iterator[tuple[_FlakyHandler, int]]:
    controller_module = pytest.importorskip("aiosmtpd.controller")
    handler = _FlakyHandler(failures=1)
    port = _free_port()
    controller = controller_module.Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield handler, port
    finally:
        controller.stop()


def test_a_failed_smtp_send_is_retried_with_backoff_and_never_lost(
    sessions: sessionmaker[Session],
    settings: NotificationSettings,
    smtp_server: tuple[_FlakyHandler, int],
) -> None:
    handler, port = smtp_server
    smtp = replace(settings, sink_dir=None, smtp_host="127.0.0.1", smtp_port=port, smtp_tls="none")
    case_id = _mini_case(sessions)
    first = sweep(sessions, smtp, "w1")
    assert (first.sent, first.failed) == (0, 1)
    with sessions() as s:
        row = s.execute(select(NotificationOutbox)).scalar_one()
        assert (row.status, row.attempts, row.last_error) == ("pending", 1, "SMTPDataError")
        assert row.next_attempt_at == T0 + timedelta(minutes=1)
        failed = _audit(s, "notification:failed")
        assert len(failed) == 1 and failed[0].outcome == "error"
    assert sweep(sessions, smtp, "w1").sent == 0, "backing off"
    clock.frozen = T0 + timedelta(minutes=1, seconds=1)
    again = sweep(sessions, smtp, "w1")
    assert (again.sent, again.failed) == (1, 0)
    assert len(handler.received) == 1
    mail = message_from_bytes(handler.received[0], policy=policy.default)
    with sessions() as s:
        number = s.get(Case, case_id).number  # type: ignore[union-attr]
        row = s.execute(select(NotificationOutbox)).scalar_one()
        assert (row.status, row.attempts) == ("sent", 2)
        (sent,) = _audit(s, "notification:sent")
        assert sent.details["transport"] == "smtp" and sent.details["attempt"] == 2
    assert number in str(mail["Subject"])
    assert str(mail["To"]) == "handlaggare@example.org"
    assert sweep(sessions, smtp, "w1").sent == 0


def test_a_mail_server_that_is_down_delays_but_does_not_drop(
    sessions: sessionmaker[Session], settings: NotificationSettings
) -> None:
    smtp = replace(
        settings,
        sink_dir=None,
        smtp_host="127.0.0.1",
        smtp_port=_free_port(),
        smtp_tls="none",
        smtp_timeout=5,
    )
    _mini_case(sessions)
    for minutes in (0, 1, 3, 7):  # 1, 2, 4 minutes of back-off
        clock.frozen = T0 + timedelta(minutes=minutes, seconds=1)
        assert sweep(sessions, smtp, "w1").failed == 1
    with sessions() as s:
        row = s.execute(select(NotificationOutbox)).scalar_one()
        assert (row.status, row.attempts) == ("pending", 4)
        assert row.next_attempt_at == T0 + timedelta(minutes=15, seconds=1)
    clock.frozen = T0 + timedelta(minutes=16)
    assert sweep(sessions, settings, "w1").sent == 1  # the sink stands in for a repaired server


# --------------------------------------------------------------------------- settings and CLI


def test_settings_choose_the_sink_or_smtp_and_refuse_bad_values(app: Flask, tmp_path: Path) -> None:
    core = app.extensions["lotsen"]
    assert load_notification_settings(core, {}).sink_dir == tmp_path / "mail"
    production = core.with_overrides(demo=False, env="production")
    with pytest.raises(ConfigError):  # links would point nowhere
        load_notification_settings(production, {})
    site = {"LOTSEN_BASE_URL": BASE_URL}
    assert load_notification_settings(production, site).uses_sink  # no host: the sink
    smtp = load_notification_settings(
        production, {**site, "LOTSEN_SMTP_HOST": "mail.example.org", "LOTSEN_SMTP_TLS": "ssl"}
    )
    assert (smtp.sink_dir, smtp.smtp_port, smtp.smtp_tls) == (None, 465, "ssl")
    demo_with_host = load_notification_settings(core, {"LOTSEN_SMTP_HOST": "mail.example.org"})
    assert demo_with_host.uses_sink, "demo mode never sends real mail"
    for env in (
        {"LOTSEN_BASE_URL": "javascript:alert(1)"},
        {"LOTSEN_BASE_URL": "https://x.example/?q=1"},
        {"LOTSEN_MAIL_FROM": "a@b\r\nBcc: c@d"},
        {"LOTSEN_SMTP_TLS": "maybe"},
        {"LOTSEN_NOTIFY_LEAD": "tomorrow"},
    ):
        with pytest.raises(ConfigError):
            load_notification_settings(core, env)


def test_cli_notify_and_run_timers_send_through_the_sink(
    app: Flask, sessions: sessionmaker[Session], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LOTSEN_BASE_URL", BASE_URL)
    _mini_case(sessions)
    runner = app.test_cli_runner()
    result = runner.invoke(args=["lotsen", "notify", "--once"])
    assert result.exit_code == 0, result.output
    assert "queued 1, sent 1" in result.output
    assert len(list((tmp_path / "mail").glob("*.eml"))) == 1
    clock.frozen = T0 + timedelta(days=3)
    result = runner.invoke(args=["lotsen", "run-timers", "--once"])
    assert result.exit_code == 0, result.output
    assert "notifications: queued 1, sent 1" in result.output
    with sessions() as s:
        assert s.execute(select(func.count()).select_from(NotificationOutbox)).scalar_one() == 2


def test_the_worker_thread_sends_until_stopped(
    app: Flask, sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    """``lotsen worker`` runs the sweep in a thread beside the timer loop (webapp.cli_notify)."""
    import time

    from webapp.cli_notify import start_sweeper

    _mini_case(sessions)
    stop = threading.Event()
    thread = start_sweeper(app, stop, interval=0.1)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not list((tmp_path / "mail").glob("*.eml")):
        time.sleep(0.05)
    stop.set()
    thread.join(timeout=30)
    assert not thread.is_alive()
    assert len(list((tmp_path / "mail").glob("*.eml"))) == 1
