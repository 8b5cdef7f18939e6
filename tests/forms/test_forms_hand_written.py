"""The login and approval forms."""

from __future__ import annotations

import pytest
from werkzeug.datastructures import MultiDict

from forms.approval import APPROVED, RETURNED, ApprovalForm
from forms.auth import LoginForm

pytestmark = pytest.mark.usefixtures("app")


def test_login_form() -> None:
    form = LoginForm(formdata=MultiDict({"username": " ana ", "password": "secret"}))
    assert form.validate()
    assert form.username.data == "ana"
    assert set(form._fields) - {"csrf_token"} == {"username", "password", "submit"}
    assert str(form.username.label.text) == "Username"
    assert not LoginForm(formdata=MultiDict({"username": "ana"})).validate()


def test_approve_without_comment() -> None:
    form = ApprovalForm(formdata=MultiDict({"approve": "Godkänn", "comment": ""}))
    assert form.validate(), form.errors
    assert form.outcome == APPROVED


def test_return_needs_comment() -> None:
    form = ApprovalForm(formdata=MultiDict({"return_": "Återvisa", "comment": "   "}))
    assert not form.validate()
    assert "comment" in form.errors
    assert form.outcome == RETURNED
    form = ApprovalForm(formdata=MultiDict({"return_": "Återvisa", "comment": "Motivera bättre."}))
    assert form.validate()
    assert form.comment.data == "Motivera bättre."


def test_exactly_one_button() -> None:
    neither = ApprovalForm(formdata=MultiDict({"comment": "x"}))
    assert not neither.validate()
    assert neither.form_errors
    both = ApprovalForm(formdata=MultiDict({"approve": "1", "return_": "1", "comment": "x"}))
    assert not both.validate()
    assert both.outcome is None


def test_comment_max_length() -> None:
    form = ApprovalForm(formdata=MultiDict({"approve": "1", "comment": "x" * 5001}))
    assert not form.validate()
    assert "comment" in form.errors
