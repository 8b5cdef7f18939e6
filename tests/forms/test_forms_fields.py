"""Personnummer, dates and numbers."""

from __future__ import annotations

from datetime import date

import pytest
from forms_testkit import pnr

from forms.fields import (
    InvalidPersonnummer,
    format_personnummer,
    is_samordningsnummer,
    luhn_ok,
    normalize_personnummer,
    parse_iso_date,
    parse_iso_datetime,
    parse_number,
    personnummer_birth_date,
)

TODAY = date(2025, 6, 1)


def norm(text: str) -> str:
    return normalize_personnummer(text, today=TODAY)


def test_known_test_number() -> None:
    assert luhn_ok("1212121212")
    assert norm("19121212-1212") == "191212121212"
    assert norm("191212121212") == "191212121212"
    assert norm("121212-1212") == "201212121212"  # '-': the most recent century
    assert norm("121212+1212") == "191212121212"


def test_century_from_ten_digits() -> None:
    recent = pnr("120315", "123")  # 2012-03-15
    assert norm(recent) == "20" + recent
    old = pnr("850315", "123")
    assert norm(old[:6] + "-" + old[6:]) == "19" + old
    assert norm(old[:6] + "+" + old[6:]) == "18" + old


def test_bad_luhn() -> None:
    good = pnr("850315", "123")
    bad = good[:-1] + str((int(good[-1]) + 1) % 10)
    with pytest.raises(InvalidPersonnummer, match="checksum"):
        norm(bad)


@pytest.mark.parametrize("yymmdd", ["850230", "851301", "850000", "850132"])
def test_bad_date(yymmdd: str) -> None:
    with pytest.raises(InvalidPersonnummer, match="date"):
        norm(pnr(yymmdd, "123"))


def test_future_birth_date_refused() -> None:
    with pytest.raises(InvalidPersonnummer):
        norm("20" + pnr("250602", "123"))  # tomorrow, written with 12 digits


def test_samordningsnummer() -> None:
    number = pnr("850375", "123")  # day 75 = 15th
    assert norm(number) == "19" + number
    assert is_samordningsnummer("19" + number)
    assert personnummer_birth_date("19" + number) == date(1985, 3, 15)
    with pytest.raises(InvalidPersonnummer, match="date"):
        norm(pnr("850292", "123"))  # 32 February


@pytest.mark.parametrize(
    "text", ["", "abc", "12345", "19121212+1212", "1912121212121", "121212--1212", "12-1212-1212"]
)
def test_bad_format(text: str) -> None:
    with pytest.raises(InvalidPersonnummer):
        norm(text)


def test_format() -> None:
    assert format_personnummer("191212121212") == "19121212-1212"
    assert format_personnummer("junk") == "junk"


@pytest.mark.parametrize("text", ["2025-02-30", "2025-13-01", "2025-1-01", "20250101", "x", ""])
def test_iso_date_refused(text: str) -> None:
    with pytest.raises(ValueError):
        parse_iso_date(text)


def test_iso_date_ok() -> None:
    assert parse_iso_date("2024-02-29") == date(2024, 2, 29)
    assert parse_iso_datetime("2024-02-29T10:30").hour == 10
    with pytest.raises(ValueError):
        parse_iso_datetime("2025-02-30T10:00")
    with pytest.raises(ValueError):
        parse_iso_datetime("tomorrow")


def test_numbers() -> None:
    assert parse_number("42") == 42
    assert isinstance(parse_number("42"), int)
    assert parse_number("3,5") == 3.5
    assert parse_number("-1.25") == -1.25
    for bad in ("1e400", "nan", "inf", "1.2.3", "", "12abc", "0x10"):
        with pytest.raises(ValueError):
            parse_number(bad)
