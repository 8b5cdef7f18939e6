"""Auditor pages (logguppföljning): only the auditor gets in, filters work, the sample holds
every protected-identity and denied entry, findings are stored and logged, unusual-access
signals fire for real situations, and a person's access extract is a PDF without personnummer.

Everything is arranged through the real engine actions and pages; on PostgreSQL the
append-only triggers are installed, so the app is shown to keep working under them.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import datetime, timedelta
from io import BytesIO
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pypdf
import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select, text

from engine import access, audit
from engine import audit_queries as aq
from engine.audit_protection import install_pg_protection
from engine.db import clock, unit_of_work
from engine.errors import Forbidden, NotFound
from engine.models import AuditEntry, LogReview, LogReviewItem, Subject, User
from tests.conftest import actor, csrf_token_from, login
from tests.engine.engine_testkit import BASIC_INTAKE, app_on, start

STOCKHOLM = ZoneInfo("Europe/Stockholm")
DAY = datetime(2026, 3, 4, tzinfo=STOCKHOLM)
PNR = "198112189876"
PNR_FORMS = ("198112189876", "19811218-9876", "811218-9876", "8112189876")
BURST = 25


@pytest.fixture
def app(database_url: str, tmp_path: Path) -> Iterator[Flask]:
    """The app on a fresh database; on PostgreSQL with the audit tables append-only."""
    for application in app_on(database_url, tmp_path):
        with application.extensions["lotsen_engine"].begin() as conn:
            install_pg_protection(conn)
        yield application


@pytest.fixture(autouse=True)
def _thaw_clock() -> Iterator[None]:
    yield
    clock.frozen = None


def at(hour: int, minute: int = 0, second: int = 0, day: int = 0) -> datetime:
    return DAY + timedelta(days=day, hours=hour, minutes=minute, seconds=second)


def _start(app: Flask, when: datetime, **intake: Any) -> tuple[int, int]:
    clock.frozen = when
    with unit_of_work(app.extensions["lotsen_db"]) as s:
        case = start(s, actor(s, "handlaggare"), {**BASIC_INTAKE, **intake})
        return case.id, case.subjects[0].id


def _read(app: Flask, username: str, case_id: int, when: datetime, purpose: str = "view") -> None:
    clock.frozen = when
    with unit_of_work(app.extensions["lotsen_db"]) as s:
        access.access_case(s, actor(s, username), case_id, purpose=purpose)


def arrange(app: Flask, *, burst: bool = False) -> dict[str, Any]:
    """The situations of the module docstring, on 4 March 2026 (Stockholm), plus a denied
    read from the other unit through the case page on 5 March."""
    world: dict[str, Any] = {}
    world["person"], world["subject"] = _start(
        app, at(8), personnummer=PNR, subject_name="Testperson Ett"
    )
    world["protected"], _ = _start(
        app, at(8, 1), protected_identity_type="skyddad_folkbokforing", subject_name="Dold"
    )
    world["person2"], world["subject2"] = _start(
        app, at(8, 2), personnummer=PNR, subject_name="Testperson Ett"
    )
    _read(app, "arbetsledare", world["person"], at(9), "supervision")
    _read(app, "handlaggare", world["protected"], at(9, 30))
    if burst:
        cases = [_start(app, at(9, 40, i))[0] for i in range(BURST)]
        for i, case_id in enumerate(cases):
            _read(app, "arbetsledare", case_id, at(10, 0, 12 * i))  # 25 reads in 5 minutes
        world["burst_cases"] = cases
    _read(app, "arbetsledare", world["person"], at(23, 30), "night check")
    clock.frozen = at(9, day=1)
    other_unit = login(app.test_client(), "handlaggare.barn")
    assert other_unit.get(f"/cases/{world['person']}").status_code == 404
    return world


def entries(app: Flask, **where: Any) -> list[AuditEntry]:
    with app.extensions["lotsen_db"]() as s:
        query = select(AuditEntry).order_by(AuditEntry.seq)
        for column, value in where.items():
            query = query.where(getattr(AuditEntry, column) == value)
        return list(s.execute(query).scalars())


def sign_in(app: Flask, username: str) -> FlaskClient:
    """Log in through the real forms, including the second factor where the role needs one
    (demo mode shows the current code on the code page)."""
    client = login(app.test_client(), username)
    step = client.get("/login/totp")
    if step.status_code == 200:
        codes = re.findall(r"\b(\d{6})\b", step.get_data(as_text=True))
        assert codes, "no demo code on the second-factor page"
        response = client.post(
            "/login/totp",
            data={"code": codes[0], "csrf_token": csrf_token_from(step.get_data(as_text=True))},
        )
        assert response.status_code in (302, 303), response.status_code
    return client


def auditor(app: Flask) -> FlaskClient:
    return sign_in(app, "granskare")


def page(client: FlaskClient, url: str) -> str:
    response = client.get(url)
    assert response.status_code == 200, (url, response.status_code)
    return response.get_data(as_text=True)


def post(client: FlaskClient, url: str, data: dict[str, Any], token_page: str = "/audit") -> Any:
    token = csrf_token_from(page(client, token_page))
    return client.post(url, data={**data, "csrf_token": token})


def seqs_on(html: str) -> list[int]:
    """The entry numbers of the log table, in page order."""
    return [int(n) for n in re.findall(r"<tr>\s*<td>(\d+)</td>", html)]


def no_personnummer(blob: str) -> None:
    for form in PNR_FORMS:
        assert form not in blob, form


# --- who gets in ---------------------------------------------------------------------------------


def test_only_the_auditor_sees_the_pages(app: Flask) -> None:
    for username in ("handlaggare", "arbetsledare", "enhetschef", "admin", "processagare"):
        client = sign_in(app, username)
        for url in ("/audit", "/audit/signals", "/audit/reviews"):
            assert client.get(url).status_code == 403, (username, url)
        token = csrf_token_from(page(client, "/"))
        response = client.post("/audit/person", data={"personnummer": PNR, "csrf_token": token})
        assert response.status_code == 403
    assert app.test_client().get("/audit").status_code == 302
    client = auditor(app)
    for url in ("/audit", "/audit/signals", "/audit/reviews"):
        page(client, url)
    assert client.get("/audit/person").status_code == 405  # a personnummer never goes in a URL
    with app.extensions["lotsen_db"]() as s:
        with pytest.raises(Forbidden):
            aq.search_log(s, actor(s, "enhetschef"), aq.AuditFilter())
        with pytest.raises(Forbidden):
            aq.access_extract(s, actor(s, "admin"), 1, purpose="x")


# --- the log search ------------------------------------------------------------------------------


def test_filters_narrow_the_log_and_the_search_is_logged(app: Flask) -> None:
    world = arrange(app)
    client = auditor(app)
    with app.extensions["lotsen_db"]() as s:
        supervisor = actor(s, "arbetsledare").user_id
        numbers = {
            key: s.execute(
                text("SELECT number FROM cases WHERE id = :i"), {"i": world[key]}
            ).scalar_one()
            for key in ("person", "person2", "protected")
        }

    listed = seqs_on(page(client, "/audit"))
    assert listed == sorted(listed, reverse=True) and len(listed) > 5  # newest first
    with app.extensions["lotsen_db"]() as s:
        reviewer = actor(s, "granskare")
        caseworker = aq.AuditFilter(user_id=actor(s, "handlaggare").user_id)
        first = aq.search_log(s, reviewer, caseworker, page=1, page_size=3)
        second = aq.search_log(s, reviewer, caseworker, page=2, page_size=3)
        s.rollback()
    own = sorted((e.seq for e in entries(app, actor_name="handlaggare")), reverse=True)
    assert first.total == second.total == len(own) and first.pages == -(-len(own) // 3)
    assert first.has_next and not aq.AuditPage((), first.pages, 3, len(own)).has_next
    assert [e.seq for e in first.entries + second.entries] == own[:6]

    by_user = {e.seq for e in entries(app, actor_id=supervisor)}
    assert set(seqs_on(page(client, f"/audit?user={supervisor}"))) == by_user

    by_case = seqs_on(page(client, f"/audit?case={numbers['protected']}"))
    assert by_case and set(by_case) == {
        e.seq for e in entries(app, case_id=world["protected"]) if e.seq in by_case
    }
    assert all(e.case_id == world["protected"] for e in entries(app) if e.seq in by_case)

    # a person: both cases that carry the same personnummer, nothing else
    person_cases = {world["person"], world["person2"]}
    by_person = set(seqs_on(page(client, f"/audit?subject={world['subject']}")))
    expected = {e.seq for e in entries(app) if e.case_id in person_cases}
    assert by_person == expected

    denied = seqs_on(page(client, "/audit?action=case:denied"))
    assert denied and {e.action for e in entries(app) if e.seq in denied} == {"case:denied"}

    late = page(client, "/audit?from=2026-03-04&to=2026-03-04&user=" + str(supervisor))
    late_seqs = set(seqs_on(late))
    assert late_seqs == {
        e.seq for e in entries(app, actor_id=supervisor) if e.ts < at(0, day=1) and e.ts >= DAY
    }
    assert "night check" in late
    assert client.get("/audit?from=yesterday").status_code == 422
    assert client.get("/audit?case=19811218-9876").status_code == 422  # not a case number

    searched = entries(app, action="audit:searched")
    assert searched and all(e.actor_name == "granskare" for e in searched)
    case_search = [e for e in searched if e.case_id == world["protected"]]
    assert case_search and case_search[0].details["filter"] == ["case_number"]
    person_search = [e for e in searched if e.object_type == "subject"]
    assert person_search[0].object_id == str(world["subject"])
    no_personnummer(json.dumps([e.details for e in searched]))


def test_person_search_is_a_post_and_never_logs_the_number(app: Flask) -> None:
    world = arrange(app)
    client = auditor(app)
    response = post(client, "/audit/person", {"personnummer": "19811218-9876"})
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert f"/audit?subject={world['subject']}" in html
    assert f"/audit?subject={world['subject2']}" in html
    no_personnummer(html)
    assert post(client, "/audit/person", {"personnummer": "12345"}).status_code == 422
    searched = [e for e in entries(app, action="audit:searched") if e.object_type == "person"]
    assert searched[0].details["results"] == 2
    with app.extensions["lotsen_db"]() as s:
        index = s.get(Subject, world["subject"]).personnummer_index  # type: ignore[union-attr]
    assert searched[0].details["query_hash"] == index
    # nothing in the whole log holds the number in clear
    raw = json.dumps(
        [[str(getattr(e, c.name)) for c in AuditEntry.__table__.columns] for e in entries(app)]
    )
    no_personnummer(raw)


# --- sampled log review --------------------------------------------------------------------------


def test_sample_holds_every_protected_and_denied_entry(app: Flask) -> None:
    world = arrange(app)
    client = auditor(app)
    response = post(
        client, "/audit/reviews/draw", {"from": "2026-03-04", "to": "2026-03-05", "size": "3"}
    )
    assert response.status_code == 303
    review_id = int(response.headers["Location"].split("review=")[1].split("#")[0])
    start, end = at(0), at(0, day=2)
    in_period = [e for e in entries(app) if start <= e.ts < end]
    denied = {e.seq for e in in_period if e.outcome == "denied"}
    protected = {e.seq for e in in_period if e.case_id == world["protected"]}
    assert denied and protected
    with app.extensions["lotsen_db"]() as s:
        items = s.execute(
            select(LogReviewItem).where(LogReviewItem.review_id == review_id)
        ).scalars()
        reasons = {i.audit_seq: i.reason for i in items}
    assert denied <= set(reasons) and protected <= set(reasons)
    assert {reasons[q] for q in denied - protected} == {"denied"}
    assert {reasons[q] for q in protected} == {"protected"}
    random = [q for q, r in reasons.items() if r == "random"]
    assert len(random) == 3 and not set(random) & (denied | protected)
    assert all(not e.action.startswith("audit:") for e in in_period if e.seq in random)
    drawn = entries(app, action="audit:sample_drawn")
    assert drawn[-1].object_id == str(review_id)
    assert drawn[-1].details["random"] == 3 and drawn[-1].details["denied"] == len(
        denied - protected
    )
    html = page(client, f"/audit/reviews?review={review_id}")
    assert html.count('name="finding" value="incident"') == len(reasons)
    assert entries(app, action="audit:review_viewed")
    # an invalid period draws nothing
    bad = post(client, "/audit/reviews/draw", {"from": "2026-03-05", "to": "2026-03-04"})
    assert bad.status_code == 422


def test_findings_are_stored_encrypted_and_logged(app: Flask) -> None:
    arrange(app)
    client = auditor(app)
    start, end = at(0), at(0, day=2)
    with unit_of_work(app.extensions["lotsen_db"]) as s:
        review_id = aq.draw_sample(s, actor(s, "granskare"), start, end, 1)
    with app.extensions["lotsen_db"]() as s:
        first, second = s.execute(
            select(LogReviewItem.id)
            .where(LogReviewItem.review_id == review_id)
            .order_by(LogReviewItem.id)
            .limit(2)
        ).scalars()
    token_page = f"/audit/reviews?review={review_id}"

    ok = post(
        client,
        "/audit/reviews/finding",
        {"review": review_id, "item": first, "finding": "ok"},
        token_page,
    )
    assert ok.status_code == 303
    missing_comment = post(
        client,
        "/audit/reviews/finding",
        {"review": review_id, "item": second, "finding": "incident", "comment": ""},
        token_page,
    )
    assert missing_comment.status_code == 422
    comment = "Läste skyddat ärende utan uppdrag – kontaktat chef."
    incident = post(
        client,
        "/audit/reviews/finding",
        {"review": review_id, "item": second, "finding": "incident", "comment": comment},
        token_page,
    )
    assert incident.status_code == 303
    wrong_review = post(
        client,
        "/audit/reviews/finding",
        {"review": review_id + 1, "item": second, "finding": "ok"},
        token_page,
    )
    assert wrong_review.status_code == 404

    with app.extensions["lotsen_db"]() as s:
        item = s.get(LogReviewItem, second)
        assert item is not None and item.finding == "incident" and item.comment == comment
        assert item.reviewed_by_id == actor(s, "granskare").user_id
        raw = s.execute(
            text("SELECT comment FROM log_review_items WHERE id = :i"), {"i": second}
        ).scalar_one()
        assert comment not in raw  # encrypted at rest
        review = s.get(LogReview, review_id)
        assert review is not None
    recorded = entries(app, action="audit:finding_recorded")
    assert [(e.object_id, e.details["finding"]) for e in recorded] == [
        (str(first), "ok"),
        (str(second), "incident"),
    ]
    assert comment not in json.dumps([e.details for e in recorded], ensure_ascii=False)
    html = page(client, token_page)
    assert comment in html and 'value="incident" checked' in html
    listing = page(client, "/audit/reviews")
    assert f"?review={review_id}" in listing
    with app.extensions["lotsen_db"]() as s:
        assert audit.verify_chain(s) is None


# --- unusual-access signals ----------------------------------------------------------------------


def test_unusual_access_signals_fire(app: Flask) -> None:
    world = arrange(app, burst=True)
    with unit_of_work(app.extensions["lotsen_db"]) as s:
        reviewer = actor(s, "granskare")
        supervisor = actor(s, "arbetsledare").user_id
        found = aq.signals(s, reviewer, at(0), at(0, day=2))
        strict = aq.signals(s, reviewer, at(0), at(0, day=2), burst_cases=30)
        slow = aq.signals(s, reviewer, at(0), at(0, day=2), burst_minutes=1)

    denied = found.denied.entries
    assert [(e.actor_name, e.action, e.case_id) for e in denied] == [
        ("handlaggare.barn", "case:denied", world["person"])
    ]
    assert [(e.actor_name, e.case_id) for e in found.protected_reads.entries] == [
        ("handlaggare", world["protected"])
    ]
    assert [(b.actor_id, b.distinct_cases) for b in found.bursts] == [(supervisor, BURST)]
    assert found.bursts[0].last_ts - found.bursts[0].first_ts <= timedelta(minutes=5)
    assert not strict.bursts and not slow.bursts
    late = found.after_hours.entries
    assert [(e.actor_name, e.case_id, e.purpose) for e in late] == [
        ("arbetsledare", world["person"], "night check (oversight)")
    ]
    assert found.break_glass.total == 0
    assert entries(app, action="audit:signals_viewed")

    client = auditor(app)
    html = page(client, "/audit/signals?from=2026-03-04&to=2026-03-05")
    assert html.count('class="burst"') == 1 and "Anna Arbetsledare" not in html
    assert "arbetsledare" in html and "night check" in html and "handlaggare.barn" in html
    assert 'class="burst"' not in page(
        client, "/audit/signals?from=2026-03-04&to=2026-03-05&cases=26"
    )
    app.config["AUDIT_BURST_CASES"] = 100
    assert 'class="burst"' not in page(client, "/audit/signals?from=2026-03-04&to=2026-03-05")
    assert client.get("/audit/signals?from=2026-03-05&to=2026-03-01").status_code == 422


def test_find_bursts_counts_distinct_cases_in_the_window() -> None:
    t0 = datetime(2026, 3, 4, 9, tzinfo=STOCKHOLM)
    reads = [(1, "a", t0 + timedelta(seconds=10 * i), i % 3) for i in range(30)]  # 3 cases
    reads += [(2, "b", t0 + timedelta(minutes=i), i) for i in range(30)]  # one a minute
    reads += [(3, "c", t0 + timedelta(seconds=i), i) for i in range(45)]  # 45 in 45 s
    found = aq.find_bursts(reads, 20, timedelta(minutes=10))
    assert [(b.actor_id, b.distinct_cases, b.reads) for b in found] == [(3, 45, 45)]
    assert found[0].last_ts - found[0].first_ts == timedelta(seconds=44)
    # two bursts of one user, an hour apart, are two signals
    later = [(3, "c", t0 + timedelta(hours=1, seconds=i), 100 + i) for i in range(20)]
    found = aq.find_bursts(reads[60:] + later, 20, timedelta(minutes=10))
    assert [(b.distinct_cases, b.reads) for b in found] == [(45, 45), (20, 20)]
    assert aq.is_after_hours(datetime(2026, 3, 4, 22, 0, tzinfo=STOCKHOLM))
    assert aq.is_after_hours(datetime(2026, 7, 4, 5, 59, tzinfo=STOCKHOLM))
    assert not aq.is_after_hours(datetime(2026, 7, 4, 6, 0, tzinfo=STOCKHOLM))


# --- the access extract --------------------------------------------------------------------------


def _pdf_text(data: bytes) -> str:
    reader = pypdf.PdfReader(BytesIO(data))
    return " ".join(" ".join(p.extract_text().split()) for p in reader.pages)


def test_access_extract_pdf_lists_readers_dates_and_purposes(app: Flask) -> None:
    world = arrange(app)
    client = auditor(app)
    response = post(
        client, "/audit/extract", {"subject": world["subject"], "request_ref": "SN 2026/117"}
    )
    assert response.status_code == 200, response.status_code
    assert response.mimetype == "application/pdf"
    assert response.headers["Content-Disposition"].startswith("attachment;")
    assert "sandbox" in response.headers["Content-Security-Policy"]
    anonymous = _pdf_text(response.data)
    assert "Utdrag ur åtkomstloggen" in anonymous and "SN 2026/117" in anonymous
    assert "2026-03-04 09:00" in anonymous and "2026-03-04 23:30" in anonymous
    assert "arbetsledning inom enheten" in anonymous  # the purpose (oversight)
    assert "Arbetsledare, Vuxenenheten" in anonymous  # role and unit, always shown
    assert "Socialsekreterare" in anonymous and "Registrerade ärendet" in anonymous
    assert "Anna Arbetsledare" not in anonymous  # no staff names unless asked for
    with app.extensions["lotsen_db"]() as s:
        for key in ("person", "person2"):
            number = s.execute(
                text("SELECT number FROM cases WHERE id = :i"), {"i": world[key]}
            ).scalar_one()
            assert number in anonymous
    named = _pdf_text(
        post(
            client,
            "/audit/extract",
            {"subject": world["subject"], "staff_names": "y", "lang": "en"},
        ).data
    )
    assert "Anna Arbetsledare" in named and "Hanna Handläggare" in named
    assert "Read the case" in named and "supervision within the unit" in named
    assert "Bertil" not in named  # a refused read is not an access to the data
    for text_ in (anonymous, named, anonymous.replace(" ", ""), named.replace(" ", "")):
        no_personnummer(text_)
    made = entries(app, action="audit:extract_created")
    assert [(e.object_type, e.object_id, e.actor_name) for e in made] == [
        ("subject", str(world["subject"]), "granskare"),
        ("subject", str(world["subject"]), "granskare"),
    ]
    assert made[0].purpose == "data subject request SN 2026/117"
    assert made[1].purpose == "data subject request (staff names)"
    with app.extensions["lotsen_db"]() as s, pytest.raises(NotFound):
        aq.access_extract(s, actor(s, "granskare"), 2**31 - 1, purpose="x")
    assert post(client, "/audit/extract", {"subject": ""}).status_code == 422


def test_protected_person_extract_prints_no_name(app: Flask) -> None:
    clock.frozen = at(8)
    case_id, subject_id = _start(
        app, at(8), protected_identity_type="sekretessmarkering", subject_name="Hemlig Hemligsson"
    )
    _read(app, "handlaggare", case_id, at(9))
    client = auditor(app)
    text_ = _pdf_text(post(client, "/audit/extract", {"subject": subject_id}).data)
    assert "Skyddad identitet" in text_ and "Hemlig" not in text_
    with app.extensions["lotsen_db"]() as s:
        assert s.execute(select(User).where(User.username == "granskare")).scalar_one()
