"""How each setting's text is parsed and checked: every parser names the spelling the user wrote and what it expects."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from fluxlit.config.forwarded import parse_trusted
from fluxlit.config.paths import normalize_mount
from fluxlit.errors import ConfigError

_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})


def _bad(where: str, value: Any, expected: str) -> ConfigError:
    return ConfigError(f"{where}={value!r} is not valid: expected {expected}")


def parse_str(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise _bad(where, value, "a string")
    return value


DEFAULT_PIDFILE = ".fluxlit-dev.pid"  # the reference's name, so its scripts and `fluxlit shutdown` find it


def parse_pidfile(value: Any, where: str) -> str:
    # As in the reference, an empty FLUXLIT_PIDFILE means the default file, not "the current directory".
    return parse_str(value, where).strip() or DEFAULT_PIDFILE


def parse_optional_str(value: Any, where: str) -> str | None:
    if value is None:
        return None
    text = parse_str(value, where).strip()
    return text or None


def parse_bool(value: Any, where: str) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise _bad(where, value, "one of 1/true/yes/on or 0/false/no/off")


def parse_port(value: Any, where: str) -> int:
    try:
        port = int(str(value).strip()) if not isinstance(value, bool) else -1
    except ValueError:
        raise _bad(where, value, "a port number from 0 to 65535, e.g. 8000") from None
    if not 0 <= port <= 65535:
        raise _bad(where, value, "a port number from 0 to 65535, e.g. 8000")
    return port


def positive(kind: type[int] | type[float], *, allow_zero: bool, example: str = "") -> Callable[[Any, str], Any]:
    floor = ("0 or more" if allow_zero else "more than 0") + (f", e.g. {example}" if example else "")

    def parse(value: Any, where: str) -> Any:
        try:
            number = kind(str(value).strip()) if not isinstance(value, bool) else None
        except ValueError:
            number = None
        if number is None or number < 0 or (number == 0 and not allow_zero) or number != number:
            raise _bad(where, value, f"a {'whole ' if kind is int else ''}number {floor}")
        return number

    return parse


@dataclass(frozen=True)
class Choice:
    """A parser for one of a few words; the command line offers the same words."""

    choices: tuple[str, ...]

    def __call__(self, value: Any, where: str) -> str:
        text = str(value).strip().lower()
        if text not in self.choices:
            raise _bad(where, value, "one of " + ", ".join(self.choices))
        return text


def mount(*, allow_empty: bool) -> Callable[[Any, str], str]:
    def parse(value: Any, where: str) -> str:
        return normalize_mount(parse_str(value, where), name=where, allow_empty=allow_empty)

    return parse


def parse_binds(value: Any, where: str) -> tuple[str, ...]:
    items = [str(v) for v in value] if isinstance(value, list | tuple) else str(value).split(",")
    binds = tuple(item.strip() for item in items if item.strip())
    for bind in binds:
        if bind.startswith("unix:"):
            if len(bind) == len("unix:"):
                raise _bad(where, value, "'unix:/path/to.sock' with a path")
            continue
        host, sep, port = bind.rpartition(":")
        if not sep or not host:
            raise _bad(where, value, "'HOST:PORT' or 'unix:PATH' entries, e.g. 0.0.0.0:8000,unix:/run/app.sock")
        if parse_port(port, where) == 0:
            raise _bad(where, value, "explicit ports in binds (port 0 would leave Streamlit pages no API address)")
    return binds


def parse_forwarded_allow_ips(value: Any, where: str) -> str:
    text = parse_str(value, where).strip()
    parse_trusted(text, where=where)
    return text


def parse_public_base_url(value: Any, where: str) -> str:
    text = parse_str(value, where).strip().rstrip("/")
    if text and not (text.startswith(("http://", "https://")) and "://" in text and len(text.split("://", 1)[1]) > 0):
        raise _bad(where, value, "an absolute http(s) URL such as https://example.com/apps/demo")
    return text


_UPSTREAM_EXPECTED = "an http://HOST:PORT[/PATH] URL of a running Streamlit, e.g. http://127.0.0.1:8501"


@dataclass(frozen=True)
class UpstreamAddress:
    """Where an external Streamlit listens, split from its URL: the proxy connects to host:port and prefixes path."""

    host: str
    port: int
    path: str = ""


def upstream_address(value: Any, where: str) -> UpstreamAddress:
    """Split and check an upstream URL: http only (the proxy speaks no TLS to its upstream), an explicit port, a
    path without query or fragment; trailing slashes are dropped."""
    text = parse_str(value, where).strip()
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError:
        raise _bad(where, value, _UPSTREAM_EXPECTED) from None
    if parts.scheme == "https":
        raise _bad(where, value, "an http:// URL: the gateway reaches Streamlit over plain HTTP (no TLS upstream)")
    if parts.scheme != "http" or not parts.hostname or port is None or port == 0 or parts.username is not None:
        raise _bad(where, value, _UPSTREAM_EXPECTED)
    path = parts.path.rstrip("/")
    if parts.query or parts.fragment or not path.isascii() or " " in path:
        raise _bad(where, value, _UPSTREAM_EXPECTED + " (no query or fragment; percent-encode the path)")
    return UpstreamAddress(parts.hostname, port, path)


def parse_upstream_url(value: Any, where: str) -> str:
    """FLUXLIT_STREAMLIT_UPSTREAM: empty (no external upstream) or a URL `upstream_address` accepts, without its
    trailing slash."""
    text = parse_str(value, where).strip()
    if not text:
        return ""
    upstream_address(text, where)
    return text.rstrip("/")


def parse_replica_id(value: Any, where: str) -> str:
    text = parse_str(value, where).strip()
    if text and not re.fullmatch(r"[A-Za-z0-9._-]{1,128}", text):
        raise _bad(where, value, "1-128 characters of A-Z a-z 0-9 . _ - (it is sent as a response header)")
    return text


def parse_metrics_bind(value: Any, where: str) -> str:
    text = parse_str(value, where).strip()
    if not text:
        return ""
    host, sep, port = text.rpartition(":")
    if not sep or not host or host.startswith("unix") or parse_port(port, where) == 0:
        raise _bad(where, value, "one HOST:PORT with an explicit port, e.g. 0.0.0.0:9100 or [::]:9100")
    return text


def bind_port(bind: str) -> int:
    """The port of a HOST:PORT bind already checked by parse_binds / parse_metrics_bind."""
    return int(bind.rpartition(":")[2])


MAX_WORKERS = 64


def parse_workers(value: Any, where: str) -> int:
    try:
        workers = int(str(value).strip()) if not isinstance(value, bool) else 0
    except ValueError:
        workers = 0
    if not 1 <= workers <= MAX_WORKERS:
        raise _bad(
            where, value, f"a whole number of gateway processes from 1 to {MAX_WORKERS}, e.g. 2 (one per CPU core)"
        )
    return workers
