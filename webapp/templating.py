"""Template helpers: local times, bilingual labels, role names."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from flask import Flask, g

from engine.roles import load_roles

STOCKHOLM = ZoneInfo("Europe/Stockholm")


def local_time(value: datetime | None, fmt: str = "%Y-%m-%d %H:%M") -> str:
    """A UTC time shown in Swedish local time."""
    return value.astimezone(STOCKHOLM).strftime(fmt) if value else ""


def local_date(value: datetime | None) -> str:
    """A UTC time shown as a local date."""
    return local_time(value, "%Y-%m-%d")


def label(text: Any, lang: str | None = None) -> str:
    """Pick the current language from a {"sv","en"} label (plain strings pass through)."""
    lang = lang or g.get("lang", "sv")
    if isinstance(text, dict):
        return str(text.get(lang) or text.get("sv") or text.get("en") or "")
    return "" if text is None else str(text)


def role_label(role_id: str | None) -> str:
    """A role's name in the current language."""
    if not role_id:
        return ""
    info = load_roles().get(role_id)
    return info.label(g.get("lang", "sv")) if info else role_id


def init_app(app: Flask) -> None:
    """Register filters and globals."""
    app.jinja_env.filters["localtime"] = local_time
    app.jinja_env.filters["localdate"] = local_date
    app.jinja_env.filters["label"] = label
    app.jinja_env.filters["role_label"] = role_label
    app.context_processor(_navigation)


def _navigation() -> dict[str, Any]:
    """Which menu entries the logged-in user's roles open (``nav``: a set of entry names)."""
    from flask import g

    from engine.break_glass import BREAK_GLASS_ROLES
    from engine.roles import EXTERNAL_ROLES

    actor = g.get("actor")
    if actor is None or g.get("user") is None:
        return {"nav": frozenset()}
    roles = actor.role_names
    entries = set()
    if not roles & EXTERNAL_ROLES and "partner" not in roles:
        entries.add("cases")
    if roles & BREAK_GLASS_ROLES:
        entries.update({"search", "break_glass"})
    for role, entry in (
        ("caseworker", "new_case"),
        ("intake", "intake"),
        ("partner", "referral"),
        ("housing_contact", "housing"),
        ("unit_manager", "documents_pending"),
        ("process_owner", "workspace"),
        ("auditor", "audit"),
        ("admin", "admin"),
    ):
        if role in roles:
            entries.add(entry)
    return {"nav": frozenset(entries)}
