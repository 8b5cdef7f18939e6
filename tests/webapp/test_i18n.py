"""Swedish by default, English on request: the catalogue is complete and matches the sources.

* every msgid of ``webapp/translations/messages.pot`` has a Swedish translation (in the .po and
  in the compiled .mo), none fuzzy, placeholders kept;
* the .pot is up to date: the sources are extracted again and compared, so a new string that is
  not in the catalogue fails here, by name;
* through the app: the login page is Swedish by default, English after ``POST /language``, and
  ``<html lang>`` follows.

The compiled ``messages.mo`` is git-ignored; it is built here when missing or older than the .po
(``make translations`` does the same).
"""

from __future__ import annotations

import ast
import os
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from babel.messages.catalog import Catalog
from babel.messages.frontend import CommandLineInterface, parse_mapping_cfg
from babel.messages.mofile import read_mo, write_mo
from babel.messages.pofile import read_po
from babel.util import pathmatch
from flask.testing import FlaskClient
from jinja2 import Environment, nodes

from tests.conftest import csrf_token_from

ROOT = Path(__file__).resolve().parents[2]
BABEL_CFG = ROOT / "babel.cfg"
TRANSLATIONS = ROOT / "webapp" / "translations"
POT = TRANSLATIONS / "messages.pot"
PO = TRANSLATIONS / "sv" / "LC_MESSAGES" / "messages.po"
MO = PO.with_suffix(".mo")

#: Keyword arguments of the extraction, besides babel's defaults (_, gettext, ngettext, ...).
KEYWORDS = ("_l", "lazy_gettext")
EXTRACT = "pybabel extract -F babel.cfg -k _l -k lazy_gettext -o webapp/translations/messages.pot ."
UPDATE = "pybabel update -i webapp/translations/messages.pot -d webapp/translations -l sv"
HOW_TO_FIX = (
    f"Run `{EXTRACT}` and `{UPDATE}`, translate the new entries in {PO.relative_to(ROOT)} "
    "(no fuzzy, no empty msgstr) and `make translations`."
)

#: gettext functions whose first argument must be a literal (else the string is never extracted).
GETTEXT_NAMES = frozenset({"_", "_l", "gettext", "lazy_gettext", "ngettext", "lazy_ngettext"})
#: Known non-literal calls, by file and argument source. Each one is a string that is shown
#: untranslated; remove the entry when the code marks its strings for extraction.
KNOWN_DYNAMIC: dict[str, set[str]] = {
    # The error titles in TITLES are plain strings, never extracted (they stay English).
}

#: A printf conversion: %(name)s, %d, %.2f, %% ...
CONVERSION = re.compile(r"%(?:\(\w+\))?[-#0 +]*(?:\d+|\*)?(?:\.\d+)?[diouxXeEfFgGcrsa%]")


def _read_po(path: Path) -> Catalog:
    with path.open("rb") as handle:
        return read_po(handle, locale="sv" if path.suffix == ".po" else None)


def _ids(catalog: Catalog) -> set[Any]:
    """The msgids (a tuple for plural entries), without the header."""
    return {message.id for message in catalog if message.id}


def _strings(string: Any) -> list[str]:
    """The msgstr forms of a message (one, or one per plural form)."""
    if isinstance(string, tuple | list):
        return [str(s) for s in string]
    return [str(string or "")]


def _singular(msgid: Any) -> str:
    return str(msgid[0] if isinstance(msgid, tuple | list) else msgid)


def _compile(po: Path = PO, mo: Path = MO) -> None:
    """``pybabel compile --use-fuzzy`` of one catalogue, written atomically (xdist-safe)."""
    catalog = _read_po(po)
    fd, tmp = tempfile.mkstemp(dir=mo.parent, prefix=".messages-", suffix=".mo")
    try:
        with os.fdopen(fd, "wb") as handle:
            write_mo(handle, catalog, use_fuzzy=True)
        os.replace(tmp, mo)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@pytest.fixture(scope="module", autouse=True)
def compiled_catalogue() -> Iterator[Path]:
    """The compiled Swedish catalogue, built when missing or older than the .po."""
    assert PO.is_file(), f"{PO.relative_to(ROOT)} is missing. {HOW_TO_FIX}"
    if not MO.is_file() or MO.stat().st_mtime < PO.stat().st_mtime:
        _compile()
    yield MO


