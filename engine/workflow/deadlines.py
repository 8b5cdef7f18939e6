"""Deadline arithmetic for task `deadline` properties (ISO 8601 durations).

Inboxes sort and flag tasks by a stored `due_at`, so it is computed here once, in UTC.
Working-day deadlines skip weekends and the days Swedish law treats like a Sunday when a
time limit ends (lag (1930:173) om beräkning av lagstadgad tid): public holidays plus
midsummer eve, Christmas eve and New Year's eve. Days are counted on the Stockholm calendar.
"""

from __future__ import annotations

import calendar
import functools
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, tzinfo

__all__ = [
    "Duration",
    "compute_due_at",
    "easter_sunday",
    "is_working_day",
    "parse_duration",
    "swedish_non_working_days",
]

_DURATION = re.compile(
    r"^P(?!$)(?:(?P<years>\d+)Y)?(?:(?P<months>\d+)M)?(?:(?P<weeks>\d+)W)?(?:(?P<days>\d+)D)?"
    r"(?:T(?=\d)(?:(?P<hours>\d+)H)?(?:(?P<minutes>\d+)M)?(?:(?P<seconds>\d+(?:[.,]\d+)?)S)?)?$"
)
_MAX_COMPONENT = 100_000


def _local_tz() -> tzinfo:
    try:
        from zoneinfo import ZoneInfo

        return ZoneInfo("Europe/Stockholm")
    except Exception:  # pragma: no cover - tzdata missing; UTC is the safe fallback
        return UTC


_TZ = _local_tz()


@dataclass(frozen=True)
class Duration:
    """A parsed ISO 8601 duration; months/years stay calendar units."""

    years: int = 0
    months: int = 0
    weeks: int = 0
    days: int = 0
    hours: int = 0
    minutes: int = 0
    seconds: float = 0.0


def parse_duration(text: str) -> Duration:
    """Parse `P5D`, `PT4H`, `P1W`, `P4M`, `P1Y2M3DT4H5M6S`; raise ValueError otherwise."""
    if not isinstance(text, str):
        raise ValueError("duration must be a string")
    match = _DURATION.match(text.strip().upper())
    if not match or text.strip().upper().endswith("T"):
        raise ValueError(f"not an ISO 8601 duration: {text[:40]!r}")
    parts = match.groupdict()
    values = {k: v for k, v in parts.items() if v is not None and k != "seconds"}
    ints = {k: int(v) for k, v in values.items()}
    seconds = float(parts["seconds"].replace(",", ".")) if parts["seconds"] else 0.0
    if any(v > _MAX_COMPONENT for v in ints.values()) or seconds > _MAX_COMPONENT * 60:
        raise ValueError("duration too long")
    return Duration(seconds=seconds, **ints)


def easter_sunday(year: int) -> date:
    """Gregorian Easter Sunday (the anonymous Gregorian algorithm)."""
    a = year % 19
    b, c = divmod(year, 100)
    d, e = divmod(b, 4)
    f = (b + 8) // 25
    g = (b - f + 1) // 3
    h = (19 * a + b - d - g + 15) % 30
    i, k = divmod(c, 4)
    leap = (32 + 2 * e + 2 * i - h - k) % 7
    m = (a + 11 * h + 22 * leap) // 451
    month, day = divmod(h + leap - 7 * m + 114, 31)
    return date(year, month, day + 1)


@functools.lru_cache(maxsize=64)
def swedish_non_working_days(year: int) -> frozenset[date]:
    """Holidays and the eves that end a legal time limit like a Sunday (weekends excluded)."""
    easter = easter_sunday(year)
    midsummer_eve = next(date(year, 6, d) for d in range(19, 26) if date(year, 6, d).weekday() == 4)
    return frozenset(
        {
            date(year, 1, 1),  # nyårsdagen
            date(year, 1, 6),  # trettondedag jul
            easter - timedelta(days=2),  # långfredagen
            easter + timedelta(days=1),  # annandag påsk
            date(year, 5, 1),  # första maj
            easter + timedelta(days=39),  # Kristi himmelsfärdsdag
            date(year, 6, 6),  # nationaldagen
            midsummer_eve,  # midsommarafton
            date(year, 12, 24),  # julafton
            date(year, 12, 25),  # juldagen
            date(year, 12, 26),  # annandag jul
            date(year, 12, 31),  # nyårsafton
        }
    )


def is_working_day(day: date) -> bool:
    """Monday to Friday and not a Swedish holiday or eve."""
    return day.weekday() < 5 and day not in swedish_non_working_days(day.year)


def _add_months(moment: datetime, months: int) -> datetime:
    total = moment.month - 1 + months
    year, month = moment.year + total // 12, total % 12 + 1
    day = min(moment.day, calendar.monthrange(year, month)[1])
    return moment.replace(year=year, month=month, day=day)


def _add_working_days(moment: datetime, count: int) -> datetime:
    current = moment
    for _ in range(count):
        current += timedelta(days=1)
        while not is_working_day(current.date()):
            current += timedelta(days=1)
    return current


def compute_due_at(start: datetime, duration: str, *, working_days: bool) -> datetime:
    """Due time of a deadline that starts at `start` (timezone-aware; result in UTC).

    With `working_days`, days count as working days and a week as five of them; years and
    months stay calendar units, and a due date landing on a non-working day moves forward.
    """
    if start.tzinfo is None or start.utcoffset() is None:
        raise ValueError("start must be timezone-aware")
    parsed = parse_duration(duration)
    local = start.astimezone(_TZ).replace(tzinfo=None)  # wall-clock arithmetic, DST-safe
    local = _add_months(local, parsed.years * 12 + parsed.months)
    if working_days:
        local = _add_working_days(local, parsed.weeks * 5 + parsed.days)
    else:
        local += timedelta(days=parsed.weeks * 7 + parsed.days)
    local_aware = local.replace(tzinfo=_TZ)
    exact = timedelta(hours=parsed.hours, minutes=parsed.minutes, seconds=parsed.seconds)
    due = local_aware.astimezone(UTC) + exact
    if working_days and (parsed.years or parsed.months):
        due_local = due.astimezone(_TZ)
        if not is_working_day(due_local.date()):
            due = (
                _add_working_days(due_local.replace(tzinfo=None), 1)
                .replace(tzinfo=_TZ)
                .astimezone(UTC)
            )
    return due
