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
