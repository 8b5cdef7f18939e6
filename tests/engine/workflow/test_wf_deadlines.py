"""Deadline arithmetic: ISO durations, working days, Swedish holidays, UTC in and out."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone

import pytest

from engine.workflow.deadlines import (
    compute_due_at,
    easter_sunday,
    is_working_day,
    parse_duration,
    swedish_non_working_days,
)


def utc(year: int, month: int, day: int, hour: int = 0) -> datetime:
    return datetime(year, month, day, hour, tzinfo=UTC)


def test_parse_duration() -> None:
    d = parse_duration("P1Y2M3DT4H5M6S")
    assert (d.years, d.months, d.days, d.hours, d.minutes, d.seconds) == (1, 2, 3, 4, 5, 6.0)
    assert parse_duration("P1W").weeks == 1
    assert parse_duration("pt1.5s").seconds == 1.5
    for bad in ["", "P", "PT", "5D", "P1DT", "P-1D", "P1.5D", "PXD", "P1D2M", "P999999D"]:
        with pytest.raises(ValueError):
            parse_duration(bad)


@pytest.mark.parametrize(
    ("start", "duration", "expected"),
    [
        (utc(2026, 3, 2, 9), "P5D", utc(2026, 3, 7, 9)),
        (utc(2026, 3, 2, 9), "P14D", utc(2026, 3, 16, 9)),
        (utc(2026, 3, 2, 9), "P1W", utc(2026, 3, 9, 9)),
        (utc(2026, 3, 2, 9), "PT4H", utc(2026, 3, 2, 13)),
        (utc(2026, 1, 31, 9), "P1M", utc(2026, 2, 28, 9)),  # clamped to month end
        (utc(2026, 1, 15, 9), "P4M", utc(2026, 5, 15, 8)),  # same Stockholm wall clock (DST)
    ],
)
def test_calendar_durations(start: datetime, duration: str, expected: datetime) -> None:
    due = compute_due_at(start, duration, working_days=False)
    assert due == expected
    assert due.tzinfo is not None and due.utcoffset() == timedelta(0)


def test_working_days_skip_weekends() -> None:
    friday = utc(2026, 3, 6, 9)
    assert compute_due_at(friday, "P1D", working_days=True) == utc(2026, 3, 9, 9)  # Monday
    assert compute_due_at(friday, "P5D", working_days=True) == utc(2026, 3, 13, 9)
    assert compute_due_at(friday, "P1W", working_days=True) == utc(2026, 3, 13, 9)
    saturday = utc(2026, 3, 7, 9)
    assert compute_due_at(saturday, "P1D", working_days=True) == utc(2026, 3, 9, 9)


def test_working_days_skip_swedish_holidays() -> None:
    # Easter 2026: 5 April. Maundy Thursday 2 April + 1 working day skips Good Friday,
    # the weekend and Easter Monday -> Tuesday 7 April.
    assert easter_sunday(2026) == date(2026, 4, 5)
    assert easter_sunday(2024) == date(2024, 3, 31)
    assert easter_sunday(2025) == date(2025, 4, 20)
    start = datetime(2026, 4, 2, 10, tzinfo=UTC)
    assert compute_due_at(start, "P1D", working_days=True).date() == date(2026, 4, 7)
    # Christmas: 23 Dec 2026 (Wed) + 1 -> 28 Dec (24-26 off, 27 Sunday).
    assert compute_due_at(utc(2026, 12, 23, 10), "P1D", working_days=True).date() == date(
        2026, 12, 28
    )
    days = swedish_non_working_days(2026)
    assert date(2026, 6, 19) in days  # midsummer eve 2026
    assert date(2026, 5, 14) in days  # Ascension day (Easter + 39)
    assert date(2026, 6, 6) in days and date(2026, 1, 6) in days
    assert not is_working_day(date(2026, 5, 1))
    assert is_working_day(date(2026, 5, 4))


def test_month_deadline_moves_off_non_working_day() -> None:
    # 2026-01-24 (Sat) is reached from 2025-12-24 + 1 month in working-days mode: moves on.
    due = compute_due_at(utc(2025, 12, 24, 10), "P1M", working_days=True)
    assert due.date() == date(2026, 1, 26)


def test_timezone_rules() -> None:
    with pytest.raises(ValueError):
        compute_due_at(datetime(2026, 3, 2, 9), "P1D", working_days=False)
    plus2 = timezone(timedelta(hours=2))
    due = compute_due_at(datetime(2026, 3, 2, 11, tzinfo=plus2), "P1D", working_days=False)
    assert due == utc(2026, 3, 3, 9)
    assert due.tzinfo == UTC
