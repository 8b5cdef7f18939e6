"""CSRF on every state-changing route (security.md §1 row 16, §6 cases 9-10).

Each non-GET route of ``app.url_map`` needs an entry here (a new one fails the suite). An HTML
form post without a token, with a token of another session, or as a cross-site auto-submit
from https://evil.example gets 400 and changes nothing; the same post with the session's own
token then works (so the 400 came from the CSRF check, not from a bad form). API calls made
with the session cookie need the ``X-CSRFToken`` header (and a same-site Origin); bearer-token
calls need no CSRF token.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from zoneinfo import ZoneInfo

from flask import Flask
from flask.testing import FlaskClient
from matrix_kit import (
    Browser,
    UnitWorld,
    anonymous_browser,
    arrange_unit,
    as_form,
    bearer,
    csrf_of,
    hidden_value,
    login_browser,
    route_inventory,
    scenario,
)
from sqlalchemy import func, select
from werkzeug.datastructures import MultiDict

from engine.audit_queries import draw_sample
from engine.db import unit_of_work, utcnow
from engine.models import (
    AuditEntry,
    Case,
    Consent,
    Decision,
    Draft,
    JournalNote,
    LogReview,
    LogReviewItem,
    OpenTask,
    Subject,
    User,
    WebSession,
)
from tests.conftest import actor, totp_code

EVIL = {"Origin": "https://evil.example", "Referer": "https://evil.example/lure.html"}


@dataclass
class Attempt:
    """A form post a victim's browser would make, and how to see whether it took effect."""

    browser: Browser
    url: str
    form: list[tuple[str, str]]
    effect: Callable[[], Any]
    #: the control (own token) changes the state; otherwise it only gets past the CSRF check
    changes: bool = True


class Context:
    """One arranged unit and the browsers of the people involved."""

    def __init__(self, app: Flask) -> None:
        self.app = app
        db = app.extensions["lotsen_db"]()
        try:
            self.world: UnitWorld = arrange_unit(app, db, "vuxenenheten")
        finally:
            db.close()
        self.caseworker = login_browser(app, "handlaggare")
        self.supervisor = login_browser(app, "arbetsledare")
        self.other = login_browser(app, "samordnare")  # the "other session" whose token leaks

    def scalar(self, query: Any) -> Any:
        db = self.app.extensions["lotsen_db"]()
        try:
            return db.execute(query).scalar_one()
        finally:
            db.close()

    def count(self, model: Any) -> int:
        return int(self.scalar(select(func.count()).select_from(model)))

    def assignee(self) -> Any:
        return self.scalar(select(OpenTask.assignee_id).where(OpenTask.id == self.world.open_task))


def _status(client: FlaskClient, url: str = "/") -> int:
    return client.get(url).status_code


def _login(ctx: Context) -> Attempt:
    victim = anonymous_browser(ctx.app)
    form = [("username", "handlaggare"), ("password", "demo")]
    return Attempt(victim, "/login", form, lambda: _status(victim.client))


def _language(ctx: Context) -> Attempt:
    browser = ctx.caseworker
    return Attempt(
        browser,
        "/language",
        [("lang", "en"), ("next", "/")],
        lambda: '<html lang="en">' in browser.client.get("/").get_data(as_text=True),
    )


def _new_case(ctx: Context) -> Attempt:
    form = as_form(scenario()["intake"])
    return Attempt(ctx.caseworker, "/cases/new", form, lambda: ctx.count(Case))


def _note(ctx: Context) -> Attempt:
    url = f"/cases/{ctx.world.case_id}/journal"
    form = [("title", "Anteckning"), ("text", "Skriven av en annan webbplats?")]
    return Attempt(ctx.caseworker, url, form, lambda: ctx.count(JournalNote))


def _consent(ctx: Context) -> Attempt:
    url = f"/cases/{ctx.world.case_id}/consents"
    form = [("purpose", "CONSENT_NSP"), ("form", "oral"), ("given_on", "2026-11-20")]
    return Attempt(ctx.caseworker, url, form, lambda: ctx.count(Consent))


