"""Partners outside social services (the housing company) reach their task forms only."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select
from sqlalchemy.orm import Session

from engine import access, actions
from engine.errors import NotFound
from engine.models import OpenTask, ProcessInstance
from tests.conftest import actor, unit_id
from tests.webapp.test_pages_kit import scenario


def _case_with_partner_task(db: Session) -> tuple[int, str]:
    intake = scenario("01_presumed_trafficking_begging_reported.json")["intake"]
    case = actions.start_case(
        db,
        actor(db, "handlaggare"),
        procedure="identification",
        unit_id=unit_id(db, "vuxenenheten"),
        intake=intake,
    )
    instance = db.execute(
        select(ProcessInstance).where(ProcessInstance.case_id == case.id)
    ).scalar_one()
    task_id = str(uuid.uuid4())
    db.add(
        OpenTask(
            id=task_id,
            instance_id=instance.id,
            case_id=case.id,
            bpmn_id="task_ack",
            name="C6 Kvittera underrättelse",
            form_key=None,
            role="housing_contact",
            unit_id=case.unit_id,
        )
    )
    db.commit()
    return case.id, task_id


def test_housing_contact_sees_its_task_but_never_the_case(app: Flask, db: Session) -> None:
    case_id, task_id = _case_with_partner_task(db)
    huge = actor(db, "huge")
    assert access.access_task(db, huge, task_id).id == task_id
    with pytest.raises(NotFound):
        access.access_case(db, huge, case_id)
    assert access.visible_case_ids(db, huge) == []
    db.rollback()


def test_housing_contact_gets_404_on_the_case_page(app: Flask, db: Session, login_as: Any) -> None:
    case_id, _task_id = _case_with_partner_task(db)
    client = login_as("huge")
    assert client.get(f"/cases/{case_id}").status_code == 404
    assert client.get(f"/api/v1/cases/{case_id}").status_code in (401, 404)
    page = client.get("/cases").get_data(as_text=True)
    assert f"/cases/{case_id}" not in page
    db.rollback()
