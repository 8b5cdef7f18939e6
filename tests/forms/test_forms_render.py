"""The Jinja macros: accessible, autoescaped markup."""

from __future__ import annotations

import re

import pytest
from flask import Flask
from forms_testkit import render
from werkzeug.datastructures import MultiDict

from forms.auth import LoginForm
from forms.builder import build_form_class
from forms.spec import FormSpec

pytestmark = pytest.mark.usefixtures("app")

XSS = '<img src=x onerror=alert(1)>"><svg onload=alert(2)>'


def rendered(spec: FormSpec, pairs: list[tuple[str, str]], lang: str = "sv") -> str:
    form = build_form_class(spec, lang)(formdata=MultiDict(pairs))
    form.validate()
    return render("{{ fields.render_form(form, spec, lang) }}", form=form, spec=spec, lang=lang)


def test_clean_form_has_no_error_summary(spec: FormSpec) -> None:
    form = build_form_class(spec, "sv")()
    html = render("{{ fields.render_form(form, spec, 'sv') }}", form=form, spec=spec)
    assert 'role="alert"' not in html
    assert "aria-invalid" not in html
    assert "<h2>Rubrik</h2>" in html
    assert "Hjälptext &lt;b&gt;fet&lt;/b&gt;" in html  # static text is escaped too


def test_error_summary_links_to_fields(spec: FormSpec) -> None:
    html = rendered(spec, [("age", "x"), ("needs", "other")])
    summary = html.split('role="alert"', 1)[1].split("</div>", 1)[0]
    links = re.findall(r'href="#([^"]+)"', summary)
    assert {"name", "age", "consent", "risk", "needs_other"} <= set(links)
    for field_id in links:
        assert f'id="{field_id}"' in html  # every link has a target
    assert "<h2" in summary


def test_field_accessibility(spec: FormSpec) -> None:
    html = rendered(spec, [("age", "x")])
    assert '<label class="form-field__label" for="name">' in html
    name_input = re.search(r"<input[^>]*id=\"name\"[^>]*>", html)
    assert name_input is not None
    tag = name_input.group(0)
    assert 'aria-describedby="name-hint name-error"' in tag
    assert 'aria-invalid="true"' in tag
    assert 'aria-required="true"' in tag
    assert " required" not in tag  # no browser validation: it would block hidden fields
    assert 'id="name-hint"' in html and 'id="name-error"' in html
    assert "(required)" in html  # required is said in text, not only by colour


def test_groups_in_fieldsets(spec: FormSpec) -> None:
    html = rendered(spec, [])
    for key in ("needs", "risk"):
        block = html.split(f'id="{key}-field"', 1)[1].split("</fieldset>", 1)[0]
        assert "<fieldset" in block and "<legend" in block
        assert f'for="{key}-0"' in block


def test_conditional_wrapper_has_data_hide_if(spec: FormSpec) -> None:
    html = rendered(spec, [])
    wrapper = re.search(r'<div[^>]*id="needs_other-field"[^>]*>', html)
    assert wrapper is not None
    assert 'data-hide-if="&#39;other&#39; not in needs"' in wrapper.group(0)
    assert "data-conditional-form" in html


def test_user_input_is_escaped(spec: FormSpec) -> None:
    html = rendered(spec, [("name", XSS), ("story", XSS), ("source", XSS)])
    assert "<img" not in html and "<svg" not in html
    assert "&lt;img src=x onerror=alert(1)&gt;" in html


def test_english_labels(spec: FormSpec) -> None:
    html = rendered(spec, [], lang="en")
    assert "Age" in html and "As in the passport" in html and "High" in html


def test_hand_written_form_renders(app: Flask) -> None:
    form = LoginForm(formdata=MultiDict({"username": "", "password": ""}))
    form.validate()
    html = render(
        "{{ fields.error_summary(form) }}{{ fields.render_field(form.username) }}"
        "{{ fields.render_field(form.password) }}{{ fields.render_field(form.submit) }}",
        form=form,
    )
    assert 'href="#username"' in html and 'href="#password"' in html
    assert 'for="username"' in html and 'type="password"' in html
    assert 'type="submit"' in html
    assert 'value=""' in html or "value=" not in html.split('type="password"')[0][-200:]
