"""`fluxlit workbench`: `serve` for IDE port forwarding (Posit Workbench, VS Code, JupyterHub proxies)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import click

from fluxlit.cli.pidfile import held_pidfile, pidfile_path
from fluxlit.cli.support import fail, resolve_with_target
from fluxlit.errors import FluxLitError


def workbench_urls(host: str, port: int, environ: Mapping[str, str]) -> list[str]:
    """Lines telling the user where the app answers: loopback always, the IDE's proxy when it says where."""
    shown = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
    lines = [f"Local:   http://{shown}:{port}/"]
    server = environ.get("RS_SERVER_URL", "").rstrip("/")
    session = environ.get("RS_SESSION_URL", "").strip("/")
    if server and session:
        # Posit Workbench proxies a session's ports under {server}/{session}/p/<port token>/.
        lines.append(f"Proxied: {server}/{session}/p/<token for port {port}>/  (see Workbench's Ports pane)")
    jupyter = environ.get("JUPYTERHUB_SERVICE_PREFIX", "").rstrip("/")
    if jupyter:
        lines.append(f"Proxied: {jupyter}/proxy/{port}/  (jupyter-server-proxy)")
    return lines


def workbench_command(**cli_values: Any) -> None:
    # After cli.py's SIGTERM handler, as for `fluxlit serve`: these bring the runner (hypercorn, anyio).
    from fluxlit_supervisor import exit_process

    from fluxlit.runtime.serve_command import serve_command

    # IDE proxies sit on loopback and send X-Forwarded-*: let them shape absolute links.
    cli_values["trust_proxy"] = True if cli_values.get("trust_proxy") is None else cli_values["trust_proxy"]
    try:
        resolved, target = resolve_with_target(cli_values)
        settings = resolved.settings
        with held_pidfile(pidfile_path(settings)):
            for line in workbench_urls(settings.host, settings.port, os.environ):
                click.echo(line, err=True)
            code = serve_command(resolved, target)
        # Python 3.11's tracer loses the lines after anyio.run returns in this frame (cpython#106749): see `serve`.
        exit_process(int(code))  # pragma: no cover - measured as missed on 3.11 though it runs; not sys.exit: see serve
    except FluxLitError as error:
        fail(error)