def _extract(output: Path) -> Catalog:
    """Extract the sources the way the documented command does, into ``output``."""
    argv = ["pybabel", "-q", "extract", "-F", str(BABEL_CFG), "-o", str(output)]
    for keyword in KEYWORDS:
        argv += ["-k", keyword]
    # The mapping's patterns are matched against paths relative to the input directory.
    CommandLineInterface().run([*argv, str(ROOT)])  # type: ignore[no-untyped-call]
    return _read_po(output)


# --- the catalogue -------------------------------------------------------------------------------


def test_every_msgid_has_a_swedish_translation() -> None:
    pot, po = _read_po(POT), _read_po(PO)
    assert _ids(pot), "the .pot holds no messages"
    missing = sorted(_singular(i) for i in _ids(pot) - _ids(po))
    assert not missing, f"not in the Swedish catalogue: {missing}. {HOW_TO_FIX}"
    untranslated, fuzzy = [], []
    for msgid in _ids(pot):
        message = po[msgid]
        if message.fuzzy:
            fuzzy.append(_singular(msgid))
        if not all(s.strip() for s in _strings(message.string)):
            untranslated.append(_singular(msgid))
    assert not (untranslated or fuzzy), (
        f"in {PO.relative_to(ROOT)}: empty msgstr {sorted(untranslated)}; "
        f"fuzzy (unchecked) {sorted(fuzzy)}. Translate them and remove the fuzzy flag."
    )
    assert not po.fuzzy, "the catalogue header is marked fuzzy"


def test_the_swedish_catalogue_has_no_stale_entries() -> None:
    stale = sorted(_singular(i) for i in _ids(_read_po(PO)) - _ids(_read_po(POT)))
    assert not stale, f"in the .po but no longer in the .pot: {stale}. Run `{UPDATE}`."


def test_the_compiled_catalogue_translates_every_msgid() -> None:
    with MO.open("rb") as handle:
        mo = read_mo(handle)
    bad = [
        _singular(msgid)
        for msgid in _ids(_read_po(POT))
        if msgid not in mo or not all(s.strip() for s in _strings(mo[msgid].string))
    ]
    assert not bad, (
        f"{MO.relative_to(ROOT)} lacks a translation of {sorted(bad)}; run `make translations`"
    )


def test_translations_keep_the_placeholders() -> None:
    """Same %(name)s conversions as the msgid, and no stray % (Jinja always %-formats)."""
    problems = []
    for message in _read_po(PO):
        if not message.id:
            continue
        wanted = sorted(CONVERSION.findall(_singular(message.id)))
        for string in _strings(message.string):
            got = sorted(CONVERSION.findall(string))
            plural_ok = isinstance(message.id, tuple) and set(got) <= set(wanted)
            if got != wanted and not plural_ok:
                problems.append(f"{_singular(message.id)!r}: {wanted} -> {got} in {string!r}")
            if "%" in CONVERSION.sub("", string):
                problems.append(f"{_singular(message.id)!r}: stray % in {string!r}")
    assert not problems, "\n".join(problems)


# --- the catalogue against the sources -----------------------------------------------------------


def test_the_pot_is_up_to_date_with_the_sources(tmp_path: Path) -> None:
    fresh = _ids(_extract(tmp_path / "fresh.pot"))
    current = _ids(_read_po(POT))
    new = sorted(_singular(i) for i in fresh - current)
    gone = sorted(_singular(i) for i in current - fresh)
    assert not new, f"strings in the sources that are not in the catalogue: {new}. {HOW_TO_FIX}"
    assert not gone, (
        f"strings in the catalogue that are gone from the sources: {gone}. {HOW_TO_FIX}"
    )


def _source_files() -> list[str]:
    files = [*ROOT.glob("webapp/**/*.py"), *ROOT.glob("forms/**/*.py")]
    files += ROOT.glob("webapp/templates/**/*.html")
    return sorted(str(p.relative_to(ROOT)).replace(os.sep, "/") for p in files)


def test_babel_cfg_covers_every_source_file() -> None:
    """Every Python module and template is extracted (a file outside the patterns never is)."""
    with BABEL_CFG.open(encoding="utf-8") as handle:
        method_map, options_map = parse_mapping_cfg(handle, str(BABEL_CFG))  # type: ignore[no-untyped-call]
    uncovered = []
    for path in _source_files():
        method = next((m for pattern, m in method_map if pathmatch(pattern, path)), None)
        if method in (None, "ignore"):
            uncovered.append(path)
    assert not uncovered, f"not extracted by babel.cfg: {uncovered}"
    jinja = [pattern for pattern, method in method_map if method == "jinja2"]
    assert jinja, "babel.cfg has no [jinja2: ...] section for the templates"
    for pattern in jinja:
        silent = str(options_map.get(pattern, {}).get("silent", "true")).lower()
        assert silent == "false", f"{pattern}: keep silent = false (a broken template is skipped)"


