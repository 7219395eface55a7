"""`fluxlit doctor`: run the check registry offline (and against a running instance with --url) and explain."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import click

from fluxlit.doctor.app_checks import (
    check_body_limit,
    check_body_read_timeout,
    check_graceful_timeout,
    check_pages,
    check_settings,
    check_target,
    check_upstream_timeouts,
)
from fluxlit.doctor.auth_checks import check_forward_auth, check_jwt_auth
from fluxlit.doctor.env_checks import (
    check_dependencies,
    check_port,
    check_python,
    check_state_file,
)
from fluxlit.doctor.live_checks import (
    check_healthz,
    check_html_shell,
    check_readyz,
    check_static_asset,
    check_websocket,
    check_websocket_keepalive,
)
from fluxlit.doctor.model import Check, CheckFunction, DoctorContext, Status, check_name, failed
from fluxlit.doctor.upstream_checks import check_upstream_keep_alive
from fluxlit.doctor.verbose import render_verbose_text, verbose_snapshot

# Order matters only for reading: environment first, then the app and its auth, then the running instance.
OFFLINE_CHECKS: tuple[CheckFunction, ...] = (
    check_python,
    check_dependencies,
    check_settings,
    check_target,
    check_pages,
    check_upstream_timeouts,
    check_upstream_keep_alive,
    check_body_read_timeout,
    check_graceful_timeout,
    check_body_limit,
    check_forward_auth,
    check_jwt_auth,
    check_port,
    check_state_file,
)
LIVE_CHECKS: tuple[CheckFunction, ...] = (
    check_healthz,
    check_readyz,
    check_html_shell,
    check_static_asset,
    check_websocket,
    check_websocket_keepalive,
)


def describe_checks() -> list[dict[str, str | bool]]:
    """Every check's name, whether it needs --url, and what it verifies (first docstring line), for docs."""
    return [
        {"name": check_name(fn), "live": fn in LIVE_CHECKS, "checks": (fn.__doc__ or "").split("\n")[0]}
        for fn in (*OFFLINE_CHECKS, *LIVE_CHECKS)
    ]


def run_checks(ctx: DoctorContext, checks: Sequence[CheckFunction]) -> list[Check]:
    """Run each check; one that crashes is reported as a FAIL of its own rather than ending the run."""
    results = []
    for function in checks:
        try:
            results.append(function(ctx))
        except Exception as error:
            results.append(
                failed(
                    check_name(function),
                    f"the check itself crashed: {type(error).__name__}: {error}",
                    "report this as a FluxLit bug, with this output",
                )
            )
    return results


def overall(results: Sequence[Check]) -> Status:
    statuses = {check.status for check in results}
    for status in (Status.FAIL, Status.WARN):
        if status in statuses:
            return status
    return Status.PASS


def exit_code(results: Sequence[Check], *, strict: bool, warnings_only: bool = False) -> int:
    """1 on a FAIL (or, with `strict`, a WARN); `warnings_only` reports them all and exits 0."""
    verdict = overall(results)
    failing = verdict is Status.FAIL or (strict and verdict is Status.WARN)
    return 0 if warnings_only else int(failing)


def render_text(results: Sequence[Check]) -> str:
    lines = [f"{c.status.value}  {c.name}: {c.detail}" + (f" (fix: {c.fix})" if c.fix else "") for c in results]
    counts = {status: sum(c.status is status for c in results) for status in Status}
    lines.append(
        f"\n{overall(results).value}: {counts[Status.PASS]} passed, "
        f"{counts[Status.WARN]} warning(s), {counts[Status.FAIL]} failed"
    )
    return "\n".join(lines)


def render_json(
    results: Sequence[Check], *, target: str = "", warnings_only: bool = False, verbose: dict[str, Any] | None = None
) -> str:
    """The reference's keys: status (a FAIL reads WARN under --warnings-only, as there), target, checks, verbose."""
    status = overall(results)
    if warnings_only and status is Status.FAIL:
        status = Status.WARN
    report: dict[str, Any] = {
        "status": status.value,
        "target": target,
        "warnings_only": warnings_only,
        "checks": [c.as_dict() for c in results],
    }
    if verbose is not None:
        report["verbose"] = verbose
    return json.dumps(report, indent=2)


@click.command(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.argument("target", required=False)
@click.option("--json", "as_json", is_flag=True, help="Print JSON: {status, checks: [{name, status, detail, fix}]}.")
@click.option("--strict", is_flag=True, help="Exit 1 on warnings too, not only on failures.")
@click.option(
    "--warnings-only",
    is_flag=True,
    help="Always exit 0, still printing every FAIL and WARN (a report that must not stop a script); "
    "wins over --strict.",
)
@click.option(
    "--verbose",
    "-v",
    is_flag=True,
    help="After the checks, print the effective configuration they judged, secrets redacted (with --json: its "
    "'verbose' key).",
)
@click.option(
    "--check-pages",
    is_flag=True,
    expose_value=False,
    help="Accepted for fluxlit 0.13: the pages are always checked (clashing paths or slugs, hidden paths).",
)
@click.option(
    "--url",
    default=None,
    metavar="URL",
    help="Also check a running instance as browsers reach it, e.g. https://example.com/apps/demo "
    "(health, readiness, the page, one asset, the WebSocket handshake and its keepalive pings).",
)
@click.option(
    "--lb-idle-timeout",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    metavar="SECONDS",
    help="With --url: the idle timeout of the load balancer in front (ALB: 60); warn unless the ping interval "
    "is below it, and wait (up to the interval) for a ping through it.",
)
def doctor(
    target: str | None,
    as_json: bool,
    strict: bool,
    warnings_only: bool,
    verbose: bool,
    url: str | None,
    lb_idle_timeout: float | None,
) -> None:
    """Check the environment, the configuration and the app TARGET, and say how to fix what is wrong.

    TARGET is the app as for 'fluxlit serve' (default: FLUXLIT_APP, then the project file, then app:app).
    Settings come from FLUXLIT_* env vars and fluxlit.toml, as for 'fluxlit serve'.
    Each line reads 'STATUS  name: detail (fix: ...)'. Exit code: 0 when nothing failed, 1 otherwise
    (with --strict also on warnings; never with --warnings-only).
    """
    if url is not None and not url.startswith(("http://", "https://")):
        raise click.BadParameter(f"{url!r} must start with http:// or https://", param_hint="--url")
    if lb_idle_timeout is not None and url is None:
        raise click.BadParameter("checks a running instance: give its --url too", param_hint="--lb-idle-timeout")
    ctx = DoctorContext(target_arg=target, url=url, cwd=Path.cwd(), lb_idle_timeout=lb_idle_timeout)
    results = run_checks(ctx, OFFLINE_CHECKS + (LIVE_CHECKS if url else ()))
    snapshot = verbose_snapshot(ctx) if verbose else None
    if as_json:
        click.echo(render_json(results, target=ctx.target_spec, warnings_only=warnings_only, verbose=snapshot))
    else:
        click.echo(render_text(results))
        if snapshot is not None:
            click.echo("\n" + render_verbose_text(snapshot))
    sys.exit(exit_code(results, strict=strict, warnings_only=warnings_only))


__all__ = ["LIVE_CHECKS", "OFFLINE_CHECKS", "Check", "Status", "describe_checks", "doctor", "run_checks"]
