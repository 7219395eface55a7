"""Doctor checks of the app and its configuration: settings, target, pages, timeouts and the body limit."""

from __future__ import annotations

import os
import shlex
import sys
from pathlib import Path
from typing import Any

from fluxlit.config.paths import is_under
from fluxlit.doctor.model import Check, DoctorContext, failed, not_checked, passed, warned
from fluxlit.errors import ConfigError, TargetError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised only on Python 3.10
    import tomli as tomllib  # type: ignore[import-not-found,unused-ignore]

# Below this a slow Streamlit answer (a big dataframe, a cold cache) is cut off with 504.
MIN_READ_TIMEOUT_S = 5.0
# A body part may take this long on a poor mobile link; a stalled body should not hold a connection far longer.
BODY_READ_TIMEOUT_RANGE_S = (5.0, 300.0)
# Kubernetes' default terminationGracePeriodSeconds: a longer drain is cut short by SIGKILL.
K8S_TERMINATION_GRACE_S = 30.0
# Streamlit's own default for server.maxUploadSize, in megabytes (it multiplies by 1024 * 1024).
STREAMLIT_DEFAULT_UPLOAD_MB = 200
_MB = 1024 * 1024
# Paths the gateway or Streamlit answer themselves, so a page served there would never render.
_RESERVED_PAGE_PATHS = ("/_stcore", "/docs", "/redoc", "/openapi.json")


def check_settings(ctx: DoctorContext) -> Check:
    """Settings from flags, FLUXLIT_* env vars and fluxlit.toml parse and fit together."""
    resolved = ctx.resolved
    if isinstance(resolved, ConfigError):
        return failed(
            "settings",
            str(resolved),
            "correct that value where it is set; 'fluxlit config' shows every value and its source",
        )
    source = f"project file {resolved.project_file}" if resolved.project_file else "no project file"
    changed = sorted(name for name, where in resolved.sources.items() if where != "default")
    shown = ", ".join(changed) if changed else "all defaults"
    return passed("settings", f"valid ({source}; set: {shown})")


def check_target(ctx: DoctorContext) -> Check:
    """The target imports and is a FluxLit app or an ASGI app."""
    target = ctx.target
    if isinstance(target, TargetError):
        return failed(
            "target",
            str(target),
            "pass the app as TARGET ('module:attr' or 'path/app.py:attr') or set FLUXLIT_APP, "
            "and run from the directory that holds it",
        )
    if target.app is None:
        return passed("target", f"{target.spec} is a plain ASGI app, served under the API prefix with no pages")
    count = len(target.app.pages)
    return passed("target", f"{target.spec} is the FluxLit app {target.app.title!r} with {count} page(s)")


def check_pages(ctx: DoctorContext) -> Check:
    """Pages register without clashes and none hides under a path the gateway or Streamlit answers itself."""
    target = ctx.target
    if isinstance(target, TargetError):
        cause = target.__cause__
        if isinstance(cause, ValueError) and "page path" in str(cause):
            return failed("pages", str(cause), "give each page its own path (and its own slug, '/a/b' ~ '/a-b')")
        return not_checked(check_pages, "the target did not load")
    if target.app is None:
        return passed("pages", "no pages (plain ASGI app)")
    settings = ctx.settings
    reserved = [*_RESERVED_PAGE_PATHS]
    if settings is not None:
        reserved += [settings.api_mount_path, settings.metrics_path]
    for page in target.app.pages:
        # Streamlit serves a page at its slug, so that is the path the gateway sees.
        served = "/" + page.slug
        hidden = next((prefix for prefix in reserved if is_under(served, prefix)), None)
        if hidden is not None:
            return failed(
                "pages",
                f"page {page.path!r} ({page.title}) is served at {served!r}, under {hidden!r} which the gateway "
                "or Streamlit answers itself, so the page can never be reached",
                f"move the page to a path outside {hidden!r}",
            )
    paths = ", ".join(page.path for page in target.app.pages) or "none"
    return passed("pages", f"{len(target.app.pages)} page(s): {paths}")


def check_upstream_timeouts(ctx: DoctorContext) -> Check:
    """The proxy's read timeout leaves Streamlit time to answer."""
    settings = ctx.settings
    if settings is None:
        return not_checked(check_upstream_timeouts, "the settings are invalid")
    read, connect = settings.upstream_read_timeout_s, settings.upstream_connect_timeout_s
    if read < MIN_READ_TIMEOUT_S:
        return warned(
            "upstream_timeouts",
            f"FLUXLIT_GATEWAY_UPSTREAM_READ_TIMEOUT_S={read:g} is under {MIN_READ_TIMEOUT_S:g} s: "
            "slow Streamlit answers (large files, cold caches) will get 504",
            "raise it to 30 or more unless you want fast failures on purpose",
        )
    return passed("upstream_timeouts", f"connect {connect:g} s, read {read:g} s")


