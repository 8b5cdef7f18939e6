"""Server-side sessions: the cookie holds an opaque random id, the data stays in the database.

Logging out, idling past the limit or passing the absolute lifetime ends the session on the
server, so a copied cookie is worthless afterwards (security.md §1 rows 3-5). A session ended
elsewhere (from the account page, or by disabling the account) is never written back: a request
that was already running when its row was deleted cannot bring it back to life (row 7).
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta
from typing import Any

from flask import Flask, Request, Response
from flask.sessions import SessionInterface, SessionMixin
from sqlalchemy import delete, select
from werkzeug.datastructures import CallbackDict

from engine.db import unit_of_work, utcnow
from engine.models import WebSession


def _hash(sid: str) -> str:
    return hashlib.sha256(sid.encode("ascii", "ignore")).hexdigest()


def current_session_hash(session: SessionMixin) -> str | None:
    """The stored id (hash) of the browser's session, to tell it apart in a list of sessions."""
    sid = getattr(session, "sid", None)
    return _hash(sid) if sid else None


class DbSession(CallbackDict[str, Any], SessionMixin):
    """Session data plus the bookkeeping the interface needs."""

    def __init__(self, initial: dict[str, Any] | None = None, sid: str | None = None) -> None:
        def on_update(_self: Any) -> None:
            self.modified = True

        super().__init__(initial or {}, on_update)
        self.sid = sid
        self.modified = False
        self.rotate = False
        self.touched = False

    def regenerate(self) -> None:
        """Issue a new id on the next response (call at login: no session fixation)."""
        self.rotate = True
        self.modified = True


class DbSessionInterface(SessionInterface):
    """Stores sessions in the ``web_sessions`` table."""

    touch_interval = timedelta(seconds=60)

    def cookie_name(self, app: Flask) -> str:
        return str(app.config["SESSION_COOKIE_NAME"])

    def open_session(self, app: Flask, request: Request) -> DbSession:
        sid = request.cookies.get(self.cookie_name(app))
        if not sid:
            return DbSession()
        settings = app.extensions["lotsen"]
        now = utcnow()
        with unit_of_work(app.extensions["lotsen_db"]) as db:
            row = db.execute(
                select(WebSession).where(WebSession.id_hash == _hash(sid))
            ).scalar_one_or_none()
            if row is None:
                return DbSession()
            idle_limit = row.last_seen_at + timedelta(minutes=settings.session_idle_minutes)
            if now > row.expires_at or now > idle_limit:
                db.delete(row)
                return DbSession()
            session = DbSession(dict(row.data or {}), sid=sid)
            if now - row.last_seen_at > self.touch_interval:
                row.last_seen_at = now
            return session

    def save_session(self, app: Flask, session: SessionMixin, response: Response) -> None:
        assert isinstance(session, DbSession)
        name = self.cookie_name(app)
        secure = bool(app.config["SESSION_COOKIE_SECURE"])
        factory = app.extensions["lotsen_db"]
        if not session and session.sid and session.modified:
            with unit_of_work(factory) as db:
                db.execute(delete(WebSession).where(WebSession.id_hash == _hash(session.sid)))
            response.delete_cookie(name, path="/", secure=secure, httponly=True, samesite="Lax")
            return
        if not session.modified:
            return
        if not session:
            return
        settings = app.extensions["lotsen"]
        now = utcnow()
        from flask import request

        ended = False
        with unit_of_work(factory) as db:
            if session.sid and session.rotate:
                db.execute(delete(WebSession).where(WebSession.id_hash == _hash(session.sid)))
                session.sid = None
            row = None
            if session.sid:
                row = db.execute(
                    select(WebSession).where(WebSession.id_hash == _hash(session.sid))
                ).scalar_one_or_none()
                if row is None:
                    ended = True  # ended on the server while this request ran: stay ended
            if row is None and not ended:
                session.sid = secrets.token_urlsafe(32)
                row = WebSession(
                    id_hash=_hash(session.sid),
                    created_at=now,
                    last_seen_at=now,
                    expires_at=now + timedelta(hours=settings.session_absolute_hours),
                    source_ip=request.remote_addr,
                    user_agent=(request.user_agent.string or "")[:300],
                )
                db.add(row)
            if row is not None:
                row.data = dict(session)
                row.user_id = session.get("uid")
                row.last_seen_at = now
        if ended:
            response.delete_cookie(name, path="/", secure=secure, httponly=True, samesite="Lax")
            return
        sid = session.sid
        assert sid is not None
        response.set_cookie(
            name,
            sid,
            httponly=True,
            secure=secure,
            samesite="Lax",
            path="/",
        )
        session.rotate = False
