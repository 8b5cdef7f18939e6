"""Helpers for the route matrix, CSRF and hardening tests (no tests here).

``arrange_world`` drives real identification cases (scenario 01) through ``engine.actions`` in
both demo units, so every kind of object a route can take exists in "own" and "other" unit:

* ``case``: an open caseworker task, finished tasks, an approved D-A6 decision and its PDF;
* ``proposal_case``: a D-A6 decision proposed and waiting for the supervisor.

``POLICY`` is the route inventory: one ``Rule`` per (endpoint, method) of ``app.url_map``, saying
who may use it on which object. The groups are written out here from the access rules of
design.md §5 (team, oversight, open task of one's role and unit), not computed by
``engine.access``, so the matrix checks the engine instead of repeating it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session
from werkzeug.datastructures import MultiDict

from engine import actions
from engine.audit import Actor
from engine.models import (
    AuditEntry,
    Case,
    CaseMember,
    Decision,
    Document,
    Draft,
    JournalNote,
    OpenTask,
    ProcessInstance,
    RoleAssignment,
    Subject,
    Unit,
    User,
)
from engine.processes import latest_published, model_for
from forms import load_form_spec
from tests.conftest import finish_login
from webapp.tokens import issue_token

SCENARIO = (
    Path(__file__).resolve().parents[2]
    / "bpmn"
    / "identification"
    / "scenarios"
    / "01_presumed_trafficking_begging_reported.json"
)
CSRF_RE = r'name="csrf_token"[^>]*value="([^"]+)"'

USERS = (
    "handlaggare",
    "handlaggare.barn",
    "kvinnofrid",
    "arbetsledare",
    "arbetsledare.barn",
    "enhetschef",
    "samordnare",
    "huge",
    "mottagning",
    "mottagning.barn",
    "polis",
    "processagare",
    "processagare2",
    "granskare",
    "admin",
)
ANONYMOUS = "anonymous"
UNITS = ("vuxenenheten", "barn_och_unga")
CASEWORKER_OF = {"vuxenenheten": "handlaggare", "barn_och_unga": "handlaggare.barn"}
SUPERVISOR_OF = {"vuxenenheten": "arbetsledare", "barn_och_unga": "arbetsledare.barn"}
UNIT_MANAGER = "enhetschef"  # unit manager of both units
COORDINATOR = "samordnare"  # records the consultation in scenario 01, so joins the team
#: Who completes which step of scenario 01 besides the unit's caseworker.
STEP_USER = {"task_record_consultation": COORDINATOR}


# --- extension points (filled by the ``matrix_ext_*`` modules, loaded at the end) ----------------

#: policy groups beyond the built-in ones: a set of usernames, or a function of the unit world
EXTRA_GROUPS: dict[str, Any] = {}
#: ``hook(app, db, world) -> {kind: value}`` run after a unit is arranged (commit what you add)
WORLD_HOOKS: list[Any] = []
#: more models whose row counts a refused request must not change
SNAPSHOT_MODELS: list[Any] = []


# --- the arranged data ---------------------------------------------------------------------------


@dataclass(frozen=True)
class UnitWorld:
    """The objects of one unit, and who may do what with them (design.md §5)."""

    unit: str
    unit_id: int
    case_id: int
    open_task: str
    done_task: str
    approved_decision: int
    document: int
    proposal_case_id: int
    proposed_decision: int
    approval_task: str
    #: objects added by the ``matrix_ext_*`` modules' world hooks (kind -> route value)
    extras: Mapping[str, Any] = field(default_factory=dict)

    @property
    def caseworker(self) -> str:
        return CASEWORKER_OF[self.unit]

    @property
    def supervisor(self) -> str:
        return SUPERVISOR_OF[self.unit]

    def group(self, name: str) -> frozenset[str]:
        """The users of a policy group for this unit's objects."""
        groups = {
            # case team (creator, workers, approver) plus the unit's oversight roles
            "readers": {self.caseworker, self.supervisor, UNIT_MANAGER, COORDINATOR},
            # an open caseworker task: the unit's caseworkers (free or theirs)
            "workers": {self.caseworker},
            # an open approval task (supervisor lane of the unit)
            "task_approvers": {self.supervisor},
            # who decides: the supervisor, or the unit manager standing in for them
            "approvers": {self.supervisor, UNIT_MANAGER},
            "unit_caseworkers": {self.caseworker},
            "all": set(USERS),
            "caseworkers": set(CASEWORKER_OF.values()),
            "admins": {"admin"},
            "nobody": set(),
            "auditors": {"granskare"},
        }
        if name not in groups:
            extra = EXTRA_GROUPS[name]
            return frozenset(extra(self) if callable(extra) else extra)
        return frozenset(groups[name])

    def value(self, kind: str) -> Any:
        """The id of an object kind (the route variable's value)."""
        return {
            "case": self.case_id,
            "proposal_case": self.proposal_case_id,
            "open_task": self.open_task,
            "done_task": self.done_task,
            "approval_task": self.approval_task,
            "approved_decision": self.approved_decision,
            "proposed_decision": self.proposed_decision,
            "document": self.document,
            "unit": self.unit,
            **self.extras,
        }[kind]


