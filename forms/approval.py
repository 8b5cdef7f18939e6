"""The supervisor's approval form: approve, or return with a comment."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import SubmitField, TextAreaField
from wtforms.validators import Length

from forms.fields import strip_text

APPROVED = "approved"
RETURNED = "returned"
COMMENT_MAX_LENGTH = 5000


class ApprovalForm(FlaskForm):  # type: ignore[misc]
    """Two buttons: `approve` ("Godkänn") and `return_` ("Återvisa").

    Returning needs a comment that says what to fix; approving does not. Exactly one button
    must have been pressed.
    """

    comment = TextAreaField(
        _l("Comment"),
        description=_l("Required when you return the decision."),
        filters=[strip_text],
        validators=[Length(max=COMMENT_MAX_LENGTH)],
        render_kw={"maxlength": str(COMMENT_MAX_LENGTH)},
    )
    approve = SubmitField(_l("Approve"))
    return_ = SubmitField(_l("Return"))

    @property
    def outcome(self) -> str | None:
        """`"approved"`, `"returned"`, or None when not exactly one button was pressed."""
        if self.approve.data and not self.return_.data:
            return APPROVED
        if self.return_.data and not self.approve.data:
            return RETURNED
        return None

    def validate(self, extra_validators: Mapping[str, Any] | None = None) -> bool:
        valid = bool(super().validate(extra_validators))
        if self.outcome is None:
            self.form_errors.append(str(_l("Choose approve or return.")))
            valid = False
        elif self.outcome == RETURNED and not (self.comment.data or "").strip():
            self.comment.errors = [
                *self.comment.errors,
                str(_l("Write a comment saying why the decision is returned.")),
            ]
            valid = False
        self._errors = None
        return valid
