"""The login form: username and password, nothing else (no hints, no "remember me")."""

from __future__ import annotations

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import PasswordField, StringField, SubmitField
from wtforms.validators import DataRequired, Length

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
