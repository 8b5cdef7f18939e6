"""Route policies of the outgoing documents and the housing contact's page (issue 3).

Documents follow their case: the case's readers list, produce and download them; only the
unit manager approves a held one (the arranged document is a filed decision PDF, so even
the unit manager's probe is refused past the access check: 409, nothing changes). The
housing contact's page is for the housing contact only.
"""

from __future__ import annotations

from matrix_kit import EXTRA_GROUPS, POLICY, Rule

EXTRA_GROUPS["housing_contacts"] = {"huge"}
EXTRA_GROUPS["unit_managers"] = {"enhetschef"}

POLICY.update(
    {
        ("documents.index", "GET"): Rule("object", objects={"case": "readers"}),
        ("documents.generate", "POST"): Rule(
            "object",
            objects={"case": "readers"},
            body=lambda w: {"kind": "closure_note"},
            harmless=True,
            allow=frozenset({422}),
        ),
        ("documents.approve", "POST"): Rule(
            "object",
            objects={"document": "unit_managers"},
            body=lambda w: {},
            harmless=True,
            allow=frozenset({409}),
        ),
        ("documents.download", "GET"): Rule("object", objects={"document": "readers"}),
        ("documents.pending", "GET"): Rule("login", who="all"),
        ("housing.index", "GET"): Rule("login", who="housing_contacts"),
    }
)
