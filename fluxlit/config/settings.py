"""The one settings object of a run: every field with its env var, flag, file key, default and meaning."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from fluxlit.config.parsers import (
    DEFAULT_PIDFILE,
    Choice,
    mount,
    parse_binds,
    parse_bool,
    parse_forwarded_allow_ips,
    parse_metrics_bind,
    parse_optional_str,
    parse_pidfile,
    parse_port,
    parse_public_base_url,
    parse_replica_id,
    parse_str,
    parse_upstream_url,
    parse_workers,
    positive,
)
from fluxlit.config.paths import DEFAULT_API_PREFIX
from fluxlit.config.setting_checks import check_combination
from fluxlit.config.setting_spec import SettingSpec, setting_field

LOG_LEVELS = ("critical", "error", "warning", "info", "debug")
PIDFILE_COMMANDS = ("run", "dev", "workbench")


@dataclass(frozen=True)
class Settings:
    """Effective configuration of one run, built once (CLI > env > fluxlit.toml > app > defaults)."""

    target: str = setting_field(
        "app:app",
        "FLUXLIT_APP",
        None,
        "The app to serve: 'module:attr', 'module:factory()' or 'path/app.py:attr'.",
        parse_str,
    )
    title: str = setting_field(
        "FluxLit", "FLUXLIT_TITLE", None, "Title for the API docs and the browser tab.", parse_str
    )
    host: str = setting_field(
        "127.0.0.1",
        "FLUXLIT_GATEWAY_HOST",
        "--host",
        "Interface to listen on (0.0.0.0 for all IPv4).",
        parse_str,
        metavar="HOST",
        file_aliases=("gateway_host",),
    )
    port: int = setting_field(
        8000,
        "FLUXLIT_GATEWAY_PORT",
        "--port",
        "Public port (0 picks a free one).",
        parse_port,
        metavar="PORT",
        file_aliases=("gateway_port",),
    )
    binds: tuple[str, ...] = setting_field(
        (),
        "FLUXLIT_BIND",
        "--bind",
        "Extra or replacement binds, comma separated: HOST:PORT or unix:PATH. When set, --host/--port are not used.",
        parse_binds,
        metavar="ADDR",
        repeatable=True,
    )
    workers: int = setting_field(
        1,
        "FLUXLIT_WORKERS",
        "--workers",
        "Gateway processes sharing the public port and the one Streamlit child (1 = this process only). "
        "Each has its own metrics and replica id.",
        parse_workers,
        metavar="N",
    )
    api_mount_path: str = setting_field(
        DEFAULT_API_PREFIX,
        "FLUXLIT_API_MOUNT_PATH",
        "--api-prefix",
        "Path prefix that routes to the FastAPI app.",
        mount(allow_empty=False),
        metavar="PATH",
    )
    root_path: str = setting_field(
        "",
        "FLUXLIT_ROOT_PATH",
        "--root-path",
        "Public mount when served under a sub-path, e.g. /apps/demo.",
        mount(allow_empty=True),
        metavar="PATH",
    )
    log_level: str = setting_field(
        "info",
        "FLUXLIT_LOG_LEVEL",
        "--log-level",
        "Log level: " + ", ".join(LOG_LEVELS) + ".",
        Choice(LOG_LEVELS),
    )
    log_format: str = setting_field(
        "auto",
        "FLUXLIT_LOG_FORMAT",
        "--log-format",
        "Log format: json, console, or auto (console on a TTY, else JSON).",
        Choice(("auto", "json", "console")),
    )
    debug: bool = setting_field(
        False,
        "FLUXLIT_DEBUG",
        "--debug",
        "Log at debug level unless a log level is given (fluxlit 0.13's switch; same as --log-level debug).",
        parse_bool,
    )
    metrics: bool = setting_field(
        True,
        "FLUXLIT_ENABLE_GATEWAY_PROMETHEUS_METRICS",
        "--metrics/--no-metrics",
        "Serve Prometheus metrics.",
        parse_bool,
    )
    metrics_path: str = setting_field(
        "/__fluxlit/metrics",
        "FLUXLIT_GATEWAY_PROMETHEUS_METRICS_PATH",
        None,
        "Path of the metrics endpoint (below the mount).",
        mount(allow_empty=False),
    )
    upstream_connect_timeout_s: float = setting_field(
        5.0,
        "FLUXLIT_GATEWAY_UPSTREAM_CONNECT_TIMEOUT_S",
        None,
        "Seconds to connect to Streamlit before answering 502.",
        positive(float, allow_zero=False),
    )
    upstream_read_timeout_s: float = setting_field(
        300.0,
        "FLUXLIT_GATEWAY_UPSTREAM_READ_TIMEOUT_S",
        None,
        "Seconds to wait for Streamlit's response before answering 504.",
        positive(float, allow_zero=False),
    )
    upstream_pool_idle_timeout_s: float = setting_field(
        4.0,
        "FLUXLIT_GATEWAY_UPSTREAM_POOL_IDLE_TIMEOUT_S",
        None,
        "Seconds a kept-alive connection to Streamlit may idle in the gateway's pool before it is closed. Keep it "
        "below Streamlit's server keep-alive (5 s, uvicorn's): a longer idle connection may be closed by Streamlit "
        "just as a request goes out on it ('fluxlit doctor' checks).",
        positive(float, allow_zero=False, example="4"),
    )
    body_read_timeout_s: float = setting_field(
        60.0,
        "FLUXLIT_GATEWAY_BODY_READ_TIMEOUT_S",
        None,
        "Seconds the gateway waits for each part of a request body (API and proxied alike); a body that stalls "
        "longer gets 408 and the connection is closed. WebSockets and responses are not timed.",
        positive(float, allow_zero=False, example="60"),
    )
    max_proxy_request_body_bytes: int = setting_field(
        0,
        "FLUXLIT_GATEWAY_MAX_PROXY_REQUEST_BODY_BYTES",
        None,
        "Largest request body proxied to Streamlit (0 = no limit); larger gets 413.",
        positive(int, allow_zero=True),
    )
    # WebSockets (issues 22 and 15): keepalive pings on the browser leg, and what reassembly may hold in memory.
    ws_ping_interval_s: float = setting_field(
        20.0,
        "FLUXLIT_WS_PING_INTERVAL_S",
        "--ws-ping-interval",
        "Seconds between the pings the gateway sends every browser WebSocket, so that load balancers which cut "
        "idle connections (ALB, GKE, Cloud Run, nginx: 60 s) keep idle tabs; keep it below the idle timeout of "
        "everything in front. 0 turns the pings off.",
        positive(float, allow_zero=True, example="20"),
        metavar="SECONDS",
    )
    ws_ping_timeout_s: float = setting_field(
        20.0,
        "FLUXLIT_WS_PING_TIMEOUT_S",
        "--ws-ping-timeout",
        "Seconds a browser has to answer a ping (any bytes count) before its WebSocket is closed with 1011 "
        "and its Streamlit session with it.",
        positive(float, allow_zero=False, example="20"),
        metavar="SECONDS",
    )
    max_ws_client_message_bytes: int = setting_field(
        4 * 1024 * 1024,
        "FLUXLIT_MAX_WS_CLIENT_MESSAGE_BYTES",
        None,
        "Largest WebSocket message a browser may send (Streamlit's are small: uploads go over HTTP); a larger one "
        "is closed with 1009 as soon as its frame header announces it. Messages from Streamlit follow its own "
        "server.maxMessageSize (200 MB).",
        positive(int, allow_zero=False, example="4194304"),
    )
    ws_reassembly_budget_bytes: int = setting_field(
        0,
        "FLUXLIT_WS_REASSEMBLY_BUDGET_BYTES",
        None,
        "Bytes of unfinished WebSocket messages (both directions) the gateway holds across all connections; a "
        "message that would pass it is closed with 1009. 0 = a quarter of the memory limit (the cgroup's, else "
        "RAM), shared among --workers.",
        positive(int, allow_zero=True),
    )
    # --- gateway hardening (issue 15): request limits, body pace, metrics access ---
    max_url_bytes: int = setting_field(
        8192,
        "FLUXLIT_GATEWAY_MAX_URL_BYTES",
        None,
        "Longest request target (path and query) served; longer gets 414.",
        positive(int, allow_zero=False, example="8192"),
    )
    max_header_bytes: int = setting_field(
        65536,
        "FLUXLIT_GATEWAY_MAX_HEADER_BYTES",
        None,
        "Largest request header block (all fields, as on the wire) served, however it arrives; larger gets 431.",
        positive(int, allow_zero=False, example="65536"),
    )
    allow_encoded_slashes: bool = setting_field(
        False,
        "FLUXLIT_GATEWAY_ALLOW_ENCODED_SLASHES",
        None,
        "Serve paths holding %2F, %5C or a backslash (else 400); they then stay inside their path segment.",
        parse_bool,
    )
    body_min_rate_bytes_s: int = setting_field(
        1024,
        "FLUXLIT_GATEWAY_BODY_MIN_RATE_BYTES_S",
        None,
        "Slowest average pace of a request body in bytes/s (0 = no minimum); a body that falls further behind "
        "than FLUXLIT_GATEWAY_BODY_MIN_RATE_WINDOW_S gets 408 and the connection is closed.",
        positive(int, allow_zero=True, example="1024"),
    )
    body_min_rate_window_s: float = setting_field(
        10.0,
        "FLUXLIT_GATEWAY_BODY_MIN_RATE_WINDOW_S",
        None,
        "Seconds a request body may fall behind its minimum rate (its lag allowance; it also bounds a stall).",
        positive(float, allow_zero=False, example="10"),
    )
    metrics_allow: str = setting_field(
        "",
        "FLUXLIT_GATEWAY_PROMETHEUS_METRICS_ALLOW",
        "--metrics-allow",
        "Clients (IPs or CIDRs, comma separated; '*' for any) that may read the metrics endpoint; default: "
        "loopback and --forwarded-allow-ips peers (anyone on --metrics-bind). Others get 404.",
        parse_forwarded_allow_ips,
        metavar="IPS",
    )
    metrics_bind: str = setting_field(
        "",
        "FLUXLIT_GATEWAY_PROMETHEUS_METRICS_BIND",
        "--metrics-bind",
        "HOST:PORT serving the metrics endpoint alone (plain HTTP), e.g. 0.0.0.0:9100; the public binds then "
        "answer 404 there.",
        parse_metrics_bind,
        metavar="HOST:PORT",
    )
    on_child_exit: str = setting_field(
        "restart",
        "FLUXLIT_ON_CHILD_EXIT",
        "--on-child-exit",
        "When Streamlit dies: restart it (with backoff) or exit.",
        Choice(("restart", "exit")),
    )
    restart_backoff_initial_s: float = setting_field(
        0.5,
        "FLUXLIT_RESTART_BACKOFF_INITIAL_S",
        None,
        "First restart delay; doubles per failure.",
        positive(float, allow_zero=True),
    )
    restart_backoff_max_s: float = setting_field(
        30.0,
        "FLUXLIT_RESTART_BACKOFF_MAX_S",
        None,
        "Longest restart delay.",
        positive(float, allow_zero=True),
    )
    restart_max_failures: int = setting_field(
        5,
        "FLUXLIT_RESTART_MAX_FAILURES",
        None,
        "Crash budget: this many failures inside the window exits with code 5.",
        positive(int, allow_zero=False),
    )
    restart_failure_window_s: float = setting_field(
        60.0,
        "FLUXLIT_RESTART_FAILURE_WINDOW_S",
        None,
        "Crash budget window in seconds.",
        positive(float, allow_zero=False),
    )
    child_start_timeout_s: float = setting_field(
        60.0,
        "FLUXLIT_CHILD_START_TIMEOUT_S",
        None,
        "Seconds Streamlit may take to become healthy.",
        positive(float, allow_zero=False),
    )
    graceful_timeout_s: float = setting_field(
        10.0,
        "FLUXLIT_GRACEFUL_TIMEOUT_S",
        "--graceful-timeout",
        "Seconds in-flight requests get to finish on SIGTERM.",
        positive(float, allow_zero=True),
        metavar="SECONDS",
    )
    forwarded_allow_ips: str = setting_field(
        "127.0.0.1,::1",
        "FLUXLIT_FORWARDED_ALLOW_IPS",
        "--forwarded-allow-ips",
        "Peers (IPs or CIDRs, comma separated; '*' for any) whose X-Forwarded-* headers are believed; "
        "from anyone else those headers are dropped.",
        parse_forwarded_allow_ips,
        metavar="IPS",
    )
    trust_proxy: bool = setting_field(
        False,
        "FLUXLIT_TRUST_PROXY",
        "--trust-proxy/--no-trust-proxy",
        "Let X-Forwarded-Host/Proto/Prefix from trusted peers shape the absolute links app.urls builds.",
        parse_bool,
        aliases=("--proxy-headers/--no-proxy-headers",),
    )
    public_base_url: str = setting_field(
        "",
        "FLUXLIT_PUBLIC_BASE_URL",
        None,
        "The public URL users reach (e.g. https://example.com/apps/demo); absolute links use it verbatim.",
        parse_public_base_url,
    )
    replica_id: str = setting_field(
        "",
        "FLUXLIT_REPLICA_ID",
        "--replica-id",
        "Name of this replica, sent as X-FluxLit-Replica and in logs (default: hostname-pid).",
        parse_replica_id,
        metavar="NAME",
    )
    certfile: str | None = setting_field(
        None,
        "FLUXLIT_CERTFILE",
        "--certfile",
        "TLS certificate (PEM); enables HTTPS and HTTP/2.",
        parse_optional_str,
        metavar="FILE",
    )
    keyfile: str | None = setting_field(
        None, "FLUXLIT_KEYFILE", "--keyfile", "TLS private key (PEM).", parse_optional_str, metavar="FILE"
    )
    streamlit_upstream: str = setting_field(
        "",
        "FLUXLIT_STREAMLIT_UPSTREAM",
        "--streamlit-upstream",
        "Front a Streamlit run elsewhere, http://HOST:PORT[/PATH] (loopback or not), instead of starting one: no "
        "child, requests proxied to it, /api/readyz probes it. A state file that names an upstream wins over it.",
        parse_upstream_url,
        metavar="URL",
    )
    state_file: str | None = setting_field(
        None,
        "FLUXLIT_STREAMLIT_UPSTREAM_FILE",
        "--state-file",
        "Where to publish the upstream state (default: a per-run file under $XDG_RUNTIME_DIR or the temp dir); "
        "with --streamlit-upstream, a file read for the upstream URL instead, re-read when it changes.",
        parse_optional_str,
        metavar="FILE",
    )

    pidfile: str = setting_field(
        DEFAULT_PIDFILE,
        "FLUXLIT_PIDFILE",
        "--pidfile",
        "Where 'fluxlit run', 'dev' and 'workbench' (not serve) write their process id for 'fluxlit shutdown'.",
        parse_pidfile,
        metavar="PATH",
        commands=PIDFILE_COMMANDS,
    )
    no_pidfile: bool = setting_field(
        False, "FLUXLIT_NO_PIDFILE", "--no-pidfile", "Write no pidfile.", parse_bool, commands=PIDFILE_COMMANDS
    )

    def __post_init__(self) -> None:
        # Values given in code go through the same parsers as env and file values, so every source is checked alike.
        for f in dataclasses.fields(self):
            meta = f.metadata
            object.__setattr__(self, f.name, meta["parse"](getattr(self, f.name), meta["env"]))
        check_combination(self)

    def redacted(self) -> dict[str, Any]:
        """Every value, with secrets masked, ready for JSON."""
        out: dict[str, Any] = {}
        for spec in SETTING_SPECS:
            value = getattr(self, spec.name)
            out[spec.name] = (
                "[REDACTED]" if spec.secret and value else (list(value) if isinstance(value, tuple) else value)
            )
        return out


SETTING_SPECS: tuple[SettingSpec, ...] = tuple(
    SettingSpec(name=f.name, **f.metadata) for f in dataclasses.fields(Settings)
)
SPECS_BY_NAME = {spec.name: spec for spec in SETTING_SPECS}
DEFAULTS = Settings()
