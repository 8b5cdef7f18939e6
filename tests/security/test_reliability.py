"""Reliability (security.md §5.3 and §6 cases 26-30), through the real app.

* 26: two caseworkers post the completion of one task at the same moment: one 303, one 409.
* 27: the same completion and the same approval posted twice: one change, one decision, one PDF.
* 28: the app process is SIGKILLed while it completes a task, at a hook point (before the
  engine's state is written, before COMMIT, after COMMIT) and, from outside, a real ``flask run``
  server killed at arbitrary moments of a completion: afterwards the task is open (and completes
  once when sent again) or completed once, never half-done.
* 29: the database goes away in the middle of a request (its connection is terminated by the
  server, as in a restart) or cannot be reached at all: 503 with an error id, the typed form
  values kept on the page, no traceback; the next request works without restarting the app.
* 30: last night's backup restored into a fresh database: the app starts, the audit chain
  verifies, every process instance loads, and the cases gallrade since the backup stay erased.

Cases 26, 28 and 29 matter most on PostgreSQL (row locks, a server that drops connections); run
with ``LOTSEN_TEST_DATABASE_URL`` set. They run on SQLite too where the failure exists there.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import create_engine, event, select, text
from werkzeug.datastructures import MultiDict
from werkzeug.test import TestResponse

from engine import audit, retention
from engine.actions import runtime
from engine.db import normalize_url
from engine.models import Case, Decision, Document, OpenTask, ProcessInstance, ProcessVersion
from tests.conftest import PG_URL, login
from tests.engine.engine_testkit import (
    CONVERSATION,
    SCREENING,
    app_on,
    start_committed,
)
from tests.engine.retention_kit import CLOSED_ADULT, number_of, run_scenario
from tests.security.security_kit import (
    count_audit,
    extra_caseworker,
    open_bpmn_ids,
    post_completion,
    task_form,
)
from tests.webapp.test_pages_kit import arrange_case, get, html

HERE = Path(__file__).resolve().parent
PG_HOST = ["-h", "127.0.0.1", "-U", "postgres"]


@pytest.fixture
def app(database_url: str, tmp_path: Path) -> Iterator[Flask]:
    """The app on a fresh database; errors become pages as in production (no propagation)."""
    for application in app_on(database_url, tmp_path):
        application.config["PROPAGATE_EXCEPTIONS"] = False
        yield application


def _first_task(app: Flask, case_id: int) -> str:
    with app.extensions["lotsen_db"]() as s:
        return str(
            s.execute(
                select(OpenTask.id).where(OpenTask.case_id == case_id, OpenTask.status == "open")
            ).scalar_one()
        )


def _task(app: Flask, task_id: str) -> OpenTask:
    with app.extensions["lotsen_db"]() as s:
        row = s.get(OpenTask, task_id)
        assert row is not None
        return row


# --- 26: concurrent completion ------------------------------------------------------------------


def _race(posts: list[Any]) -> list[TestResponse]:
    """Run the posts in threads released together; return the responses in order."""
    barrier = threading.Barrier(len(posts))
    results: list[Any] = [None] * len(posts)

    def run(i: int) -> None:
        barrier.wait()
        results[i] = posts[i]()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(posts))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return results


def test_case_26_two_users_complete_one_task_at_the_same_moment(
    app: Flask, database_url: str
) -> None:
    extra_caseworker(app, "handlaggare.tva")
    first, second = (
        login(app.test_client(), "handlaggare"),
        login(app.test_client(), "handlaggare.tva"),
    )
    rounds = 5 if database_url.startswith("postgresql") else 2
    for _ in range(rounds):
        case_id = start_committed(app)
        task_id = _first_task(app, case_id)
        forms = [task_form(c, task_id) for c in (first, second)]
        responses = _race(
            [
                lambda c=c, f=f, t=task_id: post_completion(c, t, f[0], f[1], SCREENING)
                for c, f in zip((first, second), forms, strict=True)
            ]
        )
        statuses = sorted(r.status_code for r in responses)
        assert statuses == [303, 409], [html(r)[:500] for r in responses]
        loser = next(r for r in responses if r.status_code == 409)
        assert "Traceback" not in html(loser)
        assert count_audit(app, "task:completed", task_id) == 1
        assert open_bpmn_ids(app, case_id) == ["task_hold_conversation"]  # one set of next tasks
    with app.extensions["lotsen_db"]() as s:
        assert audit.verify_chain(s) is None


# --- 27: double submit --------------------------------------------------------------------------


def test_case_27_double_click_submit_gives_one_decision_and_one_pdf(
    app: Flask, login_as: Any
) -> None:
    with app.extensions["lotsen_db"]() as db:
        world = arrange_case(app, db, until="D-A6")
    decision_id = world["decision_id"]
    # the proposal's completion posted twice at once and once more after a "network retry"
    caseworker = login_as("handlaggare")
    case_id = start_committed(app)
    task_id = _first_task(app, case_id)
    page, fields = task_form(caseworker, task_id)
    twice = _race([lambda: post_completion(caseworker, task_id, page, fields, SCREENING)] * 2)
    again = post_completion(caseworker, task_id, page, fields, SCREENING)
    # the click that lost the race waits for the winner (the instance lock) and is then
    # recognised by its submission id: the same redirect, never a 409 or a 500
    assert sorted(r.status_code for r in twice) == [303, 303], [html(r)[:300] for r in twice]
    assert all("Traceback" not in html(r) for r in twice)
    assert again.status_code == 303 and again.headers["Location"] == f"/cases/{case_id}"
    assert count_audit(app, "task:completed", task_id) == 1
    assert open_bpmn_ids(app, case_id) == ["task_hold_conversation"]

    # "submit decision" (the supervisor's approval) twice: one approval, one PDF
    supervisor = login_as("arbetsledare")
    page = get(supervisor, f"/decisions/{decision_id}")
    from tests.webapp.test_pages_kit import post

    first = post(supervisor, f"/decisions/{decision_id}", page, {"approve": "1"})
    second = post(supervisor, f"/decisions/{decision_id}", page, {"approve": "1"})
    assert first.status_code == 303, html(first)[:1000]
    assert second.status_code in (303, 409)
    assert "Traceback" not in html(second)
    with app.extensions["lotsen_db"]() as s:
        decision = s.get(Decision, decision_id)
        assert decision is not None and decision.status == "approved"
        documents = s.execute(select(Document).where(Document.decision_id == decision_id))
        assert len(documents.scalars().all()) == 1
    assert count_audit(app, "decision:approved", decision_id) == 1


# --- 28: SIGKILL during a completion ------------------------------------------------------------


def _kill_during_completion(
    app: Flask, database_url: str, tmp_path: Path, moment: str, versions: list[int]
) -> str:
    case_id = start_committed(app)
    task_id = _first_task(app, case_id)
    versions.append(_instance_version(app, task_id))
    app.extensions["lotsen_engine"].dispose()  # the worker process gets the database alone
    env = {**os.environ, "PYTHONPATH": str(HERE.parents[1])}
    run = subprocess.run(
        [
            sys.executable,
            str(HERE / "crash_worker.py"),
            database_url,
            str(tmp_path),
            task_id,
            moment,
            json.dumps(SCREENING),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=False,
    )
    assert run.returncode == -9, f"not killed ({run.returncode}): {run.stdout} {run.stderr[-2000:]}"
    return task_id


def _instance_version(app: Flask, task_id: str) -> int:
    with app.extensions["lotsen_db"]() as s:
        instance = s.get(ProcessInstance, _task(app, task_id).instance_id)
        assert instance is not None
        return instance.version


@pytest.mark.parametrize("moment", ["mid-step", "before-commit"])
def test_case_28_killed_before_commit_leaves_the_task_open_and_it_completes_once(
    app: Flask, database_url: str, tmp_path: Path, moment: str
) -> None:
    versions: list[int] = []
    task_id = _kill_during_completion(app, database_url, tmp_path, moment, versions)
    row = _task(app, task_id)  # "after restart": a fresh process, the same database
    assert row.status == "open" and row.completed_at is None
    assert count_audit(app, "task:completed", task_id) == 0
    assert _instance_version(app, task_id) == versions[0]  # still at the old wait state
    with app.extensions["lotsen_db"]() as s:
        assert audit.verify_chain(s) is None
    client = login(app.test_client(), "handlaggare")
    page, fields = task_form(client, task_id)
    assert post_completion(client, task_id, page, fields, SCREENING).status_code == 303
    assert count_audit(app, "task:completed", task_id) == 1
    assert open_bpmn_ids(app, row.case_id) == ["task_hold_conversation"]


def test_reliability_killed_after_commit_the_task_is_completed_exactly_once(
    app: Flask, database_url: str, tmp_path: Path
) -> None:
    versions: list[int] = []
    task_id = _kill_during_completion(app, database_url, tmp_path, "after-commit", versions)
    assert _instance_version(app, task_id) == versions[0] + 1
    row = _task(app, task_id)
    assert row.status == "done"
    assert count_audit(app, "task:completed", task_id) == 1
    assert open_bpmn_ids(app, row.case_id) == ["task_hold_conversation"]
    with app.extensions["lotsen_db"]() as s:
        assert audit.verify_chain(s) is None


# --- 29: the database goes away -----------------------------------------------------------------


def _terminate_own_backend_on(app: Flask, marker: str) -> dict[str, int]:
    """Make the server drop the app's connection the moment it sends ``marker`` (once)."""
    assert PG_URL
    admin = create_engine(normalize_url(PG_URL))
    fired = {"count": 0}

    @event.listens_for(app.extensions["lotsen_engine"], "before_cursor_execute")
    def drop(conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if fired["count"] or marker not in statement.upper():
            return
        fired["count"] += 1
        pid = conn.connection.dbapi_connection.info.backend_pid
        with admin.begin() as c:
            c.execute(text("SELECT pg_terminate_backend(:p)"), {"p": pid})
        admin.dispose()

    return fired


def test_case_29_database_restart_mid_request_is_a_clean_503_and_recovers(
    app: Flask, database_url: str
) -> None:
    if not database_url.startswith("postgresql"):
        pytest.skip("the server side of a connection: PostgreSQL")
    engine = app.extensions["lotsen_engine"]
    engine.dispose()
    pids: set[int] = set()

    @event.listens_for(engine, "connect")
    def remember(dbapi_conn: Any, _record: Any) -> None:
        pids.add(dbapi_conn.info.backend_pid)

    client = login(app.test_client(), "handlaggare")
    case_id = start_committed(app)
    task_id = _first_task(app, case_id)
    page, fields = task_form(client, task_id)
    typed = {**CONVERSATION, "conversation_place_description": "Samtalsrum 3, plan 2"}
    fired = _terminate_own_backend_on(app, "UPDATE PROCESS_INSTANCES")
    response = post_completion(client, task_id, page, fields, {**SCREENING, **typed})
    assert fired["count"] == 1
    body = html(response)
    assert response.status_code == 503, body[:2000]
    assert response.headers.get("Retry-After")
    assert "Traceback" not in body and "psycopg" not in body and "UPDATE" not in body
    assert "<code>" in body  # the error id is shown
    # what was typed is on the page, ready to be sent again (hidden fields of a retry form)
    assert 'value="Samtalsrum 3, plan 2"' in body
    assert f'action="/tasks/{task_id}"' in body
    # nothing half-written
    assert _task(app, task_id).status == "open"
    assert count_audit(app, "task:completed", task_id) == 0
    # a restart drops every connection the app holds; the next request works without a restart
    assert PG_URL and pids
    admin = create_engine(normalize_url(PG_URL))
    with admin.begin() as c:
        for pid in pids:
            c.execute(text("SELECT pg_terminate_backend(:p)"), {"p": pid})
    admin.dispose()
    again = client.post(f"/tasks/{task_id}", data=MultiDict(_kept_fields(body)))
    assert again.status_code == 303, html(again)[:2000]
    assert count_audit(app, "task:completed", task_id) == 1
    assert get(client, f"/cases/{case_id}")


def _kept_fields(body: str) -> list[tuple[str, str]]:
    import html as html_lib

    form = body.split('class="kept-form"', 1)[1].split("</form>", 1)[0]
    return [
        (html_lib.unescape(n), html_lib.unescape(v))
        for n, v in re.findall(r'<input type="hidden" name="([^"]*)" value="([^"]*)">', form)
    ]


def test_reliability_unreachable_database_is_503_and_keeps_the_login_name(
    tmp_path: Path,
) -> None:
    from webapp import create_app

    application = create_app(
        {
            "LOTSEN_DATABASE_URL": "postgresql://lotsen@127.0.0.1:1/nowhere?connect_timeout=2",
            "LOTSEN_ENV": "test",
            "LOTSEN_INSTANCE_DIR": str(tmp_path),
            "TESTING": True,
            "PROPAGATE_EXCEPTIONS": False,
            "WTF_CSRF_ENABLED": False,
        }
    )
    client: FlaskClient = application.test_client()
    response = client.post("/login", data={"username": "handlaggare", "password": "hemligt"})
    body = html(response)
    assert response.status_code == 503, body[:2000]
    assert 'value="handlaggare"' in body  # kept
    assert "hemligt" not in body  # a password is never written back
    assert "Traceback" not in body and "127.0.0.1" not in body
    api = client.get("/api/v1/me", headers={"Authorization": "Bearer x.y.z"})
    assert api.status_code == 503 and api.get_json()["error_id"]
    # a logged-in browser: the outage hits while its session is being loaded
    client.set_cookie(application.config["SESSION_COOKIE_NAME"], "an-opaque-session-id")
    page = client.get("/cases")
    assert page.status_code == 503 and "Traceback" not in html(page)
    assert re.search(r"<code>[0-9a-f]{12}</code>", html(page))
    application.extensions["lotsen_engine"].dispose()


# --- 30: backup and restore ---------------------------------------------------------------------


def _pg_dump(database_url: str, tmp_path: Path) -> Path:
    """pg_dump of the test schema (custom format), as a nightly backup job would take."""
    assert PG_URL
    schema = database_url.rsplit("search_path%3D", 1)[1]
    source_db = PG_URL.split("?", 1)[0].rsplit("/", 1)[1]
    dump = tmp_path / "nightly.dump"
    subprocess.run(
        ["pg_dump", *PG_HOST, "-n", schema, "-Fc", "-f", str(dump), source_db],
        check=True,
        timeout=120,
    )
    return dump


def _pg_restore(database_url: str, dump: Path) -> tuple[str, Any]:
    """Restore ``dump`` into a new database; return (its URL, a cleanup function)."""
    assert PG_URL
    schema = database_url.rsplit("search_path%3D", 1)[1]
    base = PG_URL.split("?", 1)[0]
    fresh = f"restore_{uuid.uuid4().hex[:10]}"
    admin = create_engine(normalize_url(PG_URL), isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(text(f'CREATE DATABASE "{fresh}"'))

    def cleanup() -> None:
        with admin.connect() as c:
            c.execute(text(f'DROP DATABASE IF EXISTS "{fresh}" WITH (FORCE)'))
        admin.dispose()

    try:
        subprocess.run(
            ["pg_restore", *PG_HOST, "--no-owner", "-d", fresh, str(dump)],
            check=True,
            timeout=120,
        )
    except BaseException:
        cleanup()
        raise
    return f"{base.rsplit('/', 1)[0]}/{fresh}?options=-csearch_path%3D{schema}", cleanup


def test_case_30_restored_backup_starts_verifies_loads_and_keeps_erasures(
    app: Flask, database_url: str, tmp_path: Path
) -> None:
    # the ledger of the running app (instance dir), backed up apart from the database
    ledger = retention.ledger_path(app.extensions["lotsen"])
    old = run_scenario(
        app, CLOSED_ADULT, datetime(2019, 3, 4, 9, tzinfo=UTC), name="Gallras Efter Backup"
    )
    old_number = number_of(app, old)
    with app.extensions["lotsen_db"]() as db:
        kept = arrange_case(app, db, until="D-A6", approve=True)["case_id"]

    # last night's backup
    restored_dir = tmp_path / "restored"
    restored_dir.mkdir()
    if database_url.startswith("sqlite"):
        with (
            sqlite3.connect(database_url.removeprefix("sqlite:///")) as src,
            sqlite3.connect(restored_dir / "nightly.db") as dst,
        ):
            src.backup(dst)
    else:
        dump = _pg_dump(database_url, tmp_path)
    # today: the old case is gallrad (the ledger lives outside the database)
    runner = app.test_cli_runner()
    result = runner.invoke(
        args=[
            "lotsen",
            "retention",
            "--apply",
            "--today",
            "2026-11-28",
            "--approved-by",
            "arbetsledare",
        ]
    )
    assert result.exit_code == 0, result.output
    assert ledger.exists()
    assert old_number in result.output and "Gallras" not in result.output

    # the restore drill: a fresh environment from last night's backup
    cleanup: Any = None
    if database_url.startswith("sqlite"):
        shutil.copyfile(restored_dir / "nightly.db", restored_dir / "lotsen.db")
        restored_url = f"sqlite:///{restored_dir / 'lotsen.db'}"
    else:
        restored_url, cleanup = _pg_restore(database_url, dump)
    try:
        _check_restored(restored_url, tmp_path, ledger, old, old_number, kept)
    finally:
        if cleanup:
            cleanup()


def _check_restored(
    url: str,
    tmp_path: Path,
    ledger: Path,
    old: int,
    old_number: str,
    kept: int,
) -> None:
    from webapp import create_app

    restored = create_app(
        {
            "LOTSEN_DATABASE_URL": url,
            "LOTSEN_ENV": "test",
            "LOTSEN_DEMO": "1",
            "LOTSEN_INSTANCE_DIR": str(tmp_path / "restored-instance"),
            "LOTSEN_ERASURE_LEDGER": str(ledger),
            "TESTING": True,
        }
    )
    try:
        runner = restored.test_cli_runner()
        factory = restored.extensions["lotsen_db"]
        with factory() as s:  # the backup predates the erasure: the case is back ...
            assert s.get(Case, old) is not None
        reapplied = runner.invoke(args=["lotsen", "retention", "--reapply"])
        assert reapplied.exit_code == 0, reapplied.output
        with factory() as s:  # ... and erased again from the ledger
            assert s.get(Case, old) is None, (reapplied.output, ledger.read_text())
            assert s.execute(select(Case).where(Case.number == old_number)).first() is None
            # every instance loads
            for instance in s.execute(select(ProcessInstance)).scalars():
                version = s.get(ProcessVersion, instance.version_id)
                assert version is not None
                runtime.restore(version.sha256, version.spec_json, instance.state)
            assert s.get(Case, kept) is not None
        verified = runner.invoke(args=["lotsen", "verify-audit"])
        assert verified.exit_code == 0 and "intact" in verified.output
        client = login(restored.test_client(), "handlaggare")
        assert "Gallras" not in get(client, "/cases")
        get(client, f"/cases/{kept}")
        assert client.get(f"/cases/{old}").status_code == 404
    finally:
        restored.extensions["lotsen_engine"].dispose()


# --- 28, from outside: a real server process killed at arbitrary moments ------------------------


class _Server:
    """``flask run`` on the test database, in its own process (killed with SIGKILL)."""

    def __init__(self, database_url: str, instance: Path) -> None:
        import socket

        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.env = {
            **os.environ,
            "PYTHONPATH": str(HERE.parents[1]),
            "LOTSEN_DATABASE_URL": database_url,
            "LOTSEN_ENV": "test",
            "LOTSEN_DEMO": "1",
            "LOTSEN_INSTANCE_DIR": str(instance),
        }
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        import time

        import requests

        command = [sys.executable, "-m", "flask", "--app", "wsgi", "run", "--no-reload"]
        self.process = subprocess.Popen(
            [*command, "--port", str(self.port)],
            cwd=HERE.parents[1],
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if requests.get(f"{self.url}/login", timeout=1).status_code == 200:
                    return
            except requests.ConnectionError:
                time.sleep(0.1)
        raise AssertionError("the server did not start")

    def kill(self) -> None:
        assert self.process is not None
        self.process.kill()  # SIGKILL
        self.process.wait(10)


def _http_login(url: str) -> Any:
    import requests

    browser = requests.Session()
    page = browser.get(f"{url}/login", timeout=10).text
    token = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', page)
    assert token
    response = browser.post(
        f"{url}/login",
        data={"username": "handlaggare", "password": "demo", "csrf_token": token.group(1)},
        allow_redirects=False,
        timeout=10,
    )
    assert response.status_code == 303
    return browser


def _http_complete(browser: Any, url: str, task_id: str) -> Any:
    from tests.webapp.test_pages_kit import as_form, csrf, task_form_fields

    page = browser.get(f"{url}/tasks/{task_id}", timeout=10).text
    items = [("csrf_token", csrf(page)), *task_form_fields(page), ("action", "complete")]
    items += as_form(SCREENING)

    def send() -> Any:
        return browser.post(f"{url}/tasks/{task_id}", data=items, allow_redirects=False, timeout=30)

    return send


def test_reliability_server_killed_at_arbitrary_moments_never_half_completes(
    app: Flask, database_url: str, tmp_path: Path
) -> None:
    import time

    server = _Server(database_url, tmp_path)
    server.start()
    try:
        for delay in (0.0, 0.03, 0.08, 0.2):
            case_id = start_committed(app)
            task_id = _first_task(app, case_id)
            version = _instance_version(app, task_id)
            browser = _http_login(server.url)
            send = _http_complete(browser, server.url, task_id)
            thread = threading.Thread(target=_try, args=(send,))
            thread.start()
            time.sleep(delay)
            server.kill()
            thread.join(30)
            server.start()  # "after restart"
            row = _task(app, task_id)
            completed = count_audit(app, "task:completed", task_id)
            if row.status == "open":  # rolled back whole: the old wait state
                assert completed == 0 and _instance_version(app, task_id) == version
                assert open_bpmn_ids(app, case_id) == ["task_screen_acute"]
                again = _http_complete(_http_login(server.url), server.url, task_id)()
                assert again.status_code == 303
            else:  # committed whole, once
                assert row.status == "done" and completed == 1
            assert count_audit(app, "task:completed", task_id) == 1
            assert open_bpmn_ids(app, case_id) == ["task_hold_conversation"]
        with app.extensions["lotsen_db"]() as s:
            assert audit.verify_chain(s) is None
    finally:
        if server.process is not None and server.process.poll() is None:
            server.kill()


def _try(send: Any) -> None:
    """Send, and accept that the server may die under the request."""
    import contextlib

    with contextlib.suppress(Exception):  # a dropped connection is the point of the test
        send()
