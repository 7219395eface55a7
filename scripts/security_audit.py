"""Audit the installed runtime surface for known vulnerabilities and write a CycloneDX SBOM beside the result.

Usage: security_audit.py TARGET_PYTHON TOOLS_BIN OUT_DIR

TARGET_PYTHON is the interpreter of an environment holding `fluxlit[auth]` and nothing else; TOOLS_BIN holds
pip-audit and cyclonedx-py, kept apart so their own dependencies are not part of what is audited.

pip-audit asks PyPI for each installed version (/pypi/NAME/VERSION/json). Where that endpoint is not served
(some mirrors serve only the project-level JSON), pip-audit skips the package yet still says "No known
vulnerabilities found"; a gate that trusted that would pass having audited nothing. So every skipped package
is looked up again through the project-level JSON, whose `vulnerabilities` list is exact when the installed
version is the latest release. What neither source can audit is listed by name; exit status:
0 nothing known is vulnerable, 1 a vulnerability was found, 2 the audit could not run.
"""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

PYPI_PROJECT_JSON = "https://pypi.org/pypi/{name}/json"


def site_packages(python: str) -> str:
    code = "import sysconfig; print(sysconfig.get_paths()['purelib'])"
    return subprocess.run([python, "-c", code], check=True, capture_output=True, text=True).stdout.strip()


def run_pip_audit(tools_bin: Path, target_python: str, report: Path) -> dict[str, Any]:
    command = [
        str(tools_bin / "pip-audit"),
        "--path",
        site_packages(target_python),
        "--skip-editable",  # fluxlit itself: not on PyPI
        "--progress-spinner",
        "off",
        "--format",
        "json",
        "--output",
        str(report),
    ]
    # Exit 1 means "vulnerabilities found"; the report says which, so only a missing report is fatal.
    subprocess.run(command, check=False)
    if not report.exists():
        raise SystemExit(f"security audit: pip-audit wrote no report at {report}; see its output above")
    result: dict[str, Any] = json.loads(report.read_text())
    return result


def write_sbom(tools_bin: Path, target_python: str, sbom: Path) -> None:
    subprocess.run(
        [str(tools_bin / "cyclonedx-py"), "environment", "--output-format", "JSON", "-o", str(sbom), target_python],
        check=True,
    )


def latest_release_vulnerabilities(name: str, version: str) -> list[str] | None:
    """IDs of known vulnerabilities of NAME==VERSION, or None when PyPI cannot tell (not the latest release)."""
    try:
        with urllib.request.urlopen(PYPI_PROJECT_JSON.format(name=name), timeout=30) as reply:
            project = json.load(reply)
    except (urllib.error.URLError, TimeoutError, ValueError):
        return None
    if project.get("info", {}).get("version") != version:
        return None
    return [v["id"] for v in project.get("vulnerabilities", []) if not v.get("withdrawn")]


def main(argv: list[str]) -> int:
    if len(argv) != 4:
        print(__doc__, file=sys.stderr)
        return 2
    target_python, tools_bin, out_dir = argv[1], Path(argv[2]), Path(argv[3])
    out_dir.mkdir(parents=True, exist_ok=True)
    report = run_pip_audit(tools_bin, target_python, out_dir / "pip-audit.json")
    write_sbom(tools_bin, target_python, out_dir / "cyclonedx-sbom.json")

    found: list[str] = []
    by_pip_audit = by_project_json = 0
    unaudited: list[str] = []
    for dependency in report["dependencies"]:
        name, version = dependency["name"], dependency.get("version")
        if "skip_reason" not in dependency:
            by_pip_audit += 1
            found += [f"{name}=={version}: {v['id']}" for v in dependency.get("vulns", [])]
            continue
        if "editable" in dependency["skip_reason"]:
            continue  # fluxlit itself, installed from this checkout
        version = version or dependency["skip_reason"].rsplit("(", 1)[-1].rstrip(")")
        ids = latest_release_vulnerabilities(name, version)
        if ids is None:
            unaudited.append(f"{name}=={version}")
            continue
        by_project_json += 1
        found += [f"{name}=={version}: {vid}" for vid in ids]

    total = by_pip_audit + by_project_json + len(unaudited)
    print(f"security audit: {total} packages; {by_pip_audit} audited by pip-audit, {by_project_json} by PyPI's")
    print(f"  project JSON (installed version is the latest release), {len(unaudited)} could not be audited")
    if unaudited:
        print("  not audited (PyPI does not serve this version's vulnerability data here): " + ", ".join(unaudited))
    print(f"  SBOM: {out_dir / 'cyclonedx-sbom.json'}; pip-audit report: {out_dir / 'pip-audit.json'}")
    if by_pip_audit + by_project_json == 0:
        print("security audit: nothing could be audited (is PyPI reachable?)", file=sys.stderr)
        return 2
    if found:
        print("security audit: known vulnerabilities:\n  " + "\n  ".join(found), file=sys.stderr)
        return 1
    print("security audit: no known vulnerabilities in the audited packages")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
