"""The upstream state snapshot and the hub that owns it, publishes it, and relays stop/restart requests."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any, Literal, Protocol, TypeAlias, get_args

logger = logging.getLogger("supervisor")

StateName: TypeAlias = Literal["starting", "ready", "unhealthy", "restarting", "stopped", "failed"]
STATE_NAMES: frozenset[str] = frozenset(get_args(StateName))


@dataclass(frozen=True)
class UpstreamState:
    """One immutable snapshot of the child: what it is doing and where it listens."""

    state: StateName
    host: str | None = None
    port: int | None = None
    pid: int | None = None
    generation: int = 0
    since: float = 0.0
    detail: str = ""

    @property
    def url(self) -> str | None:
        """`http://host:port` when the port is known (IPv6 hosts bracketed), else None."""
        if self.port is None:
            return None
        host = self.host or "127.0.0.1"
        if ":" in host and not host.startswith("["):
            host = f"[{host}]"
        return f"http://{host}:{self.port}"

    def to_json(self) -> str:
        """Serialise with the derived `url` included, for readers that only want the address."""
        return json.dumps({**asdict(self), "url": self.url}, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> UpstreamState:
        """Parse `to_json` output; raises ValueError naming the first bad field. Unknown keys are ignored."""
        try:
            raw = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"upstream state is not JSON: {exc}") from None
        if not isinstance(raw, dict):
            raise ValueError(f"upstream state must be a JSON object, got {type(raw).__name__}")
        state = raw.get("state")
        if state not in STATE_NAMES:
            raise ValueError(f"upstream state 'state'={state!r} is not one of {sorted(STATE_NAMES)}")
        return cls(
            state=state,
            host=_optional(raw, "host", str),
            port=_optional_port(raw),
            pid=_optional(raw, "pid", int),
            generation=_field(raw, "generation", int, 0),
            since=float(_field(raw, "since", (int, float), 0.0)),
            detail=_field(raw, "detail", str, ""),
        )


def _field(raw: dict[str, Any], key: str, kind: type | tuple[type, ...], default: Any) -> Any:
    value = raw.get(key, default)
    # bool is an int subclass; `"port": true` is garbage, not port 1.
    if isinstance(value, bool) or not isinstance(value, kind):
        raise ValueError(f"upstream state {key!r}={value!r} has the wrong type")
    return value


def _optional(raw: dict[str, Any], key: str, kind: type) -> Any:
    if raw.get(key) is None:
        return None
    return _field(raw, key, kind, None)


def _optional_port(raw: dict[str, Any]) -> int | None:
    port: int | None = _optional(raw, "port", int)
    if port is not None and not 0 < port < 65536:
        raise ValueError(f"upstream state 'port'={port!r} is outside 1..65535")
    return port


class SupervisorControl(Protocol):
    """What a running supervisor accepts from the hub (the hub stays free of event-loop details)."""

    def request_stop(self) -> None: ...

    def request_restart(self) -> None: ...


StateCallback: TypeAlias = Callable[[UpstreamState], None]


class StateHub:
    """Single owner of the current snapshot; readers take `.current`, which never does I/O.

    Also the programmatic remote control of a run: `request_stop()` acts like SIGTERM (a second call, like a
    second signal, skips draining) and `request_restart()` like SIGHUP. Call them from the event-loop thread;
    from another thread use `anyio.from_thread.run_sync(hub.request_stop)`.
    """

    def __init__(self, initial: UpstreamState | None = None) -> None:
        self._current = initial if initial is not None else UpstreamState(state="starting", since=time.time())
        self._stopping = False
        self._subscribers: list[StateCallback] = []
        self._control: SupervisorControl | None = None
        self._pending_stop = False

    @property
    def current(self) -> UpstreamState:
        return self._current

    @property
    def stopping(self) -> bool:
        """True from the moment a graceful stop begins, so readiness can turn 503 at once."""
        return self._stopping

    def publish(self, state: UpstreamState) -> None:
        """Replace the snapshot and call every subscriber; a failing subscriber is logged, never fatal."""
        self._current = state
        for callback in list(self._subscribers):
            try:
                callback(state)
            except Exception:
                logger.exception("state subscriber failed", extra={"callback": repr(callback), "state": state.state})

    def subscribe(self, callback: StateCallback) -> None:
        """Call `callback(state)` synchronously on every publish (it must not block)."""
        self._subscribers.append(callback)

    def unsubscribe(self, callback: StateCallback) -> None:
        """Stop calling `callback`; unknown callbacks are ignored."""
        if callback in self._subscribers:
            self._subscribers.remove(callback)

    def request_stop(self) -> None:
        """Begin a graceful stop (or force it if one is under way); remembered if no run is attached yet."""
        if self._control is None:
            self._pending_stop = True
        else:
            self._control.request_stop()

    def request_restart(self) -> None:
        """Restart the child as a new generation without dropping the server; ignored when not running."""
        if self._control is not None:
            self._control.request_restart()

    # The runner's side of the hub: these are not for the product.

    def _attach(self, control: SupervisorControl) -> bool:
        """Connect a run; returns whether a stop was requested before it started."""
        self._control = control
        self._stopping = False
        pending, self._pending_stop = self._pending_stop, False
        return pending

    def _detach(self) -> None:
        self._control = None

    def _set_stopping(self) -> None:
        self._stopping = True
