"""Extract the catalogue again, update Swedish, and fill new entries from pending fragments.

Parallel work writes its Swedish translations as PO fragments in
``webapp/translations/pending/*.po`` instead of editing the shared catalogue. This script runs
the extraction and update of babel.cfg, copies each translation of a fragment into the
catalogue where the entry is new, empty or fuzzy, and lists what is still untranslated
(exit status 1 then). Fragments whose entries are all merged can be deleted.

Usage: ``PYTHONPATH=. .venv/bin/python scripts/merge-translations.py``
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from babel.messages.pofile import read_po, write_po

ROOT = Path(__file__).resolve().parents[1]
TRANSLATIONS = ROOT / "webapp" / "translations"
PO = TRANSLATIONS / "sv" / "LC_MESSAGES" / "messages.po"
BIN = Path(sys.executable).parent


def _run(*args: str) -> None:
    subprocess.run([str(BIN / "pybabel"), *args], cwd=ROOT, check=True, capture_output=True)  # noqa: S603 (fixed program, our own arguments)


def _pending() -> dict[str, str]:
    """msgid -> msgstr of every pending fragment (a later fragment does not override)."""
    found: dict[str, str] = {}
    for path in sorted((TRANSLATIONS / "pending").glob("*.po")):
        with path.open("rb") as handle:
            for message in read_po(handle):
                if message.id and isinstance(message.id, str) and message.string:
                    found.setdefault(message.id, str(message.string))
    return found


def main() -> int:
    _run(
        "extract", "-F", "babel.cfg", "-k", "_l", "-k", "lazy_gettext",
        "-o", "webapp/translations/messages.pot", ".",
    )  # fmt: skip
    _run(
        "update", "--no-fuzzy-matching", "-i", "webapp/translations/messages.pot",
        "-d", "webapp/translations", "-l", "sv",
    )  # fmt: skip
    with PO.open("rb") as handle:
        catalog = read_po(handle)
    pending = _pending()
    filled = 0
    for message in catalog:
        if not message.id or not isinstance(message.id, str):
            continue
        if (not message.string or message.fuzzy) and message.id in pending:
            message.string = pending[message.id]
            message.flags.discard("fuzzy")
            filled += 1
    with PO.open("wb") as handle:
        write_po(handle, catalog, width=100, omit_header=False, ignore_obsolete=True)
    missing = [
        m.id for m in catalog if m.id and isinstance(m.id, str) and (not m.string or m.fuzzy)
    ]
    print(f"filled {filled} entries from pending fragments; {len(missing)} still untranslated")
    for msgid in missing:
        print(f"  {msgid!r}")
    return 1 if missing else 0


if __name__ == "__main__":
    raise SystemExit(main())
