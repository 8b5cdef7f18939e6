"""Recording a consent for one purpose (domain.md §4.2)."""

from __future__ import annotations

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import BooleanField, DateField, SelectField, TextAreaField
from wtforms.validators import DataRequired, Length, Optional

from forms.fields import strip_text

#: Consent purposes and their labels; a disclosure step names one of these.
CONSENT_PURPOSES = (
    ("CONSENT_CONTACT_RK", _l("Contact the regional coordinator with identity")),
    ("CONSENT_POLICE_REPORT", _l("Police report")),
    ("CONSENT_SHARE_ORG", _l("Share information with another organisation")),
    ("CONSENT_NSP", _l("National support programme (NSP)")),
    ("CONSENT_AMP_RETURN", _l("Return programme (ÅMP)")),
    ("CONSENT_DATA_TO_STATS", _l("Data beyond anonymised statistics")),
)


class ConsentForm(FlaskForm):  # type: ignore[misc]
    """One consent: purpose, oral or written, date, scope, interpreter."""

    purpose = SelectField(_l("Purpose"), choices=CONSENT_PURPOSES, validators=[DataRequired()])
    form = SelectField(
        _l("Given"),
        choices=(("oral", _l("Orally")), ("written", _l("In writing"))),
        validators=[DataRequired()],
    )
    given_on = DateField(_l("Date"), validators=[DataRequired()])
    scope = TextAreaField(
        _l("Scope"),
        description=_l("What may be shared, with whom, for how long."),
        filters=[strip_text],
        validators=[Optional(), Length(max=2000)],
    )
    interpreter_used = BooleanField(_l("An interpreter was used"))
