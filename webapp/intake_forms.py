"""The concern-report form of the public e-service, and the same rules for partner JSON.

Both channels end in :func:`engine.intake.check_content`; this module turns what a person
typed (or a partner system sent) into that shape, with messages a person can act on.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import date
from typing import Any

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import (
    BooleanField,
    RadioField,
    SelectChoice,
    SelectField,
    StringField,
    TextAreaField,
)
from wtforms.validators import DataRequired, InputRequired, Length, ValidationError

from engine.errors import ValidationFailed
from engine.intake import KINDS, LIMITS, REPORTER_ROLES
from forms.fields import InvalidPersonnummer, normalize_personnummer, strip_text

DATE_RE = re.compile(r"\d{4}-\d{2}-\d{2}")
#: The honeypot: a field no person sees (hidden from sight and from screen readers).
HONEYPOT = "website"


def _personnummer(_form: Any, field: Any) -> None:
    if field.data:
        try:
            normalize_personnummer(field.data)
        except InvalidPersonnummer as exc:
            raise ValidationError(
                _l("Write the personal identity number as YYYYMMDD-NNNN, or leave it empty.")
            ) from exc


def _birth_date(_form: Any, field: Any) -> None:
    if field.data:
        try:
            ok = DATE_RE.fullmatch(field.data) and date.fromisoformat(field.data) <= date.today()
        except ValueError:
            ok = False
        if not ok:
            raise ValidationError(_l("Write the date of birth as YYYY-MM-DD, or leave it empty."))


def _age(_form: Any, field: Any) -> None:
    if field.data and not (field.data.isdigit() and 0 <= int(field.data) <= 120):
        raise ValidationError(_l("Write the age as a number, or leave it empty."))


def _text(label: Any, key: str, *, area: bool = False, required: bool = False, **kw: Any) -> Any:
    limit = LIMITS[key]
    message = _l("At most %(n)d characters.", n=limit)
    checks: list[Any] = [DataRequired(_l("Describe your concern."))] if required else []
    checks.append(Length(max=limit, message=message))
    cls = TextAreaField if area else StringField
    return cls(label, filters=[strip_text], validators=checks, render_kw={"maxlength": limit}, **kw)


KIND_CHOICES = [
    SelectChoice("child", _l("A child or young person under 18")),
    SelectChoice("adult", _l("An adult who may be exploited")),
]
ROLE_CHOICES = [
    SelectChoice("", _l("Choose")),
    SelectChoice("private_person", _l("Private person")),
    SelectChoice("relative", _l("Relative")),
    SelectChoice("school_preschool", _l("School or preschool")),
    SelectChoice("health_care", _l("Health care")),
    SelectChoice("police", _l("Police")),
    SelectChoice("social_services", _l("Social services")),
    SelectChoice("ngo", _l("Voluntary organisation")),
    SelectChoice("housing_company", _l("Housing company")),
    SelectChoice("other", _l("Other")),
]


class ReportForm(FlaskForm):  # type: ignore[misc]
    """Orosanmälan / report about a person who may be exploited. Only ``concern`` and ``kind``
    are required: a report may be anonymous and may not know the person's name."""

    kind = RadioField(
        _l("Who is the report about?"),
        choices=KIND_CHOICES,
        validators=[InputRequired(_l("Choose who the report is about."))],
    )
    concern = _text(
        _l("What has happened, and what worries you?"),
        "concern",
        area=True,
        required=True,
        description=_l("Write what you have seen or heard. You do not need to be sure."),
    )
    subject_name = _text(_l("Name"), "subject_name")
    subject_personnummer = StringField(
        _l("Personal identity number"),
        filters=[strip_text],
        validators=[Length(max=13), _personnummer],
        description=_l("If you know it: YYYYMMDD-NNNN."),
        render_kw={"maxlength": 13, "autocomplete": "off"},
    )
    subject_birth_date = StringField(
        _l("Date of birth"),
        filters=[strip_text],
        validators=[Length(max=10), _birth_date],
        description=_l("If you know it: YYYY-MM-DD."),
        render_kw={"maxlength": 10, "autocomplete": "off"},
    )
    subject_age = StringField(
        _l("Age, if you can guess it"),
        filters=[strip_text],
        validators=[Length(max=3), _age],
        render_kw={"maxlength": 3, "inputmode": "numeric"},
    )
    subject_description = _text(
        _l("Description of the person and where they are now"), "subject_description", area=True
    )
    place = _text(_l("Where did it happen?"), "place")
    observed = _text(_l("When did it happen?"), "observed")
    anonymous = BooleanField(_l("I want to be anonymous"))
    reporter_name = _text(_l("Your name"), "reporter_name")
    reporter_contact = _text(
        _l("Phone number or e-mail address"),
        "reporter_contact",
        description=_l("We contact you only if we need to know more or if you ask for feedback."),
    )
    reporter_role = SelectField(_l("You are reporting as"), choices=ROLE_CHOICES, default="")
    reporter_organisation = _text(_l("Organisation or workplace"), "reporter_organisation")
    reporter_mandatory = BooleanField(
        _l("I have a duty to report (for example at a school, in health care or the police)")
    )
    feedback_requested = BooleanField(
        _l("I want feedback that the report has been received and handled")
    )
    website = StringField(_l("Leave this field empty"), render_kw={"autocomplete": "off"})

    def validate(self, extra_validators: Mapping[str, Any] | None = None) -> bool:
        ok = bool(super().validate(extra_validators))
        if self.reporter_role.data and self.reporter_role.data not in REPORTER_ROLES:
            self.reporter_role.errors = [*self.reporter_role.errors, _l("Choose from the list.")]
            ok = False
        anonymous = bool(self.anonymous.data) if self.anonymous is not None else False
        wants_feedback = self.feedback_requested.data and not anonymous
        if wants_feedback and not self.reporter_contact.data:
            self.reporter_contact.errors = [
                *self.reporter_contact.errors,
                _l("Give a phone number or e-mail address so that we can give feedback."),
            ]
            ok = False
        if self.feedback_requested.data and anonymous:
            self.feedback_requested.errors = [
                *self.feedback_requested.errors,
                _l("We cannot give feedback to an anonymous reporter."),
            ]
            ok = False
        return ok

    def honeypot_filled(self) -> bool:
        """True when the hidden field has a value: a robot filled in every field."""
        return bool((self.website.data or "").strip())

    def content(self) -> dict[str, Any]:
        """The report in engine shape (validate first)."""
        pnr = self.subject_personnummer.data
        return {
            "concern": self.concern.data,
            "subject_name": self.subject_name.data,
            "subject_personnummer": normalize_personnummer(pnr) if pnr else None,
            "subject_birth_date": self.subject_birth_date.data or None,
            "subject_age": int(self.subject_age.data) if self.subject_age.data else None,
            "subject_description": self.subject_description.data,
            "place": self.place.data,
            "observed": self.observed.data,
            "anonymous": bool(self.anonymous.data) if self.anonymous is not None else False,
            "reporter_name": self.reporter_name.data,
            "reporter_contact": self.reporter_contact.data,
            "reporter_role": self.reporter_role.data or None,
            "reporter_organisation": self.reporter_organisation.data,
            "reporter_mandatory": bool(self.reporter_mandatory.data),
            "feedback_requested": bool(self.feedback_requested.data),
        }