def scenario() -> dict[str, Any]:
    return json.loads(SCENARIO.read_text(encoding="utf-8"))  # type: ignore[no-any-return]


def actor_of(db: Session, username: str) -> Actor:
    user = db.execute(select(User).where(User.username == username)).scalar_one()
    return Actor(
        user_id=user.id,
        username=user.username,
        roles=frozenset((r.role, r.unit_id) for r in user.roles),
    )


def user_id(db: Session, username: str) -> int:
    return int(db.execute(select(User.id).where(User.username == username)).scalar_one())


def unit_id_of(db: Session, key: str) -> int:
    return int(db.execute(select(Unit.id).where(Unit.key == key)).scalar_one())


def _open_task(db: Session, case_id: int, bpmn_id: str | None = None) -> OpenTask:
    query = select(OpenTask).where(OpenTask.case_id == case_id, OpenTask.status == "open")
    if bpmn_id is not None:
        query = query.where(OpenTask.bpmn_id == bpmn_id)
    return db.execute(query).scalar_one()


def drive_case(
    app: Flask,
    db: Session,
    unit: str,
    *,
    approve: bool,
    intake: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """A scenario-01 case of ``unit`` run until D-A6 is proposed (and approved, with its PDF).

    The unit's caseworker registers it and works it; the coordinator records the consultation;
    with ``approve`` the unit's supervisor approves and the decision PDF is filed.
    Returns the ids: case, decision, document, done task, open task. Commits.
    """
    from webapp.services import decide_with_document

    plan = scenario()
    version = latest_published(db, "identification")
    start_form = load_form_spec(version.forms[model_for(version).start_form_key])
    caseworker = actor_of(db, CASEWORKER_OF[unit])
    case = actions.start_case(
        db,
        caseworker,
        procedure="identification",
        unit_id=unit_id_of(db, unit),
        intake={**start_form.empty_data(), **(intake or plan["intake"])},
        subject_fields=start_form.subject_fields,
    )
    ids: dict[str, Any] = {"case_id": case.id, "document_id": None}
    for step in plan["steps"]:
        task = _open_task(db, case.id, step["complete"])
        spec = load_form_spec(version.forms[task.form_key])
        who = actor_of(db, STEP_USER.get(step["complete"], CASEWORKER_OF[unit]))
        result = actions.complete_task(
            db, who, task_id=task.id, data={**spec.empty_data(), **step["data"]}
        )
        ids.setdefault("done_task_id", task.id)
        if result.decision_id is not None:
            ids["decision_id"] = result.decision_id
            break
    if approve:
        with app.app_context():
            decide_with_document(
                db,
                actor_of(db, SUPERVISOR_OF[unit]),
                ids["decision_id"],
                approve=True,
                comment=None,
            )
        ids["document_id"] = db.execute(
            select(Document.id).where(Document.decision_id == ids["decision_id"])
        ).scalar_one()
    ids["open_task_id"] = _open_task(db, case.id).id
    db.commit()
    return ids


def arrange_unit(app: Flask, db: Session, unit: str) -> UnitWorld:
    """Both cases of one unit (see the module docstring)."""
    done = drive_case(app, db, unit, approve=True)
    proposal = drive_case(app, db, unit, approve=False)
    open_task = db.get(OpenTask, done["open_task_id"])
    approval = db.get(OpenTask, proposal["open_task_id"])
    assert open_task is not None and open_task.role == "caseworker"
    assert approval is not None and approval.decision_id == proposal["decision_id"]
    world = UnitWorld(
        unit=unit,
        unit_id=unit_id_of(db, unit),
        case_id=done["case_id"],
        open_task=open_task.id,
        done_task=done["done_task_id"],
        approved_decision=done["decision_id"],
        document=done["document_id"],
        proposal_case_id=proposal["case_id"],
        proposed_decision=proposal["decision_id"],
        approval_task=approval.id,
    )
    extras: dict[str, Any] = {}
    for hook in WORLD_HOOKS:
        extras.update(hook(app, db, world))
    return replace(world, extras=extras) if extras else world


def arrange_world(app: Flask) -> dict[str, UnitWorld]:
    """The arranged objects of both demo units, committed."""
    db = app.extensions["lotsen_db"]()
    try:
        return {unit: arrange_unit(app, db, unit) for unit in UNITS}
    finally:
        db.close()


# --- state: what a refused request must not change -----------------------------------------------


def snapshot(app: Flask) -> dict[str, Any]:
    """Everything a POST could change except the audit log (which records the refusal)."""
    db: Session = app.extensions["lotsen_db"]()
    try:
        tasks = {
            row.id: tuple(row[1:])
            for row in db.execute(
                select(
                    OpenTask.id,
                    OpenTask.status,
                    OpenTask.assignee_id,
                    OpenTask.role,
                    OpenTask.unit_id,
                    OpenTask.completed_by_id,
                    OpenTask.case_id,
                )
            )
        }
        decisions = {
            row.id: tuple(row[1:])
            for row in db.execute(select(Decision.id, Decision.status, Decision.decided_by_id))
        }
        models = (
            Case,
            CaseMember,
            Subject,
            JournalNote,
            Draft,
            Document,
            User,
            RoleAssignment,
            *SNAPSHOT_MODELS,
        )
        counts = db.execute(
            select(*(select(func.count()).select_from(m).scalar_subquery() for m in models))
        ).one()
        instances = dict(db.execute(select(ProcessInstance.id, ProcessInstance.version)).all())
        return {
            "tasks": tasks,
            "decisions": decisions,
            "instances": instances,
            "counts": dict(zip((m.__tablename__ for m in models), counts, strict=True)),
        }
    finally:
        db.close()


def diff(before: Mapping[str, Any], after: Mapping[str, Any]) -> dict[str, Any]:
    """What changed between two snapshots (empty when nothing did)."""
    changes: dict[str, Any] = {}
    for key in before:
        if isinstance(before[key], dict):
            keys = set(before[key]) | set(after[key])
            delta = {
                k: (before[key].get(k), after[key].get(k))
                for k in keys
                if before[key].get(k) != after[key].get(k)
            }
            if delta:
                changes[key] = delta
        elif before[key] != after[key]:
            changes[key] = (before[key], after[key])
    return changes


def audit_head(app: Flask) -> int:
    db: Session = app.extensions["lotsen_db"]()
    try:
        return int(db.execute(select(func.coalesce(func.max(AuditEntry.seq), 0))).scalar_one())
    finally:
        db.close()


def audit_since(app: Flask, seq: int) -> list[AuditEntry]:
    db: Session = app.extensions["lotsen_db"]()
    try:
        rows = db.execute(
            select(AuditEntry).where(AuditEntry.seq > seq).order_by(AuditEntry.seq)
        ).scalars()
        entries = list(rows)
        db.expunge_all()
        return entries
    finally:
        db.close()


# --- callers -------------------------------------------------------------------------------------


def csrf_of(html: str) -> str:
    import re

    match = re.search(CSRF_RE, html)
    assert match, "no CSRF token on the page"
    return match.group(1)


@dataclass
class Browser:
    """A test client, who it is logged in as, and the CSRF token of its session."""

    client: FlaskClient
    username: str
    csrf: str

    def post(self, url: str, data: Any = None, **kwargs: Any) -> Any:
        items = list(data.items()) if isinstance(data, Mapping) else list(data or [])
        form = MultiDict([("csrf_token", self.csrf), *items])
        return self.client.post(url, data=form, **kwargs)


def login_browser(app: Flask, username: str, password: str = "demo") -> Browser:
    """A client logged in through the real login form, with its session's CSRF token."""
    client = app.test_client()
    token = csrf_of(client.get("/login").get_data(as_text=True))
    response = client.post(
        "/login", data={"username": username, "password": password, "csrf_token": token}
    )
    assert response.status_code == 303, f"login of {username}: {response.status_code}"
    response = finish_login(client, response, username)
    assert response.status_code == 303, f"TOTP step of {username}: {response.status_code}"
    page = client.get("/")
    assert page.status_code == 200
    return Browser(client, username, csrf_of(page.get_data(as_text=True)))


def anonymous_browser(app: Flask) -> Browser:
    client = app.test_client()
    return Browser(client, ANONYMOUS, csrf_of(client.get("/login").get_data(as_text=True)))


def bearer(app: Flask, username: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {issue_token(app.extensions['lotsen'], username)}"}


# --- the policy table ----------------------------------------------------------------------------

DENY = frozenset({403, 404})


@dataclass(frozen=True)
class Rule:
    """Who may use one (endpoint, method), and how the matrix probes it.

    ``access``: "public" (anyone, also anonymous), "login" (``who`` names a group of users) or
    "object" (``objects`` maps each object kind the route takes to the group allowed on it).
    ``body``: the probe (form fields, or JSON for the API) built from the unit's objects.
    ``harmless``: an allowed probe must not change anything either (it fails validation after
    the access check). ``phase``: probes that change state run after the read-only ones, and
    within a phase every denied cell runs before any allowed one.
    """

    access: str
    who: str = "all"
    objects: Mapping[str, str] = field(default_factory=dict)
    body: Any = None
    harmless: bool = False
    phase: int = 1
    allow: frozenset[int] | None = None
    deny: frozenset[int] = DENY

    def allowed_users(self, world: UnitWorld | None, kind: str | None) -> frozenset[str]:
        if self.access == "public":
            return frozenset(USERS) | {ANONYMOUS}
        assert world is not None or not self.objects
        ref = world or _ANY_UNIT
        return ref.group(self.objects[kind] if kind else self.who)


_ANY_UNIT = UnitWorld("vuxenenheten", 0, 0, "", "", 0, 0, 0, 0, "")

TASK_OBJECTS = {"open_task": "workers", "done_task": "readers", "approval_task": "task_approvers"}
CASE_OBJECTS = {"case": "readers", "proposal_case": "readers"}
DECISION_OBJECTS = {"approved_decision": "readers", "proposed_decision": "readers"}
#: approve/return: the unit's supervisor, or its unit manager standing in (escalation)
DECIDE_OBJECTS = {"approved_decision": "approvers", "proposed_decision": "approvers"}


def _incomplete_login(_: UnitWorld | None) -> dict[str, str]:
    # no password: refused by the form before the (slow, by design) argon2 check
    return {"username": "handlaggare"}


POLICY: dict[tuple[str, str], Rule] = {
    # --- pages -----------------------------------------------------------------------------------
    ("auth.login", "GET"): Rule("public"),
    ("auth.login", "POST"): Rule("public", body=_incomplete_login, allow=frozenset({422})),
    ("auth.logout", "POST"): Rule("public", phase=9),
    # the code step: without a pending login everybody is sent on (to the inbox or the login)
    ("auth.totp", "GET"): Rule("public"),
    ("auth.totp", "POST"): Rule("public", body=lambda w: {"code": "000000"}, harmless=True),
    ("auth.reauth", "GET"): Rule("login"),
    ("auth.reauth", "POST"): Rule("login", body=lambda w: {}, harmless=True),
    ("account.sessions", "GET"): Rule("login"),
    ("account.end_sessions", "POST"): Rule("login", body=lambda w: {}, harmless=True),
    ("account.totp", "GET"): Rule("login"),
    ("account.totp_change", "POST"): Rule("login", body=lambda w: {}, harmless=True),
    ("admin.users", "GET"): Rule("login", who="admins"),
    ("admin.change_user", "POST"): Rule("login", who="admins", body=lambda w: {}, harmless=True),
    ("main.index", "GET"): Rule("login"),
    ("main.language", "POST"): Rule("public", body=lambda w: {"lang": "sv", "next": "/"}),
    ("main.health", "GET"): Rule("public"),
    ("cases.index", "GET"): Rule("login"),
    ("cases.new", "GET"): Rule("login", who="caseworkers"),
    ("cases.new", "POST"): Rule("login", who="caseworkers", body=lambda w: {}, harmless=True),
    ("cases.show", "GET"): Rule("object", objects=CASE_OBJECTS),
    ("cases.add_note", "POST"): Rule(
        "object", objects=CASE_OBJECTS, body=lambda w: {"title": "", "text": ""}, harmless=True
    ),
    # consents: an empty form fails validation after the access check (422); withdrawing a
    # consent the case does not have is a 404 for the case's readers too
    ("cases.add_consent", "POST"): Rule(
        "object",
        objects=CASE_OBJECTS,
        body=lambda w: {},
        harmless=True,
        allow=frozenset({422}),
    ),
    ("cases.withdraw_consent", "POST"): Rule(
        "object",
        objects=CASE_OBJECTS,
        body=lambda w: {"consent_id": "0"},
        harmless=True,
        allow=frozenset({404}),
    ),
    # only an open disclosure step of one's own can be overridden: the arranged open task is
    # the D-A7 police-report proposal (a disclosure); an empty reason is sent back (303)
    ("tasks.request_override", "POST"): Rule(
        "object",
        objects={"open_task": "workers", "done_task": "nobody", "approval_task": "nobody"},
        body=lambda w: {"override_reason": ""},
        harmless=True,
        deny=frozenset({403, 404, 409}),
    ),
    ("tasks.show", "GET"): Rule("object", objects=TASK_OBJECTS),
    # no version: refused with 400 after the access check (a finished task gives 409)
    ("tasks.submit", "POST"): Rule(
        "object", objects=TASK_OBJECTS, body=lambda w: {"action": "complete"}
    ),
    ("tasks.claim", "POST"): Rule("object", objects=TASK_OBJECTS, body=lambda w: {}, phase=2),
    # after the claim phase the open tasks belong to their worker; a finished task is never
    # released (403/404, or 409 "already completed")
    ("tasks.unclaim", "POST"): Rule(
        "object",
        objects={**TASK_OBJECTS, "done_task": "nobody"},
        body=lambda w: {},
        phase=3,
        deny=frozenset({403, 404, 409}),
    ),
    ("decisions.show", "GET"): Rule("object", objects=DECISION_OBJECTS),
    ("decisions.decide", "POST"): Rule(
        "object", objects=DECIDE_OBJECTS, body=lambda w: {"approve": "Godkänn"}, phase=4
    ),
    ("decisions.document", "GET"): Rule("object", objects={"document": "readers"}),
    # --- JSON API --------------------------------------------------------------------------------
    ("api.openapi", "GET"): Rule("public"),
    ("api.me", "GET"): Rule("login"),
    ("api.processes", "GET"): Rule("login"),
    ("api.list_tasks", "GET"): Rule("login"),
    ("api.create_case", "POST"): Rule(
        "object",
        objects={"unit": "unit_caseworkers"},
        body=lambda w: {"procedure": "identification", "unit": w.unit, "data": "x"},
        harmless=True,
    ),
    ("api.get_case", "GET"): Rule("object", objects=CASE_OBJECTS),
    ("api.get_task", "GET"): Rule("object", objects=TASK_OBJECTS),
    ("api.claim_task", "POST"): Rule("object", objects=TASK_OBJECTS, body=lambda w: {}, phase=2),
    ("api.complete_task", "POST"): Rule(
        "object",
        objects=TASK_OBJECTS,
        body=lambda w: {"data": "x", "version": "x"},
        harmless=True,
    ),
    ("api.get_decision", "GET"): Rule("object", objects=DECISION_OBJECTS),
    ("api.approve_decision", "POST"): Rule(
        "object", objects=DECIDE_OBJECTS, body=lambda w: {}, phase=4
    ),
    ("api.return_decision", "POST"): Rule(
        "object", objects=DECIDE_OBJECTS, body=lambda w: {"comment": "Route matrix"}, phase=4
    ),
    ("api.decision_pdf", "GET"): Rule("object", objects={"approved_decision": "readers"}),
    # --- auditor pages (log follow-up): the auditor role only; empty posts fail validation ----
    ("audit.index", "GET"): Rule("login", who="auditors"),
    ("audit.signals", "GET"): Rule("login", who="auditors"),
    ("audit.reviews", "GET"): Rule("login", who="auditors"),
    ("audit.person", "POST"): Rule(
        "login", who="auditors", body=lambda w: {}, harmless=True, allow=frozenset({422})
    ),
    ("audit.draw", "POST"): Rule(
        "login", who="auditors", body=lambda w: {}, harmless=True, allow=frozenset({422})
    ),
    ("audit.finding", "POST"): Rule(
        "login", who="auditors", body=lambda w: {}, harmless=True, allow=frozenset({422})
    ),
    ("audit.extract", "POST"): Rule(
        "login", who="auditors", body=lambda w: {}, harmless=True, allow=frozenset({422})
    ),
}

#: Methods Flask adds by itself; they follow GET.
IMPLICIT_METHODS = frozenset({"HEAD", "OPTIONS"})


def route_inventory(app: Flask) -> dict[tuple[str, str], Any]:
    """Every (endpoint, method) of the url_map except static files, with its rule."""
    inventory: dict[tuple[str, str], Any] = {}
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static":
            continue
        for method in sorted((rule.methods or set()) - IMPLICIT_METHODS):
            inventory[(rule.endpoint, method)] = rule
    return inventory


def unknown_routes(app: Flask, known: Mapping[tuple[str, str], Any]) -> list[str]:
    """Routes of the app that the table does not cover (a new route needs a policy)."""
    return sorted(
        f"{method} {rule.rule} ({endpoint})"
        for (endpoint, method), rule in route_inventory(app).items()
        if (endpoint, method) not in known
    )


def url_for_rule(app: Flask, rule: Any, world: UnitWorld | None, kind: str | None) -> str:
    """The URL of ``rule`` with the object of ``kind`` filled in."""
    values = {}
    if rule.arguments:
        assert world is not None and kind is not None, rule.rule
        (name,) = rule.arguments
        values[name] = world.value(kind)
    adapter = app.url_map.bind("localhost")
    return str(adapter.build(rule.endpoint, values, method=None))


def iter_objects(rule: Rule, worlds: Mapping[str, UnitWorld]) -> Iterator[tuple[Any, Any]]:
    """(unit world, object kind) pairs a rule is probed with; (None, None) for plain routes."""
    if rule.access != "object":
        yield None, None
        return
    for unit in UNITS:
        for kind in rule.objects:
            yield worlds[unit], kind


def as_form(data: Mapping[str, Any]) -> list[tuple[str, str]]:
    """Task data as a browser posts it: lists repeated, booleans "y" or left out."""
    items: list[tuple[str, str]] = []
    for key, value in data.items():
        if value is None or value is False:
            continue
        if value is True:
            items.append((key, "y"))
        elif isinstance(value, list):
            items.extend((key, str(item)) for item in value)
        else:
            items.append((key, str(value)))
    return items


def hidden_value(html: str, name: str) -> str:
    """The value of a hidden input on a page."""
    import re

    match = re.search(rf'name="{name}"[^>]*value="([^"]*)"', html) or re.search(
        rf'value="([^"]*)"[^>]*name="{name}"', html
    )
    assert match, f"no {name} on the page"
    return match.group(1)


def _load_extensions() -> None:
    """Import every ``matrix_ext_*`` module beside this one; each adds its policies and hooks.

    The modules import this one as ``matrix_kit`` (the name the tests use), so they share
    ``POLICY`` and the extension lists above.
    """
    import importlib

    for path in sorted(Path(__file__).parent.glob("matrix_ext_*.py")):
        importlib.import_module(path.stem)


_load_extensions()
