"""An external Streamlit the gateway fronts (FLUXLIT_STREAMLIT_UPSTREAM, or a state file naming one): where it is
now, and whether it answers, probed at most once a second and never by more than one request at a time.

This module owns the answer to "where is the upstream and does it answer" for a Streamlit this process did not
start; the supervisor's hub answers it for our own child (upstream_view.HubStatus). It never starts a process.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

import anyio
import anyio.abc
from fluxlit_supervisor.probe import parse_status_code, probe_request
from fluxlit_supervisor.state_file import ResolvedUpstream, resolve_upstream

from fluxlit.config.parsers import UpstreamAddress, parse_upstream_url, upstream_address
from fluxlit.config.settings import SPECS_BY_NAME, Settings
from fluxlit.errors import ConfigError
from fluxlit.gateway.upstream_view import NOT_CONFIGURED, READY, RESTART_RETRY_AFTER_S, UpstreamView
from fluxlit.observability.logs import get_logger

if TYPE_CHECKING:
    from fluxlit_proxy import ReverseProxy

URL_ENV = SPECS_BY_NAME["streamlit_upstream"].env
FILE_ENV = SPECS_BY_NAME["state_file"].env
# Half of Kubernetes' default probe timeout (1 s), so /api/readyz answers inside it even when the upstream hangs;
# the reference's value too.
PROBE_TIMEOUT_S = 0.5
# A readiness storm (every load balancer's health checks, every replica's probes, a soak) costs the upstream at most
# one GET a second per gateway process. A second is also the shortest period Kubernetes allows a probe, so no prober
# is told an answer older than its own interval. Proxied requests share the same answer.
PROBE_CACHE_S = 1.0
# A file whose mtime is this recent is read again on every call: a rewrite within the file system's timestamp
# granularity (same size, same inode) would otherwise look unchanged (git calls this "racy").
_RACY_WINDOW_NS = 1_000_000_000
_MAX_HEAD_BYTES = 4096
_UNREACHABLE = "unreachable"
_UNHEALTHY = "unhealthy"


class UpstreamLocator:
    """The upstream URL by the seed's precedence (a state file naming one wins over the URL), on every call.

    The inventory's reference reads the file on every proxied request; this sees every rewrite as well but reads
    it only when `stat` says it changed (or changed too recently to tell), and logs each change of answer once.
    """

    def __init__(self, file_path: str | None, env_url: str | None) -> None:
        self._file = file_path or None
        self._env = env_url or None
        self._key: tuple[int, int, int, int] | None = None
        self._resolved: ResolvedUpstream | None = None

    def __call__(self) -> ResolvedUpstream:
        if self._file is None:
            if self._resolved is None:
                self._resolved = resolve_upstream(None, self._env)
            return self._resolved
        try:
            info = os.stat(self._file)
        except OSError:
            key, settled = None, True  # no file: nothing to re-read until it appears
        else:
            key = (info.st_mtime_ns, info.st_ctime_ns, info.st_ino, info.st_size)
            settled = time.time_ns() - info.st_mtime_ns >= _RACY_WINDOW_NS
        if self._resolved is not None and key == self._key and settled:
            return self._resolved
        resolved = resolve_upstream(self._file, self._env)
        if resolved != self._resolved:
            _log_change(self._file, resolved)
        self._key, self._resolved = key, resolved
        return resolved


def _log_change(file_path: str, resolved: ResolvedUpstream) -> None:
    log = get_logger("fluxlit")
    if resolved.file_problem:
        log.warning(
            "fluxlit.upstream_file_passed_over",
            state_file=file_path,
            problem=resolved.file_problem,
            upstream=resolved.url,
            fix=f"write the Streamlit URL to {file_path}, or unset {FILE_ENV}",
        )
    else:
        log.info("fluxlit.upstream_resolved", upstream=resolved.url, source=resolved.source)


class ExternalUpstream:
    """The gateway's view of an external Streamlit: calling it gives the cached view the proxy's route reads;
    `refresh()`, awaited before /api/readyz answers and before each proxied request, probes `GET {url}{mount}/`
    again when the view is older than PROBE_CACHE_S or the URL changed.

    Unreachable (no TCP connection within the timeout) is 503 for readiness and proxied requests alike. An
    upstream that answers, but not 2xx on its root, is not ready (503) yet still proxied: it is running, and its
    own answer says more than ours.
    """

    def __init__(
        self,
        locate: Callable[[], ResolvedUpstream],
        root_path: str = "",
        *,
        probe_timeout_s: float = PROBE_TIMEOUT_S,
        cache_s: float = PROBE_CACHE_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._locate = locate
        self._root_path = root_path
        self._timeout = probe_timeout_s
        self._cache_s = cache_s
        self._clock = clock
        self._view = UpstreamView("starting", detail="not probed yet")
        self._probed: ResolvedUpstream | None = None
        self._expires = float("-inf")
        self._probing: anyio.Event | None = None
        self.probes = 0  # how many probes were sent: what the cache saves is visible to tests and benchmarks

    def __call__(self) -> UpstreamView:
        return self._view

    def connect_failed(self) -> None:
        """The proxy could not connect to it: the next request probes it again instead of trusting the cached view,
        so a Streamlit that died is answered 503 from then on, not 502 until the cache expires."""
        self._expires = float("-inf")

    async def refresh(self) -> None:
        while True:
            resolved = self._locate()
            if resolved == self._probed and self._clock() < self._expires:
                return
            if self._probing is None:
                break
            await self._probing.wait()  # one probe at a time: the others take its answer
        event = self._probing = anyio.Event()
        try:
            view = await self._probe(resolved)
            self._view, self._probed, self._expires = view, resolved, self._clock() + self._cache_s
        finally:
            self._probing = None
            event.set()

    async def _probe(self, resolved: ResolvedUpstream) -> UpstreamView:
        if resolved.url is None:
            return UpstreamView(NOT_CONFIGURED, detail=resolved.file_problem)
        try:
            address = upstream_address(resolved.url, FILE_ENV if resolved.source == "file" else URL_ENV)
        except ConfigError as exc:
            return UpstreamView("invalid", detail=str(exc), retry_after_seconds=RESTART_RETRY_AFTER_S)
        self.probes += 1
        state, detail = await probe_root(address, address.path + self._root_path + "/", self._timeout)
        return UpstreamView(
            state,
            detail=detail,
            host=address.host if state != _UNREACHABLE else None,
            port=address.port if state != _UNREACHABLE else None,
            path=address.path,
            answers=state == _UNHEALTHY,
            retry_after_seconds=RESTART_RETRY_AFTER_S,
        )


async def probe_root(address: UpstreamAddress, path: str, deadline_s: float) -> tuple[str, str]:
    """GET `path` once within `deadline_s`: ("ready", "") on 2xx, ("unhealthy", why) when it answers otherwise or
    not in time, ("unreachable", why) when no connection opens."""
    where = f"{address.host}:{address.port}"
    deadline = anyio.current_time() + deadline_s
    try:
        with anyio.fail_after(deadline_s):
            stream = await anyio.connect_tcp(address.host, address.port)
    except TimeoutError:  # an OSError too: told apart first
        return _UNREACHABLE, f"cannot connect to {where} within {deadline_s:g}s"
    except OSError as exc:
        return _UNREACHABLE, f"cannot connect to {where}: {exc.strerror or exc}"
    # Runs on every probe that connects, but Python 3.11's tracer loses this frame's next line once connect_tcp
    # has returned in it (cpython#106749, as in cli/main.py), so coverage cannot see it; _ask is its own frame.
    return await _ask(stream, address, path, deadline=deadline, deadline_s=deadline_s)  # pragma: no cover


async def _ask(
    stream: anyio.abc.SocketStream, address: UpstreamAddress, path: str, *, deadline: float, deadline_s: float
) -> tuple[str, str]:
    """The probe's request and answer on `stream`, by the monotonic `deadline` (`deadline_s` after it began)."""
    where = f"{address.host}:{address.port}"
    async with stream:
        with anyio.move_on_after(deadline - anyio.current_time()):
            try:
                await stream.send(probe_request(address.host, address.port, path))
                head = b""
                while b"\n" not in head and len(head) < _MAX_HEAD_BYTES:
                    head += await stream.receive(_MAX_HEAD_BYTES)
            except (anyio.EndOfStream, anyio.BrokenResourceError):
                return _UNHEALTHY, f"GET {path} on {where}: the connection closed before an answer"
            code = parse_status_code(head)
            if code is not None and 200 <= code < 300:
                return READY, ""
            return _UNHEALTHY, f"GET {path} on {where} answered {code if code is not None else 'no HTTP status line'}"
    return _UNHEALTHY, f"GET {path} on {where} did not answer within {deadline_s:g}s"