def _withdraw(ctx: Context) -> Attempt:
    # runs after the consent control above recorded one
    consent_id = ctx.scalar(
        select(func.max(Consent.id)).where(Consent.case_id == ctx.world.case_id)
    )
    url = f"/cases/{ctx.world.case_id}/consents/withdraw"
    return Attempt(
        ctx.caseworker,
        url,
        [("consent_id", str(consent_id))],
        lambda: ctx.count(select(Consent).where(Consent.withdrawn_on.is_not(None)).subquery()),
    )


def _override(ctx: Context) -> Attempt:
    url = f"/tasks/{ctx.world.open_task}/override"
    form = [("override_reason", "Skriven av en annan webbplats?")]
    # the open task is no disclosure step: with its token the post is refused past CSRF (403)
    return Attempt(ctx.caseworker, url, form, lambda: ctx.count(Decision), changes=False)


def _draft(ctx: Context) -> Attempt:
    url = f"/tasks/{ctx.world.open_task}"
    page = ctx.caseworker.client.get(url).get_data(as_text=True)
    form = [
        ("action", "draft"),
        ("version", hidden_value(page, "version")),
        ("submission_id", hidden_value(page, "submission_id")),
        ("police_reasons", "Utkast från en annan webbplats"),
    ]
    return Attempt(ctx.caseworker, url, form, lambda: ctx.count(Draft))


def _claim(ctx: Context) -> Attempt:
    url = f"/tasks/{ctx.world.open_task}/claim"
    return Attempt(ctx.caseworker, url, [], ctx.assignee)


def _unclaim(ctx: Context) -> Attempt:  # runs after the claim went through
    url = f"/tasks/{ctx.world.open_task}/unclaim"
    return Attempt(ctx.caseworker, url, [], ctx.assignee)


def _decide(ctx: Context) -> Attempt:
    decision = ctx.world.proposed_decision
    return Attempt(
        ctx.supervisor,
        f"/decisions/{decision}",
        [("approve", "Godkänn")],
        lambda: ctx.scalar(select(Decision.status).where(Decision.id == decision)),
    )


# --- login, account and admin forms (auth, account, admin blueprints) ---------------------------


def _user_value(ctx: Context, username: str, column: Any) -> Any:
    return ctx.scalar(select(column).where(User.username == username))


def _session_data(ctx: Context, browser: Browser) -> Any:
    cookie = browser.client.get_cookie(ctx.app.config["SESSION_COOKIE_NAME"])
    assert cookie is not None
    digest = hashlib.sha256(cookie.value.encode()).hexdigest()
    return ctx.scalar(select(WebSession.data).where(WebSession.id_hash == digest))


def _totp(ctx: Context) -> Attempt:
    """The code step of a supervisor's login (the password was sent with its token)."""
    victim = anonymous_browser(ctx.app)
    response = victim.post("/login", {"username": "arbetsledare", "password": "demo"})
    assert response.headers["Location"].startswith("/login/totp")
    page = victim.client.get("/login/totp").get_data(as_text=True)
    browser = Browser(victim.client, "arbetsledare", csrf_of(page))
    code = totp_code(ctx.app, "arbetsledare", page)
    return Attempt(browser, "/login/totp", [("code", code)], lambda: _status(victim.client))


def _reauth(ctx: Context) -> Attempt:
    browser = ctx.caseworker
    return Attempt(
        browser,
        "/reauth",
        [("password", "demo")],
        lambda: _session_data(ctx, browser).get("auth_at"),
    )


def _end_sessions(ctx: Context) -> Attempt:
    login_browser(ctx.app, "handlaggare")  # another session of the same user
    uid = _user_value(ctx, "handlaggare", User.id)
    return Attempt(
        ctx.caseworker,
        "/account/sessions",
        [("action", "end_others")],
        lambda: ctx.scalar(
            select(func.count()).select_from(WebSession).where(WebSession.user_id == uid)
        ),
    )