def _gettext_name(func: ast.expr) -> str | None:
    if isinstance(func, ast.Name):
        return func.id
    return None


def test_gettext_is_called_with_literal_strings() -> None:
    """`_(variable)` or `_(f"...")` is never extracted, so the text stays English."""
    dynamic = []
    env = Environment(extensions=["jinja2.ext.i18n"], autoescape=True)
    for path in _source_files():
        source = (ROOT / path).read_text(encoding="utf-8")
        calls: list[tuple[int, str]] = []
        if path.endswith(".py"):
            for node in ast.walk(ast.parse(source, path)):
                if isinstance(node, ast.Call) and _gettext_name(node.func) in GETTEXT_NAMES:
                    first = node.args[0] if node.args else None
                    if not (isinstance(first, ast.Constant) and isinstance(first.value, str)):
                        calls.append((node.lineno, ast.unparse(first) if first else ""))
        else:
            for call in env.parse(source, path, path).find_all(nodes.Call):
                name = call.node.name if isinstance(call.node, nodes.Name) else None
                if name in GETTEXT_NAMES:
                    arg = call.args[0] if call.args else None
                    if not (isinstance(arg, nodes.Const) and isinstance(arg.value, str)):
                        calls.append((call.lineno, type(arg).__name__))
        dynamic += [
            f"{path}:{line}: {arg}"
            for line, arg in calls
            if arg not in KNOWN_DYNAMIC.get(path, set())
        ]
    assert not dynamic, "gettext with a non-literal argument (never extracted):\n" + "\n".join(
        dynamic
    )


# --- through the app -----------------------------------------------------------------------------


def _switch(client: FlaskClient, page: str, lang: str, next_url: str) -> None:
    response = client.post(
        "/language",
        data={"lang": lang, "next": next_url, "csrf_token": csrf_token_from(page)},
    )
    assert response.status_code == 303
    assert response.headers["Location"].endswith(next_url)


def test_login_page_is_swedish_by_default_and_english_on_request(client: FlaskClient) -> None:
    page = client.get("/login").get_data(as_text=True)
    assert '<html lang="sv">' in page
    assert "Logga in" in page and "Användarnamn" in page and "Lösenord" in page
    assert "Hoppa till innehållet" in page
    assert "Log in" not in page

    _switch(client, page, "en", "/login")
    page = client.get("/login").get_data(as_text=True)
    assert '<html lang="en">' in page
    assert "Log in" in page and "Username" in page and "Skip to content" in page
    assert "Logga in" not in page

    _switch(client, page, "sv", "/login")
    page = client.get("/login").get_data(as_text=True)
    assert '<html lang="sv">' in page and "Logga in" in page


def test_an_unknown_language_falls_back_to_swedish(client: FlaskClient) -> None:
    page = client.get("/login").get_data(as_text=True)
    _switch(client, page, "de", "/login")
    page = client.get("/login").get_data(as_text=True)
    assert '<html lang="sv">' in page and "Logga in" in page


def test_form_errors_follow_the_language(client: FlaskClient) -> None:
    """Messages from Python code (the view, the form) and from the form macros."""
    page = client.get("/login").get_data(as_text=True)
    data = {"username": "nobody", "password": "wrong", "csrf_token": csrf_token_from(page)}
    body = client.post("/login", data=data).get_data(as_text=True)
    assert "Det finns ett problem" in body and "Fel användarnamn eller lösenord." in body

    _switch(client, body, "en", "/login")
    page = client.get("/login").get_data(as_text=True)
    data["csrf_token"] = csrf_token_from(page)
    body = client.post("/login", data=data).get_data(as_text=True)
    assert "There is a problem" in body and "Wrong username or password." in body


def test_logged_in_pages_in_both_languages(login_as: Any) -> None:
    client = login_as("handlaggare")
    page = client.get("/").get_data(as_text=True)
    assert '<html lang="sv">' in page
    assert "Inkorg" in page and "Ärenden" in page and "Logga ut" in page

    _switch(client, page, "en", "/cases")
    page = client.get("/cases").get_data(as_text=True)
    assert '<html lang="en">' in page
    assert "Inbox" in page and "Cases" in page and "Log out" in page
    missing = client.get("/cases/999999")
    assert missing.status_code == 404
    assert '<html lang="en">' in missing.get_data(as_text=True)
