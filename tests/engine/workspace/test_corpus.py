"""Every file of ../shared/bpmn-corpus (a dozen modelling tools, SpiffArena, Camunda, bpmn.io)
either imports as a draft or is refused with a clear list of problems: never an exception,
never a hang. One app for the whole module keeps it fast (the checker caches by content)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from lxml import etree
from sqlalchemy.orm import Session
from ws_kit import CORPUS, validate_form

from engine import workspace
from engine.models.processes import DRAFT
from engine.workspace.rules import NS
from tests.conftest import actor
from tests.engine.engine_testkit import app_on

FILES = sorted(CORPUS.rglob("*.bpmn"))
SECONDS_PER_FILE = 5.0


@pytest.fixture(scope="module")
def corpus_db(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Session]:
    folder = tmp_path_factory.mktemp("corpus")
    apps = app_on(f"sqlite:///{folder / 'corpus.db'}", folder)
    app: Flask = next(apps)
    session: Session = app.extensions["lotsen_db"]()
    yield session
    session.close()
    for _ in apps:
        pass


def test_the_corpus_is_there() -> None:
    assert len(FILES) >= 40, f"expected the shared corpus at {CORPUS}"


@pytest.mark.parametrize("path", FILES, ids=[f"{p.parent.name}/{p.stem}" for p in FILES])
def test_corpus_file_imports_or_is_refused_with_reasons(corpus_db: Session, path: Path) -> None:
    owner = actor(corpus_db, "processagare")
    started = time.perf_counter()
    version, result = workspace.import_file(
        corpus_db, owner, filename=path.name, data=path.read_bytes()
    )
    corpus_db.commit()
    assert time.perf_counter() - started < SECONDS_PER_FILE
    for problem in result.problems:
        assert problem.code and problem.message_en.strip() and problem.message_sv.strip()
    if version is None:
        assert result.problems, "a refusal must say why"
        return
    assert version.status == DRAFT and version.bpmn_xml
    assert version.check_ok == result.ok
    assert [p["code"] for p in version.problems] == [p.code for p in result.problems]
    # a stored draft can be read back, diffed and checked again without surprises
    assert workspace.diff(corpus_db, version.id, version.id).is_empty
    for key, spec in version.forms.items():
        assert list(validate_form(spec)) == [], f"generated form {key} is invalid"


def test_the_latin1_file_is_refused_as_not_well_formed(corpus_db: Session) -> None:
    path = CORPUS / "miwg" / "GenMyModel-0.47__C.1.1-export.bpmn"
    version, result = workspace.import_file(
        corpus_db, actor(corpus_db, "processagare"), filename=path.name, data=path.read_bytes()
    )
    assert version is None
    assert [p.code for p in result.problems] == ["xml.malformed"]


def test_camunda_form_data_becomes_form_specs(corpus_db: Session) -> None:
    path = CORPUS / "spiffworkflow" / "lanes.bpmn"
    version, _ = workspace.import_file(
        corpus_db, actor(corpus_db, "processagare"), filename=path.name, data=path.read_bytes()
    )
    assert version is not None and len(version.forms) == 3
    root = etree.fromstring(version.bpmn_xml.encode())
    keys = {
        p.get("value")
        for p in root.xpath(".//spiffworkflow:property[@name='formKey']", namespaces=NS)
    }
    assert keys == set(version.forms)
    fields = [c for spec in version.forms.values() for c in spec["components"]]
    by_key = {c["key"]: c for c in fields}
    assert by_key["needclarification"]["type"] == "checkbox"
    assert by_key["newbpmnfeautre"]["type"] == "textfield"
    assert by_key["newbpmnfeautre"]["label"]["en"] == "What Feature Do you want to add?"