class PartnerReferralForm(ReportForm):
    """The same report for a logged-in partner: never anonymous (the organisation is known),
    and no honeypot (a logged-in person is no robot)."""

    anonymous = None
    website = None

    def honeypot_filled(self) -> bool:
        return False

    def content(self) -> dict[str, Any]:
        data = super().content()
        data["anonymous"] = False
        return data


# --- partner JSON --------------------------------------------------------------------------------

#: JSON keys a partner may send besides ``kind`` (the engine's content keys, except that the
#: personal identity number is ``subject_personal_number`` in the API's English vocabulary).
PNR_KEY = "subject_personal_number"
JSON_TEXT = (*LIMITS, PNR_KEY, "subject_birth_date", "reporter_role")
JSON_FLAGS = ("reporter_mandatory", "feedback_requested")


def content_from_json(body: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    """(kind, content) from a partner's JSON object; ValidationFailed with field errors."""
    errors: dict[str, list[str]] = {}
    kind = body.get("kind")
    if kind not in KINDS:
        errors["kind"] = ["Expected 'child' or 'adult'."]
    content: dict[str, Any] = {"anonymous": False}
    for key in JSON_TEXT:
        value = body.get(key)
        if value is not None and not isinstance(value, str):
            errors[key] = ["Expected a string."]
        else:
            content[key] = value
    for key in JSON_FLAGS:
        value = body.get(key, False)
        if not isinstance(value, bool):
            errors[key] = ["Expected true or false."]
        content[key] = value is True
    age = body.get("subject_age")
    if age is not None and (isinstance(age, bool) or not isinstance(age, int)):
        errors["subject_age"] = ["Expected an integer."]
    content["subject_age"] = age
    pnr = content.pop(PNR_KEY, None)
    content["subject_personnummer"] = None
    if isinstance(pnr, str) and pnr:
        try:
            content["subject_personnummer"] = normalize_personnummer(pnr)
        except InvalidPersonnummer:
            errors[PNR_KEY] = ["Not a valid Swedish personal identity number."]
    birth = content.get("subject_birth_date")
    if isinstance(birth, str) and birth:
        try:
            date.fromisoformat(birth)
            if not DATE_RE.fullmatch(birth):
                raise ValueError(birth)
        except ValueError:
            errors["subject_birth_date"] = ["Expected YYYY-MM-DD."]
    if errors:
        raise ValidationFailed(errors)
    return str(kind), content
