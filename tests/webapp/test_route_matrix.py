"""Route inventory × demo users × own/other unit: who may use which route on which object.

security.md §1 rows 11-15 and §6 cases 4-8. Every (endpoint, method) of ``app.url_map`` must
have a rule in ``matrix_kit.POLICY``, so a new route without a policy fails the suite. Each
rule is then tried by every demo user and by an anonymous visitor, on the objects of both
units: allowed callers get 2xx/3xx (or a validation/conflict answer that comes after the
access check), denied callers 403/404 with nothing changed and a ``*:denied`` audit entry,
anonymous visitors the login redirect (pages) or 401 (API).
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flask import Flask
from matrix_kit import (
    ANONYMOUS,
    DENY,
    POLICY,
    USERS,
    Browser,
    Rule,
    UnitWorld,
    anonymous_browser,
    arrange_world,
    audit_head,
    audit_since,
    bearer,
    diff,
    drive_case,
    iter_objects,
    login_browser,
    route_inventory,
    snapshot,
    unit_id_of,
    unknown_routes,
    url_for_rule,
    user_id,
)
from sqlalchemy import func, select

from engine.models import AuditEntry, Case, Draft, OpenTask

# --- the inventory -------------------------------------------------------------------------------


def test_every_route_has_a_policy(tmp_path: Path) -> None:
    """A route without a rule in POLICY (or a rule for a route that is gone) fails."""
    from webapp import create_app

    app = create_app(
        {
            "LOTSEN_DATABASE_URL": f"sqlite:///{tmp_path / 'inventory.db'}",
            "LOTSEN_ENV": "test",
            "LOTSEN_INSTANCE_DIR": str(tmp_path),
            "TESTING": True,
        }
    )
    missing = unknown_routes(app, POLICY)
    assert not missing, f"routes without an access policy in matrix_kit.POLICY: {missing}"
    stale = sorted(set(POLICY) - set(route_inventory(app)))
    assert not stale, f"policies for routes that no longer exist: {stale}"
    for (endpoint, _method), rule in POLICY.items():
        url_rule = route_inventory(app)[(endpoint, _method)]
        if url_rule.arguments:
            assert rule.access == "object" and rule.objects, f"{endpoint} takes an id"


# --- the matrix ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Cell:
    """One request of the matrix: a route, a caller and (maybe) an object."""

    endpoint: str
    method: str
    rule: Rule
    url: str
    user: str
    world: UnitWorld | None
    kind: str | None
    allowed: bool

    @property
    def api(self) -> bool:
        return self.url.startswith("/api/")

    def label(self) -> str:
        where = f" [{self.kind} of {self.world.unit}]" if self.world else ""
        verdict = "allow" if self.allowed else "deny"
        return f"{self.method} {self.url}{where} as {self.user} (expect {verdict})"


def _cells(app: Flask, worlds: dict[str, UnitWorld]) -> list[Cell]:
    inventory = route_inventory(app)
    cells = []
    for (endpoint, method), rule in POLICY.items():
        url_rule = inventory[(endpoint, method)]
        for world, kind in iter_objects(rule, worlds):
            url = url_for_rule(app, url_rule, world, kind)
            allowed = rule.allowed_users(world, kind)
            for user in (*USERS, ANONYMOUS):
                cells.append(Cell(endpoint, method, rule, url, user, world, kind, user in allowed))
    # reads first, then the writes phase by phase; in a phase every denied cell comes before
    # any allowed one (an allowed write may change what the next caller sees)
    return sorted(cells, key=lambda c: (c.method != "GET", c.rule.phase, c.allowed))


def _ip(index: int) -> str:
    """A source address per cell, so each refusal can be found in the audit log afterwards."""
    return f"10.{index >> 16 & 255}.{index >> 8 & 255}.{index & 255}"


class Matrix:
    """Runs cells and collects every failure (so one run shows them all)."""

    def __init__(self, app: Flask) -> None:
        self.app = app
        self.browsers: dict[str, Browser] = {u: login_browser(app, u) for u in USERS}
        self.browsers[ANONYMOUS] = anonymous_browser(app)
        self.api_client = app.test_client()
        self.tokens = {u: bearer(app, u) for u in USERS}
        self.failures: list[str] = []
        self.logged: dict[str, Cell] = {}  # source address -> a denied cell that must be logged
        self.count = 0
        self.state: dict[str, Any] | None = None  # the last known snapshot, while valid

    def request(self, cell: Cell, ip: str) -> Any:
        body = cell.rule.body(cell.world) if cell.rule.body else None
        environ = {"REMOTE_ADDR": ip}
        if cell.api:
            headers = self.tokens.get(cell.user, {})
            if cell.method == "GET":
                return self.api_client.get(cell.url, headers=headers, environ_base=environ)
            return self.api_client.open(
                cell.url, method=cell.method, json=body, headers=headers, environ_base=environ
            )
        browser = self.browsers[cell.user]
        if cell.method == "GET":
            return browser.client.get(cell.url, environ_base=environ)
        return browser.post(cell.url, body or {}, environ_base=environ)

    def fail(self, cell: Cell, message: str) -> None:
        self.failures.append(f"{cell.label()}: {message}")

    def run(self, cell: Cell) -> None:
        ip = _ip(self.count)
        self.count += 1
        writes = cell.method != "GET"
        must_not_change = writes and (not cell.allowed or cell.rule.harmless)
        before = (self.state or snapshot(self.app)) if must_not_change else None
        response = self.request(cell, ip)
        status = response.status_code
        if status >= 500:
            self.fail(cell, f"server error {status}")
        elif cell.user == ANONYMOUS and cell.rule.access != "public":
            self._check_anonymous(cell, response)
        elif cell.allowed:
            self._check_allowed(cell, status)
        elif status not in cell.rule.deny:
            self.fail(cell, f"got {status}, a denied caller must get {sorted(cell.rule.deny)}")
        elif cell.world is not None and status in DENY:  # a 409 is a refusal, not a denial
            self.logged[ip] = cell
        if before is not None:
            self.state = snapshot(self.app)
            changed = diff(before, self.state)
            if changed:
                self.fail(cell, f"state changed: {changed}")
        elif writes:
            self.state = None

    def _check_anonymous(self, cell: Cell, response: Any) -> None:
        status = response.status_code
        if cell.api:
            if status != 401:
                self.fail(cell, f"anonymous API call got {status}, expected 401")
        elif status != 302 or "/login" not in response.headers.get("Location", ""):
            self.fail(cell, f"anonymous got {status}, expected 302 to /login")

    def _check_allowed(self, cell: Cell, status: int) -> None:
        if cell.rule.allow is not None:
            if status not in cell.rule.allow:
                self.fail(cell, f"got {status}, expected {sorted(cell.rule.allow)}")
        elif cell.method == "GET":
            if not 200 <= status < 400:
                self.fail(cell, f"got {status}, an allowed read must be 2xx/3xx")
        elif status in (401, 403, 404, 405):
            self.fail(cell, f"got {status}, an allowed caller must get past the access check")

    def check_denials_logged(self) -> None:
        """Every 403/404 left a ``*:denied`` entry by its caller; a refused read names the object.

        The access log must let a reviewer answer "who tried to open case X" (security.md
        §1 row 15, §2.3): for a read, an entry with only the request path is not enough.
        """
        db = self.app.extensions["lotsen_db"]()
        try:
            rows = db.execute(
                select(
                    AuditEntry.source_ip,
                    AuditEntry.actor_name,
                    AuditEntry.action,
                    AuditEntry.case_id,
                    AuditEntry.object_id,
                ).where(AuditEntry.outcome == "denied", AuditEntry.source_ip.in_(self.logged))
            ).all()
        finally:
            db.close()
        by_ip: dict[str, list[Any]] = {}
        for row in rows:
            if row.action.endswith(":denied"):
                by_ip.setdefault(row.source_ip, []).append(row)
        anonymous_entries = []
        for ip, cell in self.logged.items():
            assert cell.world is not None and cell.kind is not None
            entries = [r for r in by_ip.get(ip, []) if r.actor_name == cell.user]
            if not entries:
                self.fail(cell, "no '*:denied' audit entry (outcome denied) for the refusal")
                continue
            if cell.kind == "unit" or cell.method != "GET":
                continue  # a refused action: the caller, the path and the outcome suffice
            cases = {cell.world.case_id, cell.world.proposal_case_id}
            names = {str(cell.world.value(cell.kind)), *map(str, cases)}
            if not any(r.case_id in cases or r.object_id in names for r in entries):
                anonymous_entries.append(f"{cell.label()}: {[r.action for r in entries]}")
        if anonymous_entries:
            self.failures.append(
                f"{len(anonymous_entries)} refusals were logged without the case or object "
                "they were for (only the request path), e.g.:\n    "
                + "\n    ".join(anonymous_entries[:5])
            )


def test_route_matrix(app: Flask) -> None:
    worlds = arrange_world(app)
    matrix = Matrix(app)
    cells = _cells(app, worlds)
    reads = [c for c in cells if c.method == "GET"]
    before = snapshot(app)
    for cell in reads:
        matrix.run(cell)
    changed = diff(before, snapshot(app))
    assert not changed, f"GET requests changed state: {changed}"
    for cell in cells[len(reads) :]:
        matrix.run(cell)
    matrix.check_denials_logged()
    assert matrix.count > 1000
    assert not matrix.failures, (
        f"{len(matrix.failures)} of {matrix.count} cells failed:\n" + "\n".join(matrix.failures)
    )


# --- IDOR walk -----------------------------------------------------------------------------------


def test_idor_walk_other_unit_gets_only_404(app: Flask) -> None:
    """A caseworker of Barn och unga walks the ids around a Vuxenenheten case: 404 everywhere."""
    db = app.extensions["lotsen_db"]()
    adult = drive_case(app, db, "vuxenenheten", approve=True)
    own = drive_case(app, db, "barn_och_unga", approve=False)
    db.close()
    browser = login_browser(app, "handlaggare.barn")
    token = bearer(app, "handlaggare.barn")
    api = app.test_client()
    seq = audit_head(app)
    answers: dict[str, int] = {}
    base = adult["case_id"]
    for case_id in range(max(base - 5, 1), base + 6):
        if case_id == own["case_id"]:
            continue
        answers[f"/cases/{case_id}"] = browser.client.get(f"/cases/{case_id}").status_code
        answers[f"/api/v1/cases/{case_id}"] = api.get(
            f"/api/v1/cases/{case_id}", headers=token
        ).status_code
    for doc_id in range(1, 6):
        answers[f"/documents/{doc_id}"] = browser.client.get(f"/documents/{doc_id}").status_code
    for decision_id in range(max(adult["decision_id"] - 3, 1), adult["decision_id"] + 4):
        if decision_id == own["decision_id"]:
            continue
        for url in (
            f"/decisions/{decision_id}",
            f"/api/v1/decisions/{decision_id}",
            f"/api/v1/decisions/{decision_id}/pdf",
        ):
            client = api if url.startswith("/api/") else browser.client
            answers[url] = client.get(url, headers=token if client is api else {}).status_code
    for task_id in [adult["open_task_id"], adult["done_task_id"]] + [
        str(uuid.uuid4()) for _ in range(5)
    ]:
        answers[f"/tasks/{task_id}"] = browser.client.get(f"/tasks/{task_id}").status_code
        answers[f"/api/v1/tasks/{task_id}"] = api.get(
            f"/api/v1/tasks/{task_id}", headers=token
        ).status_code
    wrong = {url: status for url, status in answers.items() if status != 404}
    assert not wrong, f"the other unit's caseworker got more than a 404: {wrong}"
    denied = [
        e
        for e in audit_since(app, seq)
        if e.outcome == "denied" and e.actor_name == "handlaggare.barn"
    ]
    assert len(denied) >= len(answers), (len(denied), len(answers))
    # the real case was refused with its id on record (who tried to read what)
    assert any(e.case_id == base or e.object_id == str(base) for e in denied), (
        "the denied read of the real case is logged without the case it was for: "
        f"{[(e.action, e.case_id, e.object_id, e.details) for e in denied][:3]}"
    )


# --- extra fields: role, unit and assignee cannot be set from outside ----------------------------


EXTRA_FORM = {"role": "admin", "unit_id": "2", "assignee": "me", "assignee_id": "1"}


def _task_state(app: Flask, task_id: str) -> tuple[Any, ...]:
    db = app.extensions["lotsen_db"]()
    try:
        task = db.get(OpenTask, task_id)
        assert task is not None
        return (task.role, task.unit_id, task.assignee_id, task.status)
    finally:
        db.close()


def test_extra_fields_role_unit_assignee_are_ignored(app: Flask) -> None:
    db = app.extensions["lotsen_db"]()
    ids = drive_case(app, db, "vuxenenheten", approve=True)
    barn_id = unit_id_of(db, "barn_och_unga")
    adult_id = unit_id_of(db, "vuxenenheten")
    other_user = user_id(db, "arbetsledare")
    db.close()
    task_id = ids["open_task_id"]
    original = _task_state(app, task_id)
    assert original[:3] == ("caseworker", adult_id, None)
    browser = login_browser(app, "handlaggare")
    extra = {**EXTRA_FORM, "unit_id": str(barn_id), "assignee_id": str(other_user)}

    # a draft with the extra fields: saved, but neither the task nor the draft takes them
    page = browser.client.get(f"/tasks/{task_id}").get_data(as_text=True)
    version = re.search(r'name="version" value="(\d+)"', page)
    assert version, "no version on the task page"
    form = {"action": "draft", "version": version.group(1), **extra}
    response = browser.post(f"/tasks/{task_id}", form)
    assert response.status_code == 303, response.status_code
    assert _task_state(app, task_id) == original
    db = app.extensions["lotsen_db"]()
    draft = db.execute(select(Draft).where(Draft.task_id == task_id)).scalar_one()
    assert not set(draft.data) & set(extra), draft.data
    db.close()

    # claiming with somebody else named as assignee: the caller gets it, nobody else
    response = browser.post(f"/tasks/{task_id}/claim", extra)
    assert response.status_code == 303
    me = _task_state(app, task_id)
    assert me[:2] == original[:2] and me[2] not in (None, other_user)
    response = browser.post(f"/tasks/{task_id}/unclaim", extra)
    assert response.status_code == 303
    assert _task_state(app, task_id) == original

    # the JSON API: extra keys at the top and inside ``data`` are ignored as well
    api = app.test_client()
    token = bearer(app, "handlaggare")
    json_extra = {"role": "admin", "unit_id": barn_id, "assignee": "me", "assignee_id": other_user}
    claimed = api.post(f"/api/v1/tasks/{task_id}/claim", json=json_extra, headers=token)
    assert claimed.status_code == 200, claimed.get_data(as_text=True)
    body = claimed.get_json()
    assert body["role"] == "caseworker" and body["assignee_id"] == me[2]
    assert _task_state(app, task_id) == me

    # a new case: the unit comes from the caller's roles, never from a posted field
    db = app.extensions["lotsen_db"]()
    before = db.execute(select(func.count()).select_from(Case)).scalar_one()
    db.close()
    from matrix_kit import scenario

    created = api.post(
        "/api/v1/cases",
        json={
            "procedure": "identification",
            "data": scenario()["intake"],
            **json_extra,
        },
        headers=token,
    )
    assert created.status_code == 201, created.get_data(as_text=True)
    assert created.get_json()["unit"] == "vuxenenheten"
    db = app.extensions["lotsen_db"]()
    assert db.execute(select(func.count()).select_from(Case)).scalar_one() == before + 1
    newest = db.execute(select(Case).order_by(Case.id.desc()).limit(1)).scalar_one()
    assert newest.unit_id == adult_id
    db.close()
