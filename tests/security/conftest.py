"""The security case tests reuse the kits of tests/webapp and tests/engine, which import each
other by their plain module names (``matrix_kit``, ``engine_testkit``): put both folders on the
import path, as pytest does when it collects their own tests."""

from __future__ import annotations

import sys
from pathlib import Path

TESTS = Path(__file__).resolve().parent.parent
for folder in (TESTS / "webapp", TESTS / "engine"):
    if str(folder) not in sys.path:
        sys.path.append(str(folder))
