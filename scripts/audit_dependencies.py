"""``make audit``: check every pinned dependency in requirements.lock for known vulnerabilities.

Runs pip-audit against the lock (no resolution, no install) and reads its JSON report, because
pip-audit exits 0 with "No known vulnerabilities found" even when it could not look a single
package up (vulnerability service unreachable, or a package or version it does not know). Here
that is never a pass:

exit 0  every dependency was checked and none has a known vulnerability
exit 1  at least one known vulnerability (listed with its fix versions)
exit 2  the check could not be completed (service unreachable, packages not audited): say so

Not part of ``make test``: it depends on an outside service (PyPI's or OSV's vulnerability data)
that may be down or unreachable from a build host; CI runs it as its own step, and a failure to
reach the service fails that step loudly instead of passing silently.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LOCK = ROOT / "requirements.lock"


def main(argv: list[str]) -> int:
    service = argv[0] if argv else "pypi"
    pip_audit = Path(sys.executable).with_name("pip-audit")
    command = [
        str(pip_audit),
        "--requirement",
        str(LOCK),
        "--no-deps",
        "--disable-pip",
        "--progress-spinner",
        "off",
        "--vulnerability-service",
        service,
        "--format",
        "json",
    ]
    run = subprocess.run(command, capture_output=True, text=True, check=False)  # noqa: S603
    try:
        report = json.loads(run.stdout)
    except json.JSONDecodeError:
        last = (run.stderr.strip().splitlines() or ["no output"])[-1]
        print(f"AUDIT NOT DONE: pip-audit could not reach the {service} vulnerability service")
        print(f"  ({last})")
        return 2
    deps = report.get("dependencies", [])
    skipped = [d for d in deps if d.get("skip_reason")]
    vulnerable = [d for d in deps if d.get("vulns")]
    for dep in vulnerable:
        for vuln in dep["vulns"]:
            fixes = ", ".join(vuln.get("fix_versions") or []) or "no fix yet"
            print(f"VULNERABLE {dep['name']} {dep['version']}: {vuln['id']} (fixed in {fixes})")
    if skipped:
        print(
            f"AUDIT INCOMPLETE: {len(skipped)} of {len(deps)} pinned dependencies could not be "
            f"checked against the {service} vulnerability service (unreachable, or it does not "
            "know them). This is NOT a pass. First ones:"
        )
        for dep in skipped[:5]:
            print(f"  {dep['skip_reason']}")
    if vulnerable:
        return 1
    if skipped or not deps:
        return 2
    print(f"audit passed: {len(deps)} pinned dependencies, no known vulnerabilities ({service})")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
