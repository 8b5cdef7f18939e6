"""Hardened XML parsing of uploads: no DOCTYPE, no entities, size cap, no content echo."""

from __future__ import annotations

import time

import pytest

from engine.workflow.problems import ModelError
from engine.workflow.xmlsafe import MAX_BPMN_BYTES, parse_xml

OK = b'<?xml version="1.0" encoding="UTF-8"?><root><child>hello</child><!-- c --></root>'

XXE = b"""<?xml version="1.0"?>
<!DOCTYPE d [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<d><documentation>leak:&xxe;</documentation></d>"""

BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
 <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
 <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
 <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
 <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
<lolz>&lol9;</lolz>"""

EXTERNAL_DTD = b"""<?xml version="1.0"?>
<!DOCTYPE d SYSTEM "http://127.0.0.1:9/evil.dtd">
<d>x</d>"""

PARAMETER_ENTITY = b"""<?xml version="1.0"?>
<!DOCTYPE d [<!ENTITY % ext SYSTEM "http://127.0.0.1:9/x.dtd"> %ext;]>
<d>x</d>"""


def test_plain_xml_parses_and_drops_comments() -> None:
    root = parse_xml(OK)
    assert root.tag == "root"
    assert [c.tag for c in root] == ["child"]


@pytest.mark.parametrize(
    "payload",
    [
        XXE,
        BILLION_LAUGHS,
        EXTERNAL_DTD,
        PARAMETER_ENTITY,
        b"<!doctype d><d/>",
        b"<?xml version='1.0'?>\n<!DoCtYpE d []><d/>",
        b"<d><!ENTITY x 'y'></d>",
        "<?xml version='1.0' encoding='UTF-16'?><!DOCTYPE d><d/>".encode("utf-16"),
    ],
)
def test_dtd_and_entities_refused(payload: bytes) -> None:
    started = time.perf_counter()
    with pytest.raises(ModelError) as info:
        parse_xml(payload)
    assert time.perf_counter() - started < 1.0
    text = str(info.value)
    assert "root:" not in text and "lol" not in text and "passwd" not in text
    assert info.value.problems[0].message_sv


def test_size_cap() -> None:
    body = b"<d>" + b"a" * (MAX_BPMN_BYTES - 7) + b"</d>"
    assert len(body) == MAX_BPMN_BYTES
    parse_xml(body)  # exactly at the cap is fine
    with pytest.raises(ModelError, match="larger than"):
        parse_xml(body + b" ")


def test_malformed_xml_does_not_echo_content() -> None:
    secret = b"SECRET-CONTENT-123"
    with pytest.raises(ModelError) as info:
        parse_xml(b"<d>" + secret + b"<unclosed></d>")
    assert "SECRET" not in str(info.value)
    assert "well-formed" in str(info.value)
    assert info.value.problems[0].line == 1


@pytest.mark.parametrize("payload", [b"", b"   ", b"not xml at all"])
def test_empty_or_garbage(payload: bytes) -> None:
    with pytest.raises(ModelError):
        parse_xml(payload)


def test_str_refused_bytes_accepted() -> None:
    with pytest.raises(ModelError, match="bytes"):
        parse_xml(OK.decode())  # type: ignore[arg-type]
    assert parse_xml(bytearray(OK)).tag == "root"  # type: ignore[arg-type]
