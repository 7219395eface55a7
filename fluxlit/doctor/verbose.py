"""`fluxlit doctor --verbose`: the effective configuration doctor judged, secrets redacted, under fluxlit 0.13's keys.

Read-only: it reports what the checks already loaded (the settings, the target) and the environment, and never
imports or starts anything the checks did not.
"""

from __future__ import annotations

import importlib.util
import json
import os
from collections.abc import Mapping
from typing import Any

from fluxlit.config.sources import ResolvedSettings, find_project_file
from fluxlit.doctor.model import DoctorContext
from fluxlit.errors import FluxLitError

# The optional packages a feature needs, by the reference's key for each.
_EXTRAS = {"pyjwt_available": "jwt", "prometheus_client_available": "prometheus_client", "uvloop_available": "uvloop"}


def _present(environ: Mapping[str, str], name: str) -> bool:
    return bool(environ.get(name, "").strip())


def _handler_name(handler: object) -> str:
    # Any callable may render a page: a functools.partial or a class instance has no __qualname__.
    return f"{getattr(handler, '__module__', '?')}.{getattr(handler, '__qualname__', type(handler).__name__)}"


def _pages_and_openapi(ctx: DoctorContext) -> tuple[list[dict[str, str]], dict[str, str | None]]:
    target = ctx.target
    if isinstance(target, FluxLitError) or target.app is None:
        return [], {}
    pages = [{"path": p.path, "title": p.title, "handler": _handler_name(p.handler)} for p in target.app.pages]
    api = target.app.api
    return pages, {"openapi_url": api.openapi_url, "docs_url": api.docs_url, "redoc_url": api.redoc_url}


def verbose_snapshot(ctx: DoctorContext) -> dict[str, Any]:
    """What the run would use, section by section; `settings_error`/`target_error` say what could not be loaded."""
    environ = ctx.env if ctx.env is not None else os.environ
    snapshot: dict[str, Any] = {"resolved_target": ctx.target_spec}
    target = ctx.target
    if isinstance(target, FluxLitError):
        snapshot["target_error"] = str(target)
    snapshot["pages"], snapshot["openapi"] = _pages_and_openapi(ctx)
    resolved = ctx.resolved
    if isinstance(resolved, ResolvedSettings):
        s = resolved.settings
        snapshot["settings_redacted"] = s.redacted()
        snapshot["sources"] = {name: where for name, where in resolved.sources.items() if where != "default"}
        snapshot["effective"] = {
            "api_mount_path": s.api_mount_path,
            "public_mount_path": s.root_path,
            "gateway_bind": ", ".join(s.binds) if s.binds else f"{s.host}:{s.port}",
            "internal_api_base_env": environ.get("FLUXLIT_INTERNAL_API_BASE") or None,
            "public_base_url": s.public_base_url or None,
            "trust_proxy": s.trust_proxy,
            "forwarded_allow_ips": s.forwarded_allow_ips,
        }
        snapshot["gateway_proxy"] = {
            "upstream_connect_timeout_s": s.upstream_connect_timeout_s,
            "upstream_read_timeout_s": s.upstream_read_timeout_s,
            "upstream_pool_idle_timeout_s": s.upstream_pool_idle_timeout_s,
            "body_read_timeout_s": s.body_read_timeout_s,
            "max_proxy_request_body_bytes": s.max_proxy_request_body_bytes,
        }
    else:
        snapshot["settings_error"] = str(resolved)
    snapshot["extras"] = {key: importlib.util.find_spec(module) is not None for key, module in _EXTRAS.items()}
    snapshot["streamlit_sidecar"] = {
        "fluxlit_managed_runtime": not _present(environ, "FLUXLIT_STREAMLIT_UPSTREAM"),
        "upstream_file_set": _present(environ, "FLUXLIT_STREAMLIT_UPSTREAM_FILE"),
        "upstream_url_set": _present(environ, "FLUXLIT_STREAMLIT_UPSTREAM"),
    }
    try:
        path, table = find_project_file(ctx.cwd)
    except FluxLitError as error:  # the settings check reports it as a FAIL already
        path, table = None, {"error": str(error)}
    snapshot["project_defaults"] = {"file": str(path) if path else None, "keys": table}
    return snapshot


def render_verbose_text(snapshot: Mapping[str, Any]) -> str:
    """One `section.key: value` line per value (values as JSON), under a header saying secrets are redacted."""
    lines = ["--- Verbose (effective configuration; secrets redacted) ---"]
    for section, value in snapshot.items():
        if isinstance(value, dict) and value:
            lines += [f"{section}.{key}: {json.dumps(item, default=str)}" for key, item in value.items()]
        else:
            lines.append(f"{section}: {json.dumps(value, default=str)}")
    return "\n".join(lines)
