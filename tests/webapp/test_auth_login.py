"""Login throttling (security.md §1 rows 1, 32; §6 case 1): lockout, per-address rate limit,
no user enumeration by message, status or timing, every failure and lock audited."""

from __future__ import annotations

import re
import statistics
import time

from flask import Flask
from test_auth_kit import Clock, audit_actions, audit_seq, frozen, logged_in, post_login

from engine.login import ACCOUNT_POLICY, ADDRESS_POLICY

__all__ = ["frozen"]


def _normalised(body: str, username: str) -> str:
    body = body.replace(username, "USERNAME")
    return re.sub(r'value="[^"]{40,}"', 'value="TOKEN"', body)


def _fail(app: Flask, username: str, times: int, ip: str = "10.1.1.1") -> list[int]:
    return [
        post_login(app.test_client(), username, "wrong-password", ip=ip).status_code
        for _ in range(times)
    ]


def test_account_locks_after_repeated_failures_and_refuses_even_the_right_password(
    app: Flask,
) -> None:
    seq = audit_seq(app)
    n = ACCOUNT_POLICY.max_failures
    statuses = _fail(app, "handlaggare", n)
    assert statuses == [401] * (n - 1) + [429]
    refused = post_login(app.test_client(), "handlaggare", "demo", ip="10.1.1.1")
    assert refused.status_code == 429
    assert int(refused.headers["Retry-After"]) > 0
    assert "Too many failed attempts" in refused.get_data(as_text=True) or "För många" in (
        refused.get_data(as_text=True)
    )
    # from another address too: the account is locked, not the address
    assert post_login(app.test_client(), "handlaggare", "demo", ip="10.9.9.9").status_code == 429
    entries = [e for e in audit_actions(app, seq) if e.action.startswith("auth:")]
    failed = [e for e in entries if e.action == "auth:login_failed"]
    locked = [e for e in entries if e.action == "auth:locked"]
    assert len(failed) == n + 2 and all(e.outcome == "denied" for e in failed)
    assert len(locked) == 1 and locked[0].details["scope"] == "account"
    assert not any(e.action == "auth:login" for e in entries)


def test_unknown_and_known_usernames_get_the_same_answers(app: Flask) -> None:
    n = ACCOUNT_POLICY.max_failures
    answers = {}
    for username in ("handlaggare", "ingen.sadan"):
        client = app.test_client()
        responses = [
            post_login(client, username, "wrong-password", ip="10.2.2.2") for _ in range(n + 1)
        ]
        answers[username] = [
            (
                r.status_code,
                r.headers.get("Retry-After") is not None,
                _normalised(r.get_data(as_text=True), username),
            )
            for r in responses
        ]
    assert [a[:2] for a in answers["handlaggare"]] == [a[:2] for a in answers["ingen.sadan"]]
    assert answers["handlaggare"] == answers["ingen.sadan"]


def test_timing_does_not_tell_known_from_unknown_or_locked(app: Flask) -> None:
    """Every answer spends one argon2 check: a wrong password, an unknown name, a locked one."""

    def timed(username: str, ip: str) -> float:
        client = app.test_client()
        start = time.perf_counter()
        post_login(client, username, "wrong-password", ip=ip)
        return time.perf_counter() - start

    post_login(app.test_client(), "handlaggare", "warm-up", ip="10.3.0.1")
    known = statistics.median(timed("handlaggare", f"10.3.1.{i}") for i in range(3))
    unknown = statistics.median(timed(f"ingen{i}", f"10.3.2.{i}") for i in range(3))
    _fail(app, "samordnare", ACCOUNT_POLICY.max_failures, ip="10.3.3.1")
    locked = statistics.median(timed("samordnare", f"10.3.4.{i}") for i in range(3))
    for other in (unknown, locked):
        assert 0.5 < other / known < 2.0, (known, unknown, locked)


def test_the_lock_expires(app: Flask, frozen: Clock) -> None:
    _fail(app, "handlaggare", ACCOUNT_POLICY.max_failures)
    frozen.advance(seconds=ACCOUNT_POLICY.lock.total_seconds() - 5)
    assert post_login(app.test_client(), "handlaggare", "demo").status_code == 429
    frozen.advance(seconds=10)
    client = app.test_client()
    response = post_login(client, "handlaggare", "demo")
    assert response.status_code == 303 and logged_in(client)


def test_failures_spread_over_time_do_not_lock(app: Flask, frozen: Clock) -> None:
    n = ACCOUNT_POLICY.max_failures
    _fail(app, "handlaggare", n - 1)
    frozen.advance(seconds=ACCOUNT_POLICY.window.total_seconds() + 1)
    assert _fail(app, "handlaggare", n - 1) == [401] * (n - 1)
    assert post_login(app.test_client(), "handlaggare", "demo").status_code == 303


def test_a_successful_login_clears_the_account_failures(app: Flask) -> None:
    n = ACCOUNT_POLICY.max_failures
    _fail(app, "handlaggare", n - 1)
    assert post_login(app.test_client(), "handlaggare", "demo").status_code == 303
    assert _fail(app, "handlaggare", n - 1) == [401] * (n - 1)


def test_one_address_is_rate_limited_across_usernames(app: Flask) -> None:
    seq = audit_seq(app)
    limit = ADDRESS_POLICY.max_failures
    statuses = [
        post_login(app.test_client(), f"gissning{i}", "wrong", ip="10.4.4.4").status_code
        for i in range(limit)
    ]
    assert statuses[:-1] == [401] * (limit - 1) and statuses[-1] == 429
    refused = post_login(app.test_client(), "handlaggare", "demo", ip="10.4.4.4")
    assert refused.status_code == 429 and int(refused.headers["Retry-After"]) > 0
    # another address is not affected, and the real account is not locked
    assert post_login(app.test_client(), "handlaggare", "demo", ip="10.4.4.5").status_code == 303
    locks = [e for e in audit_actions(app, seq) if e.action == "auth:locked"]
    assert [e.details["scope"] for e in locks] == ["address"]


def test_a_username_with_a_newline_is_logged_as_one_entry(app: Flask) -> None:
    seq = audit_seq(app)
    post_login(app.test_client(), "a\nFAKE ENTRY", "x", ip="10.5.5.5")
    entries = [e for e in audit_actions(app, seq) if e.action == "auth:login_failed"]
    assert len(entries) == 1 and entries[0].actor_name == "a\nFAKE ENTRY"
