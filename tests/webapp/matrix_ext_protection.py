"""Route matrix policies for break the glass, the person search, the auditor's alerts and
single sign-on (issue 4). Loaded by ``matrix_kit``.

* Break the glass and the person search: the staff who work cases (``engine.break_glass.
  BREAK_GLASS_ROLES``); partners, process owners, auditors and administrators get 403. The
  probes are harmless: an empty request fails validation after the access check (or, when
  the login is no longer fresh, goes to re-authentication first), and no grant is made.
* The notices of emergency access: every logged-in user (each sees only their own).
* Alerts: the auditor only.
* Single sign-on is not configured in the matrix app: both routes answer 404 to everyone
  (``tests/webapp/test_sso.py`` covers them with a provider).
"""

from __future__ import annotations

from matrix_kit import EXTRA_GROUPS, POLICY, SNAPSHOT_MODELS, Rule

from engine.models.protection import BreakGlassGrant, BreakGlassNotice

#: demo users holding a role of ``engine.break_glass.BREAK_GLASS_ROLES``
STAFF = {
    "handlaggare",
    "handlaggare.barn",
    "kvinnofrid",
    "arbetsledare",
    "arbetsledare.barn",
    "enhetschef",
    "samordnare",
}

EXTRA_GROUPS["case_staff"] = STAFF
SNAPSHOT_MODELS.extend([BreakGlassGrant, BreakGlassNotice])

POLICY.update(
    {
        ("protection.search_form", "GET"): Rule("login", who="case_staff"),
        ("protection.search", "POST"): Rule(
            "login",
            who="case_staff",
            body=lambda w: {"personnummer": ""},
            harmless=True,
            allow=frozenset({422}),
        ),
        ("protection.break_glass_form", "GET"): Rule("login", who="case_staff"),
        ("protection.break_glass_open", "POST"): Rule(
            "login",
            who="case_staff",
            body=lambda w: {"case_number": "", "reason": ""},
            harmless=True,
            allow=frozenset({303, 422}),
        ),
        ("protection.break_glass_end", "POST"): Rule(
            "login",
            who="case_staff",
            body=lambda w: {"grant_id": "0"},
            harmless=True,
            allow=frozenset({422}),
        ),
        ("protection.break_glass_notices", "GET"): Rule("login"),
        ("protection.alert_list", "GET"): Rule("login", who="auditors"),
        ("protection.alert_acknowledge", "POST"): Rule(
            "login",
            who="auditors",
            body=lambda w: {"alert_id": "0"},
            harmless=True,
            allow=frozenset({422}),
        ),
        ("sso.login", "GET"): Rule("public", allow=frozenset({404})),
        ("sso.callback", "GET"): Rule("public", allow=frozenset({404})),
    }
)