def external_upstream(settings: Settings, root_path: str | None = None) -> ExternalUpstream:
    """The external upstream of a run with `streamlit_upstream` set; `state_file` is read for a URL that wins."""
    return ExternalUpstream(
        UpstreamLocator(settings.state_file, settings.streamlit_upstream),
        settings.root_path if root_path is None else root_path,
    )


def external_upstream_from_env(
    settings: Settings, environ: Mapping[str, str], root_path: str
) -> ExternalUpstream | None:
    """For a gateway built in code (build_gateway, FluxLitTestClient): FLUXLIT_STREAMLIT_UPSTREAM_FILE and
    FLUXLIT_STREAMLIT_UPSTREAM from `environ`, over the same fields of `settings`; None when neither is set."""
    url = parse_upstream_url(environ[URL_ENV], URL_ENV) if environ.get(URL_ENV) else settings.streamlit_upstream
    file_path = environ.get(FILE_ENV, "").strip() or settings.state_file
    if not url and not file_path:
        return None
    return ExternalUpstream(UpstreamLocator(file_path, url), root_path)


def unpooled_proxy(status: ExternalUpstream, settings: Settings, root_path: str) -> ReverseProxy:
    """A proxy to `status` that keeps no connection between requests: a TestClient runs each request outside a
    `with` block on an event loop of its own, where a pooled connection of the previous loop is unusable."""
    from fluxlit_proxy import ProxyConfig, ReverseProxy  # ~0.2 s: only gateways that front an upstream pay it

    from fluxlit.gateway.upstream_route import StreamlitRoute

    config = ProxyConfig(
        connect_timeout=settings.upstream_connect_timeout_s,
        read_timeout=settings.upstream_read_timeout_s,
        pool_max_connections=0,
        ws_spare_connection=False,
    )
    return ReverseProxy(StreamlitRoute(status, root_path), config)
