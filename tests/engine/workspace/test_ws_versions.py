"""Version life cycle through the engine API: drafts keep everything, submit needs a clean
check, publishing needs a second process owner (four eyes), every step is audited, new
cases start on the newest published version and running cases stay on theirs."""

from __future__ import annotations

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session
from ws_kit import edited, procedure

from engine import workspace
from engine.errors import Conflict, Forbidden, NotFound, ValidationFailed
from engine.models import AuditEntry
from engine.models.processes import DRAFT, PUBLISHED, REJECTED, SUBMITTED
from engine.processes import latest_published, publish
from tests.conftest import actor
from tests.engine.engine_testkit import instance_of, start

RENAMED = ("A4 Indikatorbedömning", "A4 Bedömning av indikatorer")


def _renamed() -> str:
    return edited("identification", f'name="{RENAMED[0]}"', f'name="{RENAMED[1]}"')


def _draft(db: Session, username: str = "processagare", xml: str | None = None) -> int:
    files = procedure("identification")
    version, result = workspace.save_draft(
        db,
        actor(db, username),
        bpmn_xml=xml or _renamed(),
        forms=files.forms,
        filename="identification.bpmn",
    )
    db.commit()
    assert result.ok, [str(p) for p in result.problems]
    return version.id


def _actions(db: Session, object_id: int) -> list[str]:
    return list(
        db.execute(
            select(AuditEntry.action)
            .where(
                AuditEntry.object_type == "process_version", AuditEntry.object_id == str(object_id)
            )
            .order_by(AuditEntry.seq)
        ).scalars()
    )


def test_one_person_cannot_publish_alone(db: Session) -> None:
    owner, second = actor(db, "processagare"), actor(db, "processagare2")
    version_id = _draft(db)
    workspace.submit(db, owner, version_id)
    db.commit()
    with pytest.raises(Forbidden) as refused:
        workspace.approve(db, owner, version_id)
    assert "Four eyes" in refused.value.message
    db.rollback()
    version = workspace.approve(db, second, version_id)
    db.commit()
    assert version.status == PUBLISHED
    assert version.published_by_id == second.user_id and version.submitted_by_id == owner.user_id
    assert version.approved_by_id == second.user_id
    assert latest_published(db, "identification").id == version_id
    assert _actions(db, version_id) == [
        "process_version:draft_created",
        "process_version:submitted",
        "process_version:published",
    ]


def test_an_editor_who_did_not_submit_cannot_approve_either(db: Session) -> None:
    owner, second = actor(db, "processagare"), actor(db, "processagare2")
    version_id = _draft(db, "processagare2")  # written by the second owner
    files = procedure("identification")
    workspace.save_draft(db, owner, bpmn_xml=_renamed(), forms=files.forms, version_id=version_id)
    workspace.submit(db, owner, version_id)
    db.commit()
    for who in (owner, second):  # the submitter, and the author
        with pytest.raises(Forbidden):
            workspace.approve(db, who, version_id)
        db.rollback()
    assert workspace.get_version(db, version_id).status == SUBMITTED


@pytest.mark.parametrize("username", ["handlaggare", "arbetsledare", "admin", "granskare"])
def test_only_process_owners_change_versions(db: Session, username: str) -> None:
    who = actor(db, username)
    assert not workspace.can_edit_processes(who)
    version_id = _draft(db)
    files = procedure("identification")
    with pytest.raises(Forbidden):
        workspace.save_draft(db, who, bpmn_xml=_renamed(), forms=files.forms)
    for call in (workspace.submit, workspace.approve):
        with pytest.raises(Forbidden):
            call(db, who, version_id)
    with pytest.raises(Forbidden):
        workspace.reject(db, who, version_id, "no")
    with pytest.raises(Forbidden):
        workspace.migrate(db, who, version_id)
    with pytest.raises(Forbidden):
        workspace.import_file(db, who, filename="x.bpmn", data=b"<x/>")
    assert workspace.can_edit_processes(actor(db, "processagare"))


