"""Audit an installed environment for known vulnerabilities (and write a CycloneDX SBOM beside the result).

Usage: security_audit.py TARGET_PYTHON TOOLS_BIN OUT_DIR [--floors CONSTRAINTS]

TARGET_PYTHON is the interpreter of an environment holding `fluxlit[auth]` and nothing else; TOOLS_BIN holds
pip-audit and cyclonedx-py, kept apart so their own dependencies are not part of what is audited.

pip-audit asks PyPI for each installed version (/pypi/NAME/VERSION/json), and is asked again with its OSV
service (api.osv.dev). Where neither answers (a mirror that serves only the project-level JSON, no route to
OSV), pip-audit skips the package yet still says "No known vulnerabilities found"; a gate that trusted that
would pass having audited nothing. So every package no service answered for is looked up through the
project-level JSON, whose `vulnerabilities` list is exact when the installed version is the latest release.

With --floors (`make audit-floors`: the lowest versions pyproject.toml allows, pinned in CONSTRAINTS by
floor_constraints.py) those pinned packages are never the latest release, so they are also checked against
the hand-curated floor_advisories.json, and each of them must be audited by some source. No SBOM then.

What no source can audit is listed by name; exit status: 0 nothing known is vulnerable, 1 a vulnerability was
found, 2 the audit could not run (nothing audited, or with --floors a pinned floor that nothing audited).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import urllib.error
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Any

PYPI_PROJECT_JSON = "https://pypi.org/pypi/{name}/json"


def canonical(name: str) -> str:
    return name.lower().replace("_", "-").replace(".", "-")


def site_packages(python: str) -> str:
    code = "import sysconfig; print(sysconfig.get_paths()['purelib'])"
    return subprocess.run([python, "-c", code], check=True, capture_output=True, text=True).stdout.strip()


def run_pip_audit(tools_bin: Path, target_python: str, report: Path, service: str) -> dict[str, Any] | None:
    """pip-audit's JSON report using `service` ("pypi" or "osv"), or None when it could not produce one."""
    report.unlink(missing_ok=True)
    command = [
        str(tools_bin / "pip-audit"),
        "--path",
        site_packages(target_python),
        "--skip-editable",  # fluxlit itself: not on PyPI
        "--vulnerability-service",
        service,
        "--progress-spinner",
        "off",
        "--format",
        "json",
        "--output",
        str(report),
    ]
    # Exit 1 means "vulnerabilities found"; the report says which. Without a report the service did not answer
    # (pip-audit ends with a traceback when a service's host cannot be reached): keep its last words only.
    done = subprocess.run(command, check=False, capture_output=True, text=True)
    if not report.exists():
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        print(f"security audit: pip-audit --vulnerability-service {service} wrote no report: {last[:300]}")
        return None
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


def answered(report: dict[str, Any] | None) -> dict[str, dict[str, Any]]:
    """The dependencies a pip-audit report actually audited, by canonical name."""
    if report is None:
        return {}
    return {canonical(d["name"]): d for d in report["dependencies"] if "skip_reason" not in d}


def pinned_floors(constraints: Path) -> dict[str, str]:
    pins = {}
    for line in constraints.read_text().splitlines():
        name, sep, version = line.strip().partition("==")
        if sep:
            pins[canonical(name)] = version
    return pins


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("target_python")
    parser.add_argument("tools_bin", type=Path)
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--floors", type=Path, metavar="CONSTRAINTS", help="audit the floor versions pinned there")
    args = parser.parse_args(argv[1:])
    out_dir: Path = args.out_dir
    out_dir.mkdir(parents=True, exist_ok=True)
    by_pypi = run_pip_audit(args.tools_bin, args.target_python, out_dir / "pip-audit.json", "pypi")
    if by_pypi is None:
        print(f"security audit: pip-audit wrote no report at {out_dir / 'pip-audit.json'}", file=sys.stderr)
        return 2
    by_osv = answered(run_pip_audit(args.tools_bin, args.target_python, out_dir / "pip-audit-osv.json", "osv"))
    by_pypi_service = answered(by_pypi)
    floors = pinned_floors(args.floors) if args.floors else {}
    curated = None
    if args.floors:
        import floor_advisories  # beside this script

        curated = floor_advisories.load()
    if not args.floors:
        write_sbom(args.tools_bin, args.target_python, out_dir / "cyclonedx-sbom.json")

    found: list[str] = []
    sources: Counter[str] = Counter()
    unaudited: list[str] = []
    for dependency in by_pypi["dependencies"]:
        name, version = dependency["name"], dependency.get("version")
        if "editable" in dependency.get("skip_reason", ""):
            continue  # fluxlit itself, installed from this checkout
        version = version or dependency["skip_reason"].rsplit("(", 1)[-1].rstrip(")")
        key = canonical(name)
        audited_by = []
        for service, answers in (("pip-audit (PyPI)", by_pypi_service), ("pip-audit (OSV)", by_osv)):
            if key in answers:
                audited_by.append(service)
                found += [f"{name}=={version}: {v['id']} ({service})" for v in answers[key].get("vulns", [])]
        if not audited_by:
            ids = latest_release_vulnerabilities(name, version)
            if ids is not None:
                audited_by.append("PyPI project JSON")
                found += [f"{name}=={version}: {vid} (PyPI project JSON)" for vid in ids]
        if curated is not None and curated.covers(name):
            audited_by.append("floor_advisories.json")
            found += [f"{name}=={version}: {vid} (floor_advisories.json)" for vid in curated.affecting(name, version)]
        if audited_by:
            sources.update(audited_by)
        else:
            unaudited.append(f"{name}=={version}")

    total = sum(1 for d in by_pypi["dependencies"] if "editable" not in d.get("skip_reason", ""))
    by_source = ", ".join(f"{source} {count}" for source, count in sources.items()) or "none"
    print(f"security audit: {total} packages; audited by: {by_source}")
    if curated is not None:
        print(f"  floor_advisories.json was reviewed on {curated.reviewed} (a curated list, not a live service)")
    print(f"  {len(unaudited)} could not be audited" + (": " + ", ".join(unaudited) if unaudited else ""))
    sbom = "" if args.floors else f"; SBOM: {out_dir / 'cyclonedx-sbom.json'}"
    print(f"  reports: {out_dir}/pip-audit*.json{sbom}")
    if found:
        print("security audit: known vulnerabilities:\n  " + "\n  ".join(sorted(set(found))), file=sys.stderr)
        return 1
    unaudited_floors = [p for p in unaudited if canonical(p.split("==")[0]) in floors]
    if unaudited_floors:
        print(
            "security audit: no source could audit these floors: " + ", ".join(unaudited_floors) + ";"
            " review their advisories and list them in scripts/floor_advisories.json",
            file=sys.stderr,
        )
        return 2
    if not sources:
        print("security audit: nothing could be audited (is PyPI reachable?)", file=sys.stderr)
        return 2
    print("security audit: no known vulnerabilities in the audited packages")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
