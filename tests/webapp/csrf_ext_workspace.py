"""CSRF probes of the process-owner workspace pages (issue 5).

Each builder arranges what its post needs (a draft, a submitted version, a published one)
through ``engine.workspace`` and returns the post a process owner's browser would make; the
control post with the session's own token must take effect (or, for the preview and the
scenario run, which change nothing, at least get past the CSRF check).
"""

from __future__ import annotations

import io
import json
from typing import Any

from matrix_kit import Browser, actor_of, login_browser
from sqlalchemy import select

from engine import workspace
from engine.db import unit_of_work
from engine.models import ProcessInstance, ProcessVersion
from engine.processes import latest_published

IDENTIFICATION = "identification"


class Rewinding(io.BytesIO):
    """An upload that can be posted again: the test client's close only rewinds it."""

    def close(self) -> None:
        self.seek(0)


def _owner(ctx: Any, username: str = "processagare") -> Browser:
    attr = f"_ws_{username}"
    if not hasattr(ctx, attr):
        setattr(ctx, attr, login_browser(ctx.app, username))
    browser: Browser = getattr(ctx, attr)
    return browser


def _published(ctx: Any) -> tuple[str, dict[str, Any]]:
    with unit_of_work(ctx.app.extensions["lotsen_db"]) as db:
        version = latest_published(db, IDENTIFICATION)
        return version.bpmn_xml, dict(version.forms)


def _draft(ctx: Any, *, submitted: bool = False, published: bool = False) -> int:
    """A passing draft of identification (submitted by processagare, maybe published)."""
    xml, forms = _published(ctx)
    with unit_of_work(ctx.app.extensions["lotsen_db"]) as db:
        owner = actor_of(db, "processagare")
        version, result = workspace.save_draft(
            db, owner, bpmn_xml=xml, forms=forms, filename="identification.bpmn"
        )
        assert result.ok, result.problems
        if submitted or published:
            workspace.submit(db, owner, version.id)
        if published:
            workspace.approve(db, actor_of(db, "processagare2"), version.id)
        return int(version.id)


def _status(ctx: Any, version_id: int) -> str:
    return str(ctx.scalar(select(ProcessVersion.status).where(ProcessVersion.id == version_id)))


def _version_count(ctx: Any) -> int:
    return int(ctx.count(ProcessVersion))


def _save(ctx: Any) -> Any:
    from test_csrf import Attempt

    xml, forms = _published(ctx)
    form = [("bpmn", xml), ("forms", json.dumps(forms))]
    return Attempt(_owner(ctx), "/workspace/save", form, lambda: _version_count(ctx))


def _preview(ctx: Any) -> Any:
    from test_csrf import Attempt

    spec = {"id": "x", "title": {"sv": "X", "en": "X"}, "components": []}
    form = [("spec", json.dumps(spec))]
    return Attempt(
        _owner(ctx), "/workspace/forms/preview", form, lambda: _version_count(ctx), changes=False
    )


def _upload(ctx: Any) -> Any:
    from test_csrf import Attempt

    xml, _forms = _published(ctx)
    upload = Rewinding(xml.encode("utf-8"))
    form: list[tuple[str, Any]] = [("bpmn", (upload, "identification.bpmn"))]
    return Attempt(_owner(ctx), "/workspace/upload", form, lambda: _version_count(ctx))


def _submit(ctx: Any) -> Any:
    from test_csrf import Attempt

    version_id = _draft(ctx)
    url = f"/workspace/versions/{version_id}/submit"
    return Attempt(_owner(ctx), url, [], lambda: _status(ctx, version_id))


def _approve(ctx: Any) -> Any:
    from test_csrf import Attempt

    version_id = _draft(ctx, submitted=True)
    url = f"/workspace/versions/{version_id}/approve"
    return Attempt(_owner(ctx, "processagare2"), url, [], lambda: _status(ctx, version_id))


def _reject(ctx: Any) -> Any:
    from test_csrf import Attempt

    version_id = _draft(ctx, submitted=True)
    url = f"/workspace/versions/{version_id}/reject"
    form = [("reason", "Otydlig fristhantering.")]
    return Attempt(_owner(ctx, "processagare2"), url, form, lambda: _status(ctx, version_id))


def _migrate(ctx: Any) -> Any:
    from test_csrf import Attempt

    version_id = _draft(ctx, published=True)
    case_id = ctx.world.case_id

    def instance_version() -> Any:
        return ctx.scalar(
            select(ProcessInstance.version_id).where(ProcessInstance.case_id == case_id)
        )

    url = f"/workspace/versions/{version_id}/migrate"
    return Attempt(_owner(ctx), url, [("confirm", "yes")], instance_version)


def _scenarios(ctx: Any) -> Any:
    from test_csrf import Attempt

    version_id = ctx.world.extras["ws_version"]  # the checker refuses it: a quick answer
    url = f"/workspace/versions/{version_id}/scenarios"
    return Attempt(_owner(ctx), url, [], lambda: _version_count(ctx), changes=False)


ROUTES = {
    ("workspace.save", "POST"): _save,
    ("workspace.preview_form", "POST"): _preview,
    ("workspace.upload", "POST"): _upload,
    ("workspace.submit", "POST"): _submit,
    ("workspace.approve", "POST"): _approve,
    ("workspace.reject", "POST"): _reject,
    ("workspace.migrate", "POST"): _migrate,
    ("workspace.scenarios", "POST"): _scenarios,
}
