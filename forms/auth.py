"""Login forms: username and password (no hints, no "remember me"), the second factor,
re-authentication before a sensitive action, and the account and admin actions."""

from __future__ import annotations

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import HiddenField, IntegerField, PasswordField, StringField, SubmitField
from wtforms.validators import AnyOf, DataRequired, Email, Length, NumberRange, Optional

from forms.fields import strip_text


class LoginForm(FlaskForm):  # type: ignore[misc]
    """Username and password. The view gives one message for every failure."""

    username = StringField(
        _l("Username"),
        filters=[strip_text],
        validators=[DataRequired(), Length(max=150)],
        render_kw={"autocomplete": "username", "autocapitalize": "none", "spellcheck": "false"},
    )
    password = PasswordField(
        _l("Password"),
        validators=[DataRequired(), Length(max=1000)],
        render_kw={"autocomplete": "current-password"},
    )
    submit = SubmitField(_l("Log in"))


class TotpForm(FlaskForm):  # type: ignore[misc]
    """The six-digit code of the authenticator app (second step of the login)."""

    code = StringField(
        _l("Code from your authenticator app"),
        filters=[strip_text],
        validators=[DataRequired(), Length(max=12)],
        render_kw={
            "autocomplete": "one-time-code",
            "inputmode": "numeric",
            "autocapitalize": "none",
            "spellcheck": "false",
        },
    )
    submit = SubmitField(_l("Continue"))


class ReauthForm(FlaskForm):  # type: ignore[misc]
    """Confirm who you are before a sensitive action: the password, and the code if enrolled."""

    password = PasswordField(
        _l("Password"),
        validators=[DataRequired(), Length(max=1000)],
        render_kw={"autocomplete": "current-password"},
    )
    code = StringField(
        _l("Code from your authenticator app"),
        filters=[strip_text],
        validators=[Length(max=12)],
        render_kw={
            "autocomplete": "one-time-code",
            "inputmode": "numeric",
            "autocapitalize": "none",
            "spellcheck": "false",
        },
    )
    submit = SubmitField(_l("Confirm"))


class TotpSetupForm(FlaskForm):  # type: ignore[misc]
    """Turn the second factor on (confirm a code of the new secret) or off (a current code)."""

    action = HiddenField(validators=[AnyOf(("enrol", "remove"))])
    code = StringField(
        _l("Code from your authenticator app"),
        filters=[strip_text],
        validators=[DataRequired(), Length(max=12)],
        render_kw={
            "autocomplete": "one-time-code",
            "inputmode": "numeric",
            "autocapitalize": "none",
            "spellcheck": "false",
        },
    )


class EndSessionForm(FlaskForm):  # type: ignore[misc]
    """End one of your other sessions (``session_id``) or all of them (``action=end_others``)."""

    action = HiddenField(validators=[AnyOf(("end", "end_others"))])
    session_id = IntegerField(validators=[Optional(), NumberRange(min=1, max=2**31 - 1)])


class AccountActionForm(FlaskForm):  # type: ignore[misc]
    """An administrator's action on one account."""

    action = HiddenField(validators=[AnyOf(("disable", "enable", "reset_totp", "set_email"))])
    user_id = IntegerField(validators=[DataRequired(), NumberRange(min=1, max=2**31 - 1)])
    #: only for ``set_email``: the address notifications go to (empty: none)
    email = StringField(validators=[Optional(), Length(max=254), Email()])