def _totp_enrol(ctx: Context) -> Attempt:
    browser = ctx.caseworker
    page = browser.client.get("/account/totp").get_data(as_text=True)
    code = totp_code(ctx.app, "handlaggare", page)
    return Attempt(
        browser,
        "/account/totp",
        [("action", "enrol"), ("code", code)],
        lambda: _user_value(ctx, "handlaggare", User.totp_secret) is not None,
    )


def _admin_disable(ctx: Context) -> Attempt:
    admin = login_browser(ctx.app, "admin")
    uid = _user_value(ctx, "huge", User.id)
    return Attempt(
        admin,
        "/admin/users",
        [("user_id", str(uid)), ("action", "disable")],
        lambda: _user_value(ctx, "huge", User.active),
    )


# --- auditor pages (audit blueprint) -------------------------------------------------------------


def _auditor(ctx: Context) -> Browser:
    """One logged-in auditor for all audit forms (a second factor is needed for each login)."""
    if not hasattr(ctx, "auditor"):
        ctx.auditor = login_browser(ctx.app, "granskare")  # type: ignore[attr-defined]
    return ctx.auditor  # type: ignore[attr-defined,no-any-return]


def _audit_count(ctx: Context, action: str) -> int:
    return int(
        ctx.scalar(select(func.count()).select_from(AuditEntry).where(AuditEntry.action == action))
    )


def _audit_person(ctx: Context) -> Attempt:
    return Attempt(
        _auditor(ctx),
        "/audit/person",
        [("personnummer", "19811218-9876")],
        lambda: _audit_count(ctx, "audit:searched"),
    )


def _audit_draw(ctx: Context) -> Attempt:
    today = utcnow().astimezone(ZoneInfo("Europe/Stockholm")).date().isoformat()
    return Attempt(
        _auditor(ctx),
        "/audit/reviews/draw",
        [("from", today), ("to", today), ("size", "1")],
        lambda: ctx.count(LogReview),
    )


def _audit_finding(ctx: Context) -> Attempt:
    now = utcnow()
    with unit_of_work(ctx.app.extensions["lotsen_db"]) as db:
        review = draw_sample(db, actor(db, "granskare"), now - timedelta(days=1), now, 1)
        item = db.execute(
            select(LogReviewItem.id).where(LogReviewItem.review_id == review).limit(1)
        ).scalar_one()
    return Attempt(
        _auditor(ctx),
        "/audit/reviews/finding",
        [("review", str(review)), ("item", str(item)), ("finding", "ok")],
        lambda: ctx.scalar(select(LogReviewItem.finding).where(LogReviewItem.id == item)),
    )


def _audit_extract(ctx: Context) -> Attempt:
    subject = ctx.scalar(select(Subject.id).where(Subject.case_id == ctx.world.case_id).limit(1))
    return Attempt(
        _auditor(ctx),
        "/audit/extract",
        [("subject", str(subject))],
        lambda: _audit_count(ctx, "audit:extract_created"),
    )


def _logout(ctx: Context) -> Attempt:
    browser = ctx.caseworker
    return Attempt(browser, "/logout", [], lambda: _status(browser.client))


#: Every non-GET HTML route, in the order they are tried (claim before unclaim, logout last).
HTML_ROUTES: dict[tuple[str, str], Callable[[Context], Attempt]] = {
    ("auth.login", "POST"): _login,
    ("main.language", "POST"): _language,
    ("cases.new", "POST"): _new_case,
    ("cases.add_note", "POST"): _note,
    ("cases.add_consent", "POST"): _consent,
    ("cases.withdraw_consent", "POST"): _withdraw,
    ("tasks.request_override", "POST"): _override,
    ("tasks.submit", "POST"): _draft,
    ("tasks.claim", "POST"): _claim,
    ("tasks.unclaim", "POST"): _unclaim,
    ("decisions.decide", "POST"): _decide,
    ("auth.totp", "POST"): _totp,
    ("auth.reauth", "POST"): _reauth,
    ("account.end_sessions", "POST"): _end_sessions,
    ("account.totp_change", "POST"): _totp_enrol,
    ("admin.change_user", "POST"): _admin_disable,
    ("audit.person", "POST"): _audit_person,
    ("audit.draw", "POST"): _audit_draw,
    ("audit.finding", "POST"): _audit_finding,
    ("audit.extract", "POST"): _audit_extract,
    ("auth.logout", "POST"): _logout,
}


