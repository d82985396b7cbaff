"""Supply-chain audit: known vulnerabilities in the installed dependencies (``make audit``).

Runs ``pip-audit`` on the environment surge runs in (the editable ``surge`` itself is skipped) and
judges its answer. ``pip-audit`` reports a package it could not look up as skipped, and then still
says "No known vulnerabilities found"; when the vulnerability service cannot be reached, every
package is skipped that way. This script says so and fails (exit 2) instead of passing silently.

Exit codes: 0 audited, no findings; 1 known vulnerabilities; 2 not (fully) audited.
"""

from __future__ import annotations

import json
import subprocess
import sys


def main() -> int:
    proc = subprocess.run(   # a fixed command line, no shell
        [sys.executable, "-m", "pip_audit", "--format", "json", "--progress-spinner", "off", "--skip-editable"],
        capture_output=True, text=True, timeout=900)
    try:
        report = json.loads(proc.stdout)
    except ValueError:
        print(f"pip-audit: NOT AUDITED — pip-audit failed (exit {proc.returncode}):\n{proc.stderr[-2000:]}")
        return 2
    deps = report.get("dependencies", [])
    editable = [d for d in deps if "editable" in (d.get("skip_reason") or "")]   # surge itself
    deps = [d for d in deps if d not in editable]
    skipped = [d for d in deps if d.get("skip_reason")]
    vulnerable = [d for d in deps if d.get("vulns")]
    for d in vulnerable:
        for v in d["vulns"]:
            fixes = ", ".join(v.get("fix_versions") or []) or "no fix yet"
            print(f"{d['name']} {d['version']}: {v['id']} (fixed in {fixes})")
    audited = len(deps) - len(skipped)
    if vulnerable:
        print(f"pip-audit: {len(vulnerable)} of {audited} audited packages have known vulnerabilities")
        return 1
    if skipped:
        reasons = sorted({d["skip_reason"].split(":")[0] for d in skipped})
        print(f"pip-audit: NOT AUDITED — {len(skipped)} of {len(deps)} packages could not be looked up "
              f"({'; '.join(reasons)}). The vulnerability service (PyPI's JSON API, or OSV with "
              "`--vulnerability-service osv`) is not reachable from here, or does not know these versions: "
              "no finding is not the same as no vulnerability. Run `make audit` where it is reachable.")
        for d in skipped[:10]:
            print(f"  not looked up: {d['name']}")
        return 2
    print(f"pip-audit: {audited} packages audited, 0 known vulnerabilities")
    return 0


if __name__ == "__main__":
    sys.exit(main())
