"""security.md §6 cases 14-16 against the workspace engine: hostile BPMN uploads.

14. A DOCTYPE with an external entity (XXE) is refused; no file content appears anywhere.
15. Billion laughs is refused in under a second with flat memory.
16. ``uuid.os.system('id')`` or ``().__class__.__mro__`` in a gateway condition or a script
    task: the checker refuses it, the draft can be neither submitted nor published (nor
    published by ``lotsen init``'s path), and nothing executes.
"""

from __future__ import annotations

import resource
import time
from pathlib import Path
from xml.sax.saxutils import escape

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session
from ws_kit import edited, procedure

from engine import workspace
from engine.errors import ValidationFailed
from engine.models.processes import DRAFT, ProcessVersion
from engine.processes import ProcedureFiles, publish
from engine.workflow.problems import ModelError
from tests.conftest import actor

XXE = b"""<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE definitions [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL" id="d">
  <bpmn:process id="leak" isExecutable="true">
    <bpmn:documentation>&xxe;</bpmn:documentation>
    <bpmn:startEvent id="start"/>
  </bpmn:process>
</bpmn:definitions>
"""

LAUGHS = (
    b'<?xml version="1.0"?>\n<!DOCTYPE lolz [\n<!ENTITY lol "lol">\n'
    + b"".join(
        f'<!ENTITY lol{i} "{("&lol" + (str(i - 1) if i > 1 else "") + ";") * 10}">\n'.encode()
        for i in range(1, 10)
    )
    + b']>\n<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL">'
    b'<bpmn:process id="p"><bpmn:documentation>&lol9;</bpmn:documentation></bpmn:process>'
    b"</bpmn:definitions>\n"
)

CONDITION = (
    '<bpmn:conditionExpression xsi:type="bpmn:tFormalExpression">{}</bpmn:conditionExpression>'
)
PAYLOADS = ("uuid.os.system('id')", "().__class__.__mro__")


def _count(db: Session) -> int:
    return int(db.execute(select(func.count()).select_from(ProcessVersion)).scalar_one())


def _texts(result: workspace.CheckResult) -> str:
    return " ".join(f"{p.message_en} {p.message_sv}" for p in result.problems)


# --- 14 -------------------------------------------------------------------------------------------


def test_case_14_xxe_doctype_upload_is_refused_without_content(db: Session) -> None:
    owner = actor(db, "processagare")
    before = _count(db)
    version, result = workspace.import_file(db, owner, filename="leak.bpmn", data=XXE)
    assert version is None and not result.ok
    assert [p.code for p in result.problems] == ["xml.doctype"]
    assert "root:" not in _texts(result) and "/bin/" not in _texts(result)
    assert _count(db) == before
    # the checker itself and a draft saved from the editor refuse it the same way
    assert check_codes(XXE) == ["xml.doctype"]
    draft, verdict = workspace.save_draft(db, owner, bpmn_xml=XXE, forms={}, filename="leak.bpmn")
    assert not verdict.ok and draft.status == DRAFT and draft.spec_json == ""
    assert "root:" not in draft.bpmn_xml.replace("<!DOCTYPE", "")
    with pytest.raises(ValidationFailed):
        workspace.submit(db, owner, draft.id)


def check_codes(data: bytes) -> list[str]:
    return [p.code for p in workspace.check(data, {}).problems]


# --- 15 -------------------------------------------------------------------------------------------


def test_case_15_billion_laughs_is_refused_in_under_a_second(db: Session) -> None:
    owner = actor(db, "processagare")
    before = _count(db)
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.perf_counter()
    version, result = workspace.import_file(db, owner, filename="lol.bpmn", data=LAUGHS)
    elapsed = time.perf_counter() - started
    assert version is None and not result.ok
    assert result.problems[0].code == "xml.doctype"
    assert elapsed < 1.0, f"took {elapsed:.2f} s"
    # without the DOCTYPE pre-check the parser itself must not expand the entities either
    started = time.perf_counter()
    assert check_codes(LAUGHS.replace(b"<!DOCTYPE", b"<!doctype")) == ["xml.doctype"]
    assert time.perf_counter() - started < 1.0
    grown_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before
    assert grown_kb < 50_000, f"memory grew by {grown_kb} kB"
    assert _count(db) == before


# --- 16 -------------------------------------------------------------------------------------------


def _with_condition(payload: str) -> str:
    return edited(
        "identification",
        CONDITION.format("children_involved"),
        CONDITION.format(escape(payload)),
    )


def _with_script(payload: str) -> str:
    return edited(
        "identification",
        '<bpmn:userTask id="task_assess_indicators" name="A4 Indikatorbedömning">',
        '<bpmn:scriptTask id="task_evil" scriptFormat="python">'
        f"<bpmn:script>{escape(payload)}</bpmn:script></bpmn:scriptTask>"
        '<bpmn:userTask id="task_assess_indicators" name="A4 Indikatorbedömning">',
    )


@pytest.mark.parametrize("payload", PAYLOADS)
@pytest.mark.parametrize("where", ["condition", "script"])
def test_case_16_code_in_a_condition_or_script_is_refused_at_publish(
    db: Session, tmp_path: Path, payload: str, where: str
) -> None:
    marker = tmp_path / "executed"
    # a payload that would leave evidence if anything ever ran it
    evidence = f"__import__('os').system('touch {marker}')"
    build = _with_condition if where == "condition" else _with_script
    files = procedure("identification")
    owner, second = actor(db, "processagare"), actor(db, "processagare2")
    for text in (payload, evidence):
        xml = build(text)
        result = workspace.check(xml, files.forms)
        codes = {p.code for p in result.problems}
        expected = "expression.refused" if where == "condition" else "element.refused"
        assert not result.ok and expected in codes
        flagged = {p.element_id for p in result.problems if p.code == expected}
        assert flagged == {"flow_children_involved" if where == "condition" else "task_evil"}
        # stored as a draft (nothing lost), but never submitted or published
        draft, _ = workspace.save_draft(db, owner, bpmn_xml=xml, forms=files.forms)
        with pytest.raises(ValidationFailed) as refused:
            workspace.submit(db, owner, draft.id)
        assert refused.value.field_errors["bpmn"]
        draft.status = "submitted"  # even if it were submitted somehow, approval re-checks
        with pytest.raises(ValidationFailed):
            workspace.approve(db, second, draft.id)
        db.rollback()
        with pytest.raises(ModelError):
            publish(db, owner, ProcedureFiles("identification", xml.encode(), files.forms))
        db.rollback()
    assert not marker.exists(), "a payload was executed"
