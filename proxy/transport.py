"""Opening a byte stream to the upstream, over TCP or a unix socket, within the connect deadline."""

from __future__ import annotations

import anyio
import anyio.abc

from .config import Upstream
from .failures import Failure, UpstreamError


def describe(upstream: Upstream) -> str:
    if upstream.unix_path is not None:
        return f"unix:{upstream.unix_path}"
    return f"{upstream.host}:{upstream.port}"


async def open_stream(upstream: Upstream, connect_timeout: float) -> anyio.abc.ByteStream:
    """Connect, or raise UpstreamError(CONNECT_REFUSED | CONNECT_TIMEOUT)."""
    try:
        with anyio.fail_after(connect_timeout):
            if upstream.unix_path is not None:
                return await anyio.connect_unix(upstream.unix_path)
            assert upstream.port is not None  # Upstream.__post_init__ guarantees a port or a unix path
            return await anyio.connect_tcp(upstream.host, upstream.port)
    # TimeoutError is an OSError too, so it must be told apart first.
    except TimeoutError:
        raise UpstreamError(Failure.CONNECT_TIMEOUT, f"{describe(upstream)} after {connect_timeout:g}s") from None
    except OSError as exc:
        raise UpstreamError(Failure.CONNECT_REFUSED, f"{describe(upstream)}: {exc.strerror or exc}") from None