def _writes(app: Flask, api: bool) -> set[tuple[str, str]]:
    return {
        key
        for key, rule in route_inventory(app).items()
        if key[1] != "GET" and rule.rule.startswith("/api/") == api
    }


def test_every_html_form_post_needs_the_sessions_csrf_token(app: Flask) -> None:
    unknown = _writes(app, api=False) - set(HTML_ROUTES)
    assert not unknown, f"state-changing routes without a CSRF test: {sorted(unknown)}"
    ctx = Context(app)
    failures = []
    for (endpoint, _method), build in HTML_ROUTES.items():
        attempt = build(ctx)
        client = attempt.browser.client
        before = attempt.effect()
        tries = {
            "no token": client.post(attempt.url, data=MultiDict(attempt.form)),
            "another session's token": client.post(
                attempt.url, data=MultiDict([("csrf_token", ctx.other.csrf), *attempt.form])
            ),
            "cross-site auto-submit": client.post(
                attempt.url, data=MultiDict(attempt.form), headers=EVIL
            ),
        }
        for name, response in tries.items():
            if response.status_code != 400:
                failures.append(f"{endpoint} {name}: {response.status_code}, expected 400")
        if attempt.effect() != before:
            failures.append(f"{endpoint}: a post without a valid token took effect")
        # the control: the very same post from the page's own session works
        response = attempt.browser.post(attempt.url, attempt.form)
        if not attempt.changes:
            if response.status_code == 400:
                failures.append(f"{endpoint} with its token: refused as CSRF")
        elif response.status_code >= 400:
            failures.append(f"{endpoint} with its token: {response.status_code}")
        elif attempt.effect() == before:
            failures.append(f"{endpoint} with its token changed nothing (bad control)")
    assert not failures, "\n".join(failures)


# --- the JSON API --------------------------------------------------------------------------------


@dataclass
class ApiAttempt:
    username: str
    path: str
    body: dict[str, Any]
    effect: Callable[[], Any]
    #: the control (own token) changes the state; otherwise it answers past the CSRF check
    changes: bool = True


def _api_create(ctx: Context) -> ApiAttempt:
    body = {"procedure": "identification", "data": scenario()["intake"]}
    return ApiAttempt("handlaggare", "/api/v1/cases", body, lambda: ctx.count(Case))


def _api_claim(ctx: Context) -> ApiAttempt:
    return ApiAttempt("handlaggare", f"/api/v1/tasks/{ctx.world.open_task}/claim", {}, ctx.assignee)


def _api_complete(ctx: Context) -> ApiAttempt:
    task = ctx.world.open_task
    return ApiAttempt(
        "handlaggare",
        f"/api/v1/tasks/{task}/complete",
        {"data": {}, "version": 1},  # incomplete: 409/422 once past the CSRF check
        lambda: ctx.scalar(select(OpenTask.status).where(OpenTask.id == task)),
        changes=False,
    )


def _api_return(ctx: Context) -> ApiAttempt:
    decision = ctx.world.approved_decision  # already approved: 409 past the CSRF check
    return ApiAttempt(
        "arbetsledare",
        f"/api/v1/decisions/{decision}/return",
        {"comment": "Återvisat från en annan webbplats"},
        lambda: ctx.scalar(select(Decision.status).where(Decision.id == decision)),
        changes=False,
    )


