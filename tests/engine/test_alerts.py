"""engine.alerts and the access rules that raise them: every access to a protected identity
(case or task) raises an alert for the auditor; repeats are counted, not multiplied; a refusal
raises none; only the auditor reads and acknowledges them. Break-the-glass grants in
``engine.access``: reading only, time-boxed, never a protected case."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from engine_testkit import BASIC_INTAKE, app_on, factory, open_tasks, start_committed
from flask import Flask
from sqlalchemy import select

from engine import access, alerts, break_glass
from engine.db import clock, unit_of_work, utcnow
from engine.errors import Forbidden, NotFound
from engine.models import Case
from engine.models.protection import SecurityAlert
from tests.conftest import actor


@pytest.fixture
def app(database_url: str, tmp_path: Path) -> Iterator[Flask]:
    yield from app_on(database_url, tmp_path)
    clock.frozen = None


def _alerts(app: Flask) -> list[tuple[str, str | None, int | None, int]]:
    with unit_of_work(factory(app)) as s:
        rows = s.execute(select(SecurityAlert).order_by(SecurityAlert.id)).scalars()
        return [(a.kind, a.actor_name, a.case_id, a.count) for a in rows]


def test_protected_access_raises_one_counted_alert(app: Flask) -> None:
    protected = start_committed(
        app, intake={**BASIC_INTAKE, "protected_identity_type": "fingerade_personuppgifter"}
    )
    plain = start_committed(app)
    with unit_of_work(factory(app)) as s:
        me = actor(s, "handlaggare")
        access.access_case(s, me, protected)
        access.access_case(s, me, protected, purpose="journal")
        access.access_case(s, me, plain)
        task = open_tasks(s, protected)[0]
        access.access_task(s, me, task.id)
        with pytest.raises(NotFound):
            access.access_case(s, actor(s, "arbetsledare"), protected)
    assert _alerts(app) == [("protected_access", "handlaggare", protected, 3)]
    # after an hour, or once acknowledged, the next access opens a new alert
    clock.frozen = utcnow() + timedelta(minutes=61)
    with unit_of_work(factory(app)) as s:
        access.access_case(s, actor(s, "handlaggare"), protected)
    assert [a[3] for a in _alerts(app)] == [3, 1]
    with unit_of_work(factory(app)) as s:
        auditor = actor(s, "granskare")
        listed = alerts.list_alerts(s, auditor)
        assert [a.case_number for a in listed] == [s.get(Case, protected).number] * 2  # type: ignore[union-attr]
        alerts.acknowledge(s, auditor, listed[0].id)
        access.access_case(s, actor(s, "handlaggare"), protected)
        assert len(alerts.list_alerts(s, auditor)) == 2
        assert len(alerts.list_alerts(s, auditor, include_done=True)) == 3
        assert alerts.open_alert_count(s, "protected_access") == 2


def test_only_the_auditor_reads_alerts(app: Flask) -> None:
    with unit_of_work(factory(app)) as s:
        alert = alerts.raise_alert(s, actor(s, "handlaggare"), alerts.MASS_LOOKUP)
        for username in ("handlaggare", "enhetschef", "admin", "huge"):
            with pytest.raises(Forbidden):
                alerts.list_alerts(s, actor(s, username))
            with pytest.raises(Forbidden):
                alerts.acknowledge(s, actor(s, username), alert.id)
        with pytest.raises(NotFound):
            alerts.acknowledge(s, actor(s, "granskare"), alert.id + 1000)


def test_grant_covers_reading_only_and_runs_out(app: Flask) -> None:
    case_id = start_committed(app)
    with unit_of_work(factory(app)) as s:
        outsider = actor(s, "handlaggare.barn")
        number = s.get(Case, case_id).number  # type: ignore[union-attr]
        assert case_id not in access.visible_case_ids(s, outsider)
        outcome = break_glass.request_access(
            s, outsider, case_number=number, reason="Jouren: polisen behöver svar nu"
        )
        assert outcome.grant_id is not None and outcome.expires_at is not None
    start = utcnow()
    with unit_of_work(factory(app)) as s:
        outsider = actor(s, "handlaggare.barn")
        for purpose in ("view", "api", "decision 1", "document 2"):
            assert access.access_case(s, outsider, case_id, purpose=purpose).id == case_id
        for purpose in ("journal", "consent", "export", "disclosure"):
            with pytest.raises(NotFound):
                access.access_case(s, outsider, case_id, purpose=purpose)
        assert case_id in access.visible_case_ids(s, outsider)
        assert access.access_reason(s, outsider, s.get(Case, case_id)) == "break_glass"  # type: ignore[arg-type]
    clock.frozen = start + timedelta(minutes=break_glass.GRANT_MINUTES, seconds=1)
    with unit_of_work(factory(app)) as s:
        outsider = actor(s, "handlaggare.barn")
        assert case_id not in access.visible_case_ids(s, outsider)
        with pytest.raises(NotFound):
            access.access_case(s, outsider, case_id)


def test_a_case_that_becomes_protected_closes_a_running_grant(app: Flask) -> None:
    case_id = start_committed(app)
    with unit_of_work(factory(app)) as s:
        number = s.get(Case, case_id).number  # type: ignore[union-attr]
        break_glass.request_access(
            s,
            actor(s, "handlaggare.barn"),
            case_number=number,
            reason="Jouren: polisen behöver svar nu",
        )
    with unit_of_work(factory(app)) as s:
        s.get(Case, case_id).secrecy_class = "PROTECTED_IDENTITY"  # type: ignore[union-attr]
    with unit_of_work(factory(app)) as s:
        outsider = actor(s, "handlaggare.barn")
        assert case_id not in access.visible_case_ids(s, outsider)
        with pytest.raises(NotFound):
            access.access_case(s, outsider, case_id)