def check_body_read_timeout(ctx: DoctorContext) -> Check:
    """The request-body deadline neither cuts slow uploads short nor lets a stalled body hold a connection long."""
    settings = ctx.settings
    if settings is None:
        return not_checked(check_body_read_timeout, "the settings are invalid")
    timeout = settings.body_read_timeout_s
    low, high = BODY_READ_TIMEOUT_RANGE_S
    if timeout < low:
        return warned(
            "body_read_timeout",
            f"FLUXLIT_GATEWAY_BODY_READ_TIMEOUT_S={timeout:g} is under {low:g} s: uploads over slow or lossy links "
            "pause longer than that between packets and get 408",
            "raise it to 30 or more (60 is the default)",
        )
    if timeout > high:
        return warned(
            "body_read_timeout",
            f"FLUXLIT_GATEWAY_BODY_READ_TIMEOUT_S={timeout:g} is over {high:g} s: a client that stops sending its "
            "body holds a connection (and a request slot) that long",
            "lower it to 60 (the default) unless clients really pause that long mid-upload",
        )
    return passed("body_read_timeout", f"{timeout:g} s per wait for request body data")


def check_graceful_timeout(ctx: DoctorContext) -> Check:
    """The SIGTERM drain is neither zero nor longer than an orchestrator's kill deadline."""
    settings = ctx.settings
    if settings is None:
        return not_checked(check_graceful_timeout, "the settings are invalid")
    grace = settings.graceful_timeout_s
    if grace == 0:
        return warned(
            "graceful_timeout",
            "FLUXLIT_GRACEFUL_TIMEOUT_S=0: in-flight requests are cut off at once on SIGTERM",
            "set --graceful-timeout to a few seconds (10 is the default)",
        )
    if grace >= K8S_TERMINATION_GRACE_S:
        return warned(
            "graceful_timeout",
            f"FLUXLIT_GRACEFUL_TIMEOUT_S={grace:g} is not below Kubernetes' default terminationGracePeriodSeconds "
            f"({K8S_TERMINATION_GRACE_S:g} s) nor most load balancers' idle timeout (60 s): the drain is cut short",
            f"lower it, or raise terminationGracePeriodSeconds (and the LB deregistration delay) above {grace:g} s",
        )
    return passed("graceful_timeout", f"{grace:g} s to drain on SIGTERM")


def check_body_limit(ctx: DoctorContext) -> Check:
    """The proxy's body limit does not refuse uploads Streamlit's file_uploader accepts."""
    settings = ctx.settings
    if settings is None:
        return not_checked(check_body_limit, "the settings are invalid")
    upload_mb, where = streamlit_upload_limit_mb(ctx)
    limit = settings.max_proxy_request_body_bytes
    if limit == 0:
        return passed(
            "body_limit", f"no proxy limit; Streamlit's server.maxUploadSize={upload_mb} MB ({where}) applies"
        )
    if limit < upload_mb * _MB:
        return warned(
            "body_limit",
            f"FLUXLIT_GATEWAY_MAX_PROXY_REQUEST_BODY_BYTES={limit} ({limit / _MB:.1f} MB) is below Streamlit's "
            f"server.maxUploadSize={upload_mb} MB ({where}): larger uploads the widget allows get 413 from the proxy",
            f"raise the proxy limit above {upload_mb * _MB} bytes, or lower server.maxUploadSize to match "
            "(streamlit_run_args or .streamlit/config.toml)",
        )
    return passed("body_limit", f"proxy limit {limit} bytes >= Streamlit's server.maxUploadSize={upload_mb} MB")


def streamlit_upload_limit_mb(ctx: DoctorContext) -> tuple[int, str]:
    """Streamlit's upload limit and where it comes from: run args, env, .streamlit/config.toml, default."""
    target = ctx.target
    args: tuple[str, ...] = ()
    if not isinstance(target, TargetError) and target.app is not None:
        args = tuple(target.app.streamlit_run_args)
    from_args = _flag_value(args, "--server.maxUploadSize")
    if from_args is not None:
        return _as_mb(from_args, "streamlit_run_args")
    env = ctx.env if ctx.env is not None else os.environ
    if "STREAMLIT_SERVER_MAX_UPLOAD_SIZE" in env:
        return _as_mb(env["STREAMLIT_SERVER_MAX_UPLOAD_SIZE"], "STREAMLIT_SERVER_MAX_UPLOAD_SIZE")
    config = ctx.cwd / ".streamlit" / "config.toml"
    value = _toml_value(config, "server", "maxUploadSize")
    if value is not None:
        return _as_mb(value, str(config))
    return STREAMLIT_DEFAULT_UPLOAD_MB, "Streamlit's default"


def _flag_value(args: tuple[str, ...], flag: str) -> str | None:
    words = [word for arg in args for word in shlex.split(arg)] if args else []
    for index, word in enumerate(words):
        if word == flag and index + 1 < len(words):
            return words[index + 1]
        if word.startswith(flag + "="):
            return word.split("=", 1)[1]
    return None


def _toml_value(path: Path, table: str, key: str) -> Any:
    try:
        with path.open("rb") as handle:
            section = tomllib.load(handle).get(table, {})
    except (OSError, tomllib.TOMLDecodeError):
        return None
    return section.get(key) if isinstance(section, dict) else None


def _as_mb(value: Any, where: str) -> tuple[int, str]:
    try:
        return int(str(value).strip()), where
    except ValueError:
        return STREAMLIT_DEFAULT_UPLOAD_MB, f"unreadable value {value!r} in {where}; Streamlit's default assumed"
