"""Every attack and fault case of security.md §6 is one named test.

The tests under tests/ are read as source (no import): for each N in 1..30 exactly one function
``test_case_NN_<short name>`` must exist, wherever it lives. A missing case, or a case split over
two functions with the same number (rename the second; a parametrized test counts once), fails
here with the list of what is wrong.
"""

from __future__ import annotations

import re
from pathlib import Path

from tests.security.security_kit import CASE_TEST, case_test_names

SECURITY_MD = Path(__file__).resolve().parents[3] / "shared" / "security.md"


def test_every_case_of_section_6_is_exactly_one_test() -> None:
    found = case_test_names()
    missing = [n for n in range(1, 31) if n not in found]
    doubled = {n: names for n, names in found.items() if len(names) > 1}
    unknown = sorted(n for n in found if not 1 <= n <= 30)
    problems = [f"case {n:02d}: no test_case_{n:02d}_... test" for n in missing]
    problems += [f"case {n:02d}: {len(v)} tests: {', '.join(v)}" for n, v in doubled.items()]
    problems += [f"test_case_{n:02d}_...: §6 has no case {n}" for n in unknown]
    assert not problems, "security.md §6 catalogue:\n" + "\n".join(problems)


def test_the_catalogue_scan_sees_what_it_should() -> None:
    names = case_test_names()
    # this folder's own cases are found, with their file
    assert any("test_attack_cases_core.py::test_case_01_" in n for n in names.get(1, []))
    assert any("test_reliability.py::test_case_30_" in n for n in names.get(30, []))
    assert CASE_TEST.match("test_case_07_caseworker_approves")
    assert not CASE_TEST.match("test_case_list_and_case_page")  # other tests are not cases
    assert not CASE_TEST.match("test_case_7_one_digit")


def test_section_6_still_has_thirty_cases() -> None:
    if not SECURITY_MD.exists():
        return  # the specs live beside the repository; nothing to compare in a bare checkout
    text = SECURITY_MD.read_text(encoding="utf-8")
    section = text.split("## 6.", 1)[1].split("\n## ", 1)[0]
    numbers = [int(m) for m in re.findall(r"^(\d+)\. ", section, flags=re.MULTILINE)]
    assert numbers == list(range(1, 31))