def test_a_failing_draft_is_stored_but_cannot_be_submitted(db: Session) -> None:
    owner = actor(db, "processagare")
    files = procedure("identification")
    broken = edited("identification", 'name="dv_team">', 'name="nobody">')
    version, result = workspace.save_draft(db, owner, bpmn_xml=broken, forms=files.forms)
    db.commit()
    assert not result.ok and version.status == DRAFT and not version.check_ok
    assert version.bpmn_xml == broken and version.forms == files.forms
    assert {p["code"] for p in version.problems} == {"lane.unknown"}
    with pytest.raises(ValidationFailed) as refused:
        workspace.submit(db, owner, version.id)
    assert "lane.unknown" in " ".join(refused.value.field_errors["bpmn"])
    db.rollback()
    # fixing it in place keeps the id and the number
    fixed, verdict = workspace.save_draft(
        db, owner, bpmn_xml=_renamed(), forms=files.forms, version_id=version.id
    )
    assert verdict.ok and fixed.id == version.id and fixed.check_ok and fixed.problems == []
    assert workspace.submit(db, owner, version.id).status == SUBMITTED


def test_only_a_draft_can_be_changed_or_submitted(db: Session) -> None:
    owner, second = actor(db, "processagare"), actor(db, "processagare2")
    version_id = _draft(db)
    workspace.submit(db, owner, version_id)
    files = procedure("identification")
    with pytest.raises(Conflict):
        workspace.save_draft(
            db, owner, bpmn_xml=_renamed(), forms=files.forms, version_id=version_id
        )
    with pytest.raises(Conflict):
        workspace.submit(db, owner, version_id)
    workspace.approve(db, second, version_id)
    for call in (workspace.submit, workspace.approve):
        with pytest.raises(Conflict):
            call(db, second, version_id)
    with pytest.raises(Conflict):
        workspace.reject(db, second, version_id, "too late")


def test_reject_needs_a_reason_and_ends_the_version(db: Session) -> None:
    owner, second = actor(db, "processagare"), actor(db, "processagare2")
    version_id = _draft(db)
    workspace.submit(db, owner, version_id)
    with pytest.raises(ValidationFailed):
        workspace.reject(db, second, version_id, "   ")
    version = workspace.reject(db, second, version_id, "Fel lagrum i A6.")
    assert version.status == REJECTED and version.rejected_reason == "Fel lagrum i A6."
    assert version.rejected_by_id == second.user_id
    with pytest.raises(Conflict):
        workspace.approve(db, second, version_id)
    assert "process_version:rejected" in _actions(db, version_id)


def test_a_stale_draft_cannot_overwrite_a_newer_publication(db: Session) -> None:
    owner, second = actor(db, "processagare"), actor(db, "processagare2")
    first = _draft(db)
    other = _draft(db, xml=edited("identification", 'name="A2 Akut bedömning"', 'name="A2 Ny"'))
    for version_id in (first, other):
        workspace.submit(db, owner, version_id)
    workspace.approve(db, second, other)
    db.commit()
    with pytest.raises(Conflict) as refused:
        workspace.approve(db, second, first)
    assert "published after" in refused.value.message


def test_new_cases_start_on_the_newest_published_running_cases_stay(db: Session) -> None:
    owner, second = actor(db, "processagare"), actor(db, "processagare2")
    old_case = start(db, actor(db, "handlaggare"))
    db.commit()
    _, old_version = instance_of(db, old_case.id)
    version_id = _draft(db)
    new_case_on_draft = start(db, actor(db, "handlaggare"))  # a draft is not used
    assert instance_of(db, new_case_on_draft.id)[1].id == old_version.id
    workspace.submit(db, owner, version_id)
    workspace.approve(db, second, version_id)
    db.commit()
    new_case = start(db, actor(db, "handlaggare"))
    db.commit()
    assert instance_of(db, new_case.id)[1].id == version_id
    assert instance_of(db, old_case.id)[1].id == old_version.id


def test_lotsen_init_publish_ignores_drafts_and_stays_idempotent(db: Session) -> None:
    files = procedure("identification")
    published = latest_published(db, "identification")
    draft_id = _draft(db)
    version, created = publish(db, actor(db, "admin"), files)
    assert not created and version.id == published.id
    assert workspace.get_version(db, draft_id).status == DRAFT
    # a changed bundle is published after the draft's number
    changed = type(files)("identification", _renamed().encode(), files.forms)
    version, created = publish(db, actor(db, "admin"), changed)
    assert created and version.number > workspace.get_version(db, draft_id).number


def test_list_and_get(db: Session) -> None:
    version_id = _draft(db)
    listed = workspace.list_versions(db, "identification")
    assert listed[0].id == version_id
    assert all(v.process_id == "identification" for v in listed)
    assert {v.process_id for v in workspace.list_versions(db)} >= {
        "identification",
        "victim_support",
    }
    assert workspace.get_version(db, version_id).filename == "identification.bpmn"
    for missing in (0, -1, 10**12, 999_999):
        with pytest.raises(NotFound):
            workspace.get_version(db, missing)