def _api_approve(ctx: Context) -> ApiAttempt:
    decision = ctx.world.proposed_decision
    return ApiAttempt(
        "arbetsledare",
        f"/api/v1/decisions/{decision}/approve",
        {},
        lambda: ctx.scalar(select(Decision.status).where(Decision.id == decision)),
    )


API_ROUTES: dict[tuple[str, str], Callable[[Context], ApiAttempt]] = {
    ("api.create_case", "POST"): _api_create,
    ("api.claim_task", "POST"): _api_claim,
    ("api.complete_task", "POST"): _api_complete,
    ("api.return_decision", "POST"): _api_return,
    ("api.approve_decision", "POST"): _api_approve,
}


def _load_extensions() -> None:
    """Add the probes of the ``csrf_ext_*`` modules: ``ROUTES`` (HTML form posts: builders
    taking this module's ``Context`` and returning its ``Attempt``) and, optionally,
    ``API_ROUTES`` (builders returning ``ApiAttempt``). Import those classes from ``test_csrf``
    inside the builders."""
    import importlib
    from pathlib import Path

    for path in sorted(Path(__file__).parent.glob("csrf_ext_*.py")):
        module = importlib.import_module(path.stem)
        for key, build in module.ROUTES.items():
            HTML_ROUTES.setdefault(key, build)
        for key, build in getattr(module, "API_ROUTES", {}).items():
            API_ROUTES.setdefault(key, build)
    # logout ends the session every other probe uses: keep it last
    HTML_ROUTES[("auth.logout", "POST")] = HTML_ROUTES.pop(("auth.logout", "POST"))


_load_extensions()


def _token_only_writes(app: Flask) -> set[tuple[str, str]]:
    """API writes that take no user login at all (e.g. partner intake with a service token):
    no session cookie reaches them, so there is nothing for CSRF to protect."""
    from webapp.blueprints.api import PUBLIC_ENDPOINTS

    return {key for key in _writes(app, api=True) if key[0] in PUBLIC_ENDPOINTS}


def test_api_session_callers_need_the_csrf_header_bearer_callers_do_not(app: Flask) -> None:
    unknown = _writes(app, api=True) - set(API_ROUTES) - _token_only_writes(app)
    assert not unknown, f"state-changing API routes without a CSRF test: {sorted(unknown)}"
    ctx = Context(app)
    failures = []
    browsers = {"handlaggare": ctx.caseworker, "arbetsledare": ctx.supervisor}
    for (endpoint, _method), build in API_ROUTES.items():
        attempt = build(ctx)
        if attempt.username not in browsers:
            browsers[attempt.username] = login_browser(app, attempt.username)
        browser = browsers[attempt.username]
        client = browser.client
        before = attempt.effect()
        own = {"X-CSRFToken": browser.csrf}
        tries = {
            "session without X-CSRFToken": {},
            "another session's token": {"X-CSRFToken": ctx.other.csrf},
            "own token from https://evil.example": {**own, **EVIL},
            "cross-site without a token": EVIL,
        }
        for name, headers in tries.items():
            response = client.post(attempt.path, json=attempt.body, headers=headers)
            if response.status_code not in (400, 403):
                failures.append(f"{endpoint} {name}: {response.status_code}, expected 400/403")
        if attempt.effect() != before:
            failures.append(f"{endpoint}: a session call without a valid token took effect")
        response = client.post(attempt.path, json=attempt.body, headers=own)
        if response.status_code in (400, 401, 403):
            failures.append(f"{endpoint} with its own token: {response.status_code}")
        if attempt.changes and attempt.effect() == before:
            failures.append(f"{endpoint} with its own token changed nothing (bad control)")
        # a bearer token needs no CSRF token (no cookie is sent, so no cross-site risk)
        response = app.test_client().post(
            attempt.path, json=attempt.body, headers=bearer(app, attempt.username)
        )
        if response.status_code in (400, 401, 403):
            failures.append(
                f"{endpoint} with a bearer token: {response.status_code} "
                f"{response.get_data(as_text=True)[:200]}"
            )
    assert not failures, "\n".join(failures)
