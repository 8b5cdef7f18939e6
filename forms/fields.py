"""WTForms fields and validators for Lotsen's form types: personnummer, ISO dates, numbers, lists.

Each field parses strictly in `process_formdata` and keeps what was typed in `raw_data`, so a page
re-rendered after an error shows the user's own input.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from datetime import date, datetime
from typing import Any

from flask_babel import lazy_gettext as _l
from wtforms import Field, SelectMultipleField, StringField
from wtforms.validators import StopValidation, ValidationError
from wtforms.widgets import CheckboxInput, DateInput, DateTimeLocalInput, ListWidget, TextInput

# --- personnummer ------------------------------------------------------------------------------

_PNR_RE = re.compile(r"(?P<century>\d{2})?(?P<ymd>\d{6})(?P<sep>[-+]?)(?P<serial>\d{4})")


class InvalidPersonnummer(ValueError):
    """The text is not a valid Swedish personnummer or samordningsnummer."""


def luhn_ok(digits: str) -> bool:
    """The Luhn (mod 10) check used by personnummer, over the 10-digit form."""
    total = 0
    for index, char in enumerate(digits):
        product = int(char) * (2 if index % 2 == 0 else 1)
        total += product - 9 if product > 9 else product
    return total % 10 == 0


def normalize_personnummer(text: str, *, today: date | None = None) -> str:
    """Check a personnummer or samordningsnummer and return its 12-digit form `YYYYMMDDNNNN`.

    Accepts 10 digits (`YYMMDDNNNN`, `YYMMDD-NNNN`, `YYMMDD+NNNN` for people 100 or older) or 12
    (`YYYYMMDDNNNN`, `YYYYMMDD-NNNN`). Checks the Luhn digit and that the date exists (day + 60
    for a samordningsnummer) and is not in the future.
    """
    today = today or date.today()
    match = _PNR_RE.fullmatch(text.strip())
    if match is None:
        raise InvalidPersonnummer("format")
    century, ymd, sep, serial = match.group("century", "ymd", "sep", "serial")
    if century is not None and sep == "+":
        raise InvalidPersonnummer("format")
    if not luhn_ok(ymd + serial):
        raise InvalidPersonnummer("checksum")
    yy, month, day = int(ymd[0:2]), int(ymd[2:4]), int(ymd[4:6])
    if century is not None:
        year = int(century) * 100 + yy
    else:
        year = (today.year // 100) * 100 + yy
        if year > today.year:
            year -= 100
        if sep == "+":
            year -= 100
    birth_day = day - 60 if day > 60 else day
    try:
        born = date(year, month, birth_day)
    except ValueError as exc:
        raise InvalidPersonnummer("date") from exc
    if born > today:
        raise InvalidPersonnummer("date")
    return f"{year:04d}{ymd[2:]}{serial}"


def is_samordningsnummer(pnr12: str) -> bool:
    return int(pnr12[6:8]) > 60


def personnummer_birth_date(pnr12: str) -> date:
    """The birth date encoded in a normalised (12-digit) personnummer or samordningsnummer."""
    day = int(pnr12[6:8])
    return date(int(pnr12[0:4]), int(pnr12[4:6]), day - 60 if day > 60 else day)


def format_personnummer(pnr12: str) -> str:
    """`YYYYMMDD-NNNN`, the readable form of a normalised personnummer."""
    return f"{pnr12[:8]}-{pnr12[8:]}" if len(pnr12) == 12 and pnr12.isdigit() else pnr12


# --- validators ---------------------------------------------------------------------------------


def is_empty(value: Any) -> bool:
    """Empty the way task data means it: None, "", [] or False."""
    return value is None or value is False or value == "" or value == []


class Required:
    """The field must have a value; a checkbox must be ticked, a checklist have one tick.

    Unlike `DataRequired` it accepts the number 0, and it does not set the HTML `required`
    flag: the templates mark required fields with `aria-required` and text, so a field hidden by
    its condition never blocks the browser's submit.
    """

    def __init__(self, message: str | None = None) -> None:
        self.message = message

    def __call__(self, form: Any, field: Field) -> None:
        if is_empty(field.data):
            message = self.message or (
                _l("Tick this box.")
                if field.type == "BooleanField"
                else _l("This field is required.")
            )
            raise StopValidation(str(message))


class OptionalValue:
    """Stop the validation chain quietly when the field is empty."""

    def __call__(self, form: Any, field: Field) -> None:
        if is_empty(field.data):
            field.errors[:] = []
            raise StopValidation()


class FullMatch:
    """The whole value must match a regular expression (not just its beginning)."""

    def __init__(self, pattern: str, message: str | None = None) -> None:
        self.regex = re.compile(pattern)
        self.message = message

    def __call__(self, form: Any, field: Field) -> None:
        if isinstance(field.data, str) and not self.regex.fullmatch(field.data):
            raise ValidationError(str(self.message or _l("The value has the wrong format.")))


class LengthBetween:
    """String length within [min_length, max_length] (characters)."""

    def __init__(self, min_length: int | None, max_length: int | None) -> None:
        self.min_length = min_length
        self.max_length = max_length

    def __call__(self, form: Any, field: Field) -> None:
        length = len(field.data or "")
        if self.max_length is not None and length > self.max_length:
            raise ValidationError(
                str(
                    _l(
                        "At most %(max)d characters (now %(length)d).",
                        max=self.max_length,
                        length=length,
                    )
                )
            )
        if self.min_length is not None and length < self.min_length:
            raise ValidationError(str(_l("At least %(min)d characters.", min=self.min_length)))


class NumberBetween:
    """A number within [low, high]."""

    def __init__(self, low: float | None, high: float | None) -> None:
        self.low = low
        self.high = high

    def __call__(self, form: Any, field: Field) -> None:
        value = field.data
        if value is None:
            return
        if self.low is not None and value < self.low:
            raise ValidationError(str(_l("The smallest allowed value is %(min)s.", min=self.low)))
        if self.high is not None and value > self.high:
            raise ValidationError(str(_l("The largest allowed value is %(max)s.", max=self.high)))


class AllowedValues:
    """Every chosen value must be one of the spec's fixed values (empty passes)."""

    def __init__(self, values: Sequence[str]) -> None:
        self.values = frozenset(values)

    def __call__(self, form: Any, field: Field) -> None:
        data = field.data
        chosen = data if isinstance(data, list) else [] if is_empty(data) else [data]
        if any(value not in self.values for value in chosen):
            raise ValidationError(str(_l("Choose one of the listed options.")))


