"""Hardened XML parsing for uploaded BPMN.

SpiffWorkflow parses with lxml's default parser, whose entity handling depends on the lxml
version. Uploads are parsed here instead: size cap, no DTD, no entities, no network, and any
DOCTYPE refused outright (BPMN never needs one). Errors never echo the file's contents.
"""

from __future__ import annotations

import re

from lxml import etree

from engine.workflow.problems import ModelError, Problem

__all__ = ["MAX_BPMN_BYTES", "parse_xml"]

MAX_BPMN_BYTES = 2 * 1024 * 1024

_DTD_MARKERS = re.compile(rb"<!\s*(DOCTYPE|ENTITY)", re.IGNORECASE)
_DTD_MARKERS_UTF16 = (
    "<!DOCTYPE".encode("utf-16-le"),
    "<!DOCTYPE".encode("utf-16-be"),
    "<!ENTITY".encode("utf-16-le"),
    "<!ENTITY".encode("utf-16-be"),
)


def _parser() -> etree.XMLParser:
    # A fresh parser per call: lxml parsers are not safe to share between threads.
    return etree.XMLParser(
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        dtd_validation=False,
        huge_tree=False,
        remove_comments=True,
        remove_pis=True,
    )


def _refuse(en: str, sv: str, line: int | None = None, code: str = "xml.invalid") -> ModelError:
    return ModelError([Problem(None, en, sv, line, code)])


def parse_xml(data: bytes) -> etree._Element:
    """Parse untrusted BPMN bytes into an element tree, or raise ModelError."""
    if isinstance(data, str):
        # A str with an encoding declaration is refused by lxml; keep one input type.
        raise _refuse(
            "BPMN must be given as bytes, not text",
            "BPMN måste lämnas som bytes, inte text",
        )
    if not isinstance(data, bytes | bytearray | memoryview):
        raise _refuse("BPMN must be given as bytes", "BPMN måste lämnas som bytes")
    raw = bytes(data)
    if len(raw) > MAX_BPMN_BYTES:
        raise _refuse(
            f"the file is larger than {MAX_BPMN_BYTES} bytes",
            f"filen är större än {MAX_BPMN_BYTES} byte",
            code="xml.too_large",
        )
    if not raw.strip():
        raise _refuse("the file is empty", "filen är tom", code="xml.empty")
    upper = raw.upper()
    if _DTD_MARKERS.search(raw) or any(m.upper() in upper for m in _DTD_MARKERS_UTF16):
        raise _refuse(
            "DOCTYPE and ENTITY declarations are not allowed",
            "DOCTYPE- och ENTITY-deklarationer är inte tillåtna",
            code="xml.doctype",
        )
    try:
        root = etree.fromstring(raw, parser=_parser())
    except etree.XMLSyntaxError as exc:
        line = exc.lineno if isinstance(exc.lineno, int) and exc.lineno > 0 else None
        raise _refuse(
            "the file is not well-formed XML",
            "filen är inte välformad XML",
            line,
            code="xml.malformed",
        ) from None
    except (ValueError, etree.LxmlError):
        raise _refuse(
            "the file could not be read as XML",
            "filen kunde inte läsas som XML",
            code="xml.malformed",
        ) from None
    if root is None:
        raise _refuse(
            "the file has no XML root element", "filen saknar rotelement", code="xml.malformed"
        )
    docinfo = root.getroottree().docinfo
    if docinfo.doctype or docinfo.internalDTD is not None or docinfo.externalDTD is not None:
        raise _refuse(
            "DOCTYPE and ENTITY declarations are not allowed",
            "DOCTYPE- och ENTITY-deklarationer är inte tillåtna",
            code="xml.doctype",
        )
    for node in root.iter():
        if isinstance(node, etree._Entity):
            raise _refuse(
                "entity references are not allowed",
                "entitetsreferenser är inte tillåtna",
                node.sourceline,
                code="xml.entity",
            )
    return root
