"""systemd notification (sd_notify) over $NOTIFY_SOCKET, and the watchdog interval it asks for."""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Mapping

logger = logging.getLogger("supervisor")


def notify_socket_address(value: str) -> str:
    """Turn a $NOTIFY_SOCKET value into a socket address: a leading '@' means the abstract namespace."""
    if value.startswith("@"):
        return "\0" + value[1:]
    return value


def sd_notify(message: str) -> bool:
    """Send one datagram to $NOTIFY_SOCKET; False when unset or undeliverable (never raises)."""
    target = os.environ.get("NOTIFY_SOCKET")
    if not target or not hasattr(socket, "AF_UNIX"):
        return False
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            # Called on the event loop: a full receiver queue must drop the message, never block us.
            sock.setblocking(False)
            sock.sendto(message.encode("utf-8"), notify_socket_address(target))
    except OSError as exc:
        logger.debug("sd_notify failed", extra={"notify_socket": target, "error": str(exc)})
        return False
    return True


def watchdog_interval(env: Mapping[str, str], pid: int) -> float | None:
    """Seconds between WATCHDOG=1 pings (half of $WATCHDOG_USEC), or None when no watchdog is asked of us."""
    usec = env.get("WATCHDOG_USEC", "")
    if not usec.isdigit() or int(usec) == 0:
        return None
    # systemd sets WATCHDOG_PID so a child that inherited the environment does not ping for us.
    owner = env.get("WATCHDOG_PID", "")
    if owner and (not owner.isdigit() or int(owner) != pid):
        return None
    return int(usec) / 2 / 1_000_000


def status_text(state: str, generation: int, pid: int | None, port: int | None, detail: str) -> str:
    """A one-line STATUS= text for systemctl status."""
    parts = [f"child {state}", f"generation {generation}"]
    if pid is not None:
        parts.append(f"pid {pid}")
    if port is not None:
        parts.append(f"port {port}")
    text = ", ".join(parts)
    return f"{text}: {detail}" if detail else text