# --- fields -------------------------------------------------------------------------------------


def strip_text(value: Any) -> Any:
    """Filter: trim a string and use Unix newlines."""
    return value.replace("\r\n", "\n").strip() if isinstance(value, str) else value


class _StrictField(Field):  # type: ignore[misc]
    """A text-input field that parses its input; a parse error stops further validation."""

    widget = TextInput()

    def _value(self) -> str:
        if self.raw_data:
            return str(self.raw_data[0])
        return self.format_data(self.data)

    def format_data(self, data: Any) -> str:
        return "" if data is None else str(data)

    def parse(self, text: str) -> Any:
        return text

    def process_formdata(self, valuelist: list[Any]) -> None:
        text = str(valuelist[0]).strip() if valuelist else ""
        if not text:
            self.data = None
            return
        try:
            self.data = self.parse(text)
        except ValueError as exc:
            self.data = None
            raise ValueError(str(self.invalid_message())) from exc

    def invalid_message(self) -> Any:
        return _l("Not a valid value.")

    def pre_validate(self, form: Any) -> None:
        if self.process_errors:
            raise StopValidation()


class PersonnummerField(_StrictField):
    """A personnummer or samordningsnummer; `data` is the normalised 12-digit string."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("render_kw", {"inputmode": "numeric", "autocomplete": "off"})
        super().__init__(*args, **kwargs)

    def parse(self, text: str) -> str:
        return normalize_personnummer(text)

    def format_data(self, data: Any) -> str:
        return "" if data is None else format_personnummer(str(data))

    def invalid_message(self) -> Any:
        return _l("Not a valid personnummer (YYYYMMDD-NNNN).")


class PersonnummerValidator:
    """Validator for a plain StringField holding a personnummer (normalises `field.data`)."""

    def __call__(self, form: Any, field: Field) -> None:
        if is_empty(field.data):
            return
        try:
            field.data = normalize_personnummer(str(field.data))
        except InvalidPersonnummer as exc:
            raise ValidationError(str(_l("Not a valid personnummer (YYYYMMDD-NNNN)."))) from exc


_DATE_RE = re.compile(r"\d{4}-\d{2}-\d{2}")
_DATETIME_RE = re.compile(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2})?(Z|[+-]\d{2}:\d{2})?")


def parse_iso_date(text: str) -> date:
    """A strict `YYYY-MM-DD` date; ValueError for anything else, including 2025-02-30."""
    if not _DATE_RE.fullmatch(text):
        raise ValueError(text)
    return date.fromisoformat(text)


def parse_iso_datetime(text: str) -> datetime:
    """A strict ISO date-time (`YYYY-MM-DDTHH:MM[:SS][offset]`)."""
    if not _DATETIME_RE.fullmatch(text):
        raise ValueError(text)
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


class IsoDateField(_StrictField):
    """An ISO date (`YYYY-MM-DD`); `data` is a `datetime.date`."""

    widget = DateInput()

    def parse(self, text: str) -> date:
        return parse_iso_date(text)

    def format_data(self, data: Any) -> str:
        return data.isoformat() if isinstance(data, date) else "" if data is None else str(data)

    def invalid_message(self) -> Any:
        return _l("Not a valid date (YYYY-MM-DD).")


class IsoDateTimeField(_StrictField):
    """An ISO date-time; `data` is a `datetime.datetime` (naive when no offset was given)."""

    widget = DateTimeLocalInput()

    def parse(self, text: str) -> datetime:
        return parse_iso_datetime(text)

    def format_data(self, data: Any) -> str:
        if isinstance(data, datetime):
            return data.isoformat(timespec="minutes" if data.second == 0 else "seconds")
        return "" if data is None else str(data)

    def invalid_message(self) -> Any:
        return _l("Not a valid date and time (YYYY-MM-DDTHH:MM).")


def parse_number(text: str) -> int | float:
    """An int, or a float when there is a decimal part; a Swedish decimal comma is accepted."""
    cleaned = text.replace("\u00a0", "").replace(" ", "").replace(",", ".")
    if re.fullmatch(r"[-+]?\d+", cleaned):
        return int(cleaned)
    if not re.fullmatch(r"[-+]?(\d+\.\d*|\.\d+)", cleaned):
        raise ValueError(text)
    value = float(cleaned)
    if not math.isfinite(value):
        raise ValueError(text)
    return value


class NumberField(_StrictField):
    """A number typed as text (`inputmode="decimal"`); `data` is an int or a float."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("render_kw", {"inputmode": "decimal"})
        super().__init__(*args, **kwargs)

    def parse(self, text: str) -> int | float:
        if len(text) > 40:
            raise ValueError(text)
        return parse_number(text)

    def invalid_message(self) -> Any:
        return _l("Not a valid number.")


class MultiCheckboxField(SelectMultipleField):  # type: ignore[misc]
    """A `checklist`: one checkbox per fixed value; `data` is the list of ticked values."""

    widget = ListWidget(prefix_label=False)
    option_widget = CheckboxInput()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("validate_choice", False)
        super().__init__(*args, **kwargs)

    def process_formdata(self, valuelist: list[Any]) -> None:
        seen: list[str] = []
        for value in valuelist:
            text = str(value)
            if text not in seen:
                seen.append(text)
        self.data = seen


class TrimmedStringField(StringField):  # type: ignore[misc]
    """A `StringField` whose data is trimmed (what was typed stays in `raw_data`)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        filters: list[Callable[[Any], Any]] = list(kwargs.pop("filters", ()))
        super().__init__(*args, filters=[strip_text, *filters], **kwargs)
