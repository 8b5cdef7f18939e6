"""The exact personnummer lookup: a POST, checked (checksum, date), by blind index, only the
cases the user may open, never the number in a URL or the access log."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from engine import actions, break_glass
from engine.db import unit_of_work
from engine.models import AuditEntry
from engine.processes import latest_published, model_for
from forms import load_form_spec
from tests.conftest import actor, csrf_token_from, login, unit_id

SCENARIO = (
    Path(__file__).resolve().parents[2]
    / "bpmn"
    / "identification"
    / "scenarios"
    / "01_presumed_trafficking_begging_reported.json"
)
PNR12 = "198504151237"
#: a samordningsnummer (day + 60) with a valid check digit
SAMORDNING = "19850475-1234"


def _case(app: Flask, username: str, unit: str, pnr: str, name: str) -> tuple[int, str]:
    intake = json.loads(SCENARIO.read_text(encoding="utf-8"))["intake"]
    with unit_of_work(app.extensions["lotsen_db"]) as db:
        version = latest_published(db, "identification")
        spec = load_form_spec(version.forms[model_for(version).start_form_key])
        case = actions.start_case(
            db,
            actor(db, username),
            procedure="identification",
            unit_id=unit_id(db, unit),
            intake={
                **spec.empty_data(),
                **intake,
                "identity_status": "known",
                "subject_name": name,
                "personnummer": pnr,
            },
            subject_fields=spec.subject_fields,
        )
        return int(case.id), str(case.number)


def _search(client: FlaskClient, value: str) -> Any:
    token = csrf_token_from(client.get("/search").get_data(as_text=True))
    return client.post("/search", data={"personnummer": value, "csrf_token": token})


def test_only_cases_the_user_may_open(app: Flask) -> None:
    adult, _ = _case(app, "handlaggare", "vuxenenheten", PNR12, "Ioana Vuxen")
    child, child_number = _case(app, "handlaggare.barn", "barn_och_unga", PNR12, "Ioana Barn")
    other, _ = _case(app, "handlaggare", "vuxenenheten", "198112189876", "Annan Person")
    caseworker = login(app.test_client(), "handlaggare")
    for typed in ("19850415-1237", "198504151237", "850415-1237", " 8504151237 "):
        response = _search(caseworker, typed)
        page = response.get_data(as_text=True)
        assert response.status_code == 200, typed
        assert f'href="/cases/{adult}"' in page and "Ioana Vuxen" in page
        assert f'href="/cases/{child}"' not in page and "Ioana Barn" not in page
        assert f'href="/cases/{other}"' not in page
    # the unit manager of both units sees both
    page = _search(login(app.test_client(), "enhetschef"), PNR12).get_data(as_text=True)
    assert f'href="/cases/{adult}"' in page and f'href="/cases/{child}"' in page
    # emergency access to the other unit's case adds it (while it runs)
    with unit_of_work(app.extensions["lotsen_db"]) as db:
        break_glass.request_access(
            db,
            actor(db, "handlaggare"),
            case_number=child_number,
            reason="Jourärende: barnet kan vara i fara",
        )
    page = _search(caseworker, PNR12).get_data(as_text=True)
    assert f'href="/cases/{child}"' in page


def test_invalid_numbers_get_a_clear_message_and_keep_the_input(app: Flask) -> None:
    client = login(app.test_client(), "handlaggare")
    cases = {
        "19850415-1238": "check digit",
        "19850230-1230": "real date",
        "20990101-0000": "real date",
        "1985-04-15": "YYYYMMDD-NNNN",
        "abc": "YYYYMMDD-NNNN",
        "": "Enter a personal identity number",
        "1" * 40: "YYYYMMDD-NNNN",
    }
    client.post(
        "/language",
        data={"lang": "en", "next": "/", "csrf_token": csrf_token_from(client.get("/").text)},
    )
    for typed, words in cases.items():
        response = _search(client, typed)
        page = response.get_data(as_text=True)
        assert response.status_code == 422, typed
        assert words in page, (typed, words)
        assert 'aria-invalid="true"' in page
        if typed and len(typed) <= 20:
            assert f'value="{typed}"' in page
    # a samordningsnummer is valid
    assert _search(client, SAMORDNING).status_code == 200


def test_the_number_never_reaches_a_url_or_the_log(app: Flask) -> None:
    adult, _ = _case(app, "handlaggare", "vuxenenheten", PNR12, "Ioana Vuxen")
    client = login(app.test_client(), "handlaggare")
    # a GET with the number in the query string searches nothing
    page = client.get(f"/search?personnummer={PNR12}").get_data(as_text=True)
    assert f'href="/cases/{adult}"' not in page and 'id="hits-title"' not in page
    assert f'value="{PNR12}"' not in page
    _search(client, "19850415-1237")
    _search(client, "19850415-1238")
    form = client.get("/search").get_data(as_text=True)
    assert 'method="post"' in form
    with unit_of_work(app.extensions["lotsen_db"]) as db:
        entries = list(db.execute(select(AuditEntry)).scalars())
        searched = [e for e in entries if e.action == "person:searched"]
        assert len(searched) == 1 and searched[0].details["results"] == 1
        assert searched[0].details["case_ids"] == [adult]
        for entry in entries:
            text = json.dumps(
                [entry.purpose, entry.object_id, entry.details], ensure_ascii=False, default=str
            )
            assert PNR12 not in text and "850415" not in text, entry.action


def test_staff_only(app: Flask) -> None:
    for username in ("huge", "processagare", "granskare", "admin"):
        client = login(app.test_client(), username)
        assert client.get("/search").status_code == 403
        token = csrf_token_from(client.get("/").get_data(as_text=True))
        response = client.post("/search", data={"personnummer": PNR12, "csrf_token": token})
        assert response.status_code == 403
    assert app.test_client().get("/search").status_code == 302
