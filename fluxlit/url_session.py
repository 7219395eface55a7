"""URL sessions: keep a page's session_state across reloads and reconnects via a session id in the query string.

The id (``?fluxlit_sid=...``) is a bearer secret: anyone holding the link holds the session. It is never
logged, an id the store does not know is never adopted (a fresh one is minted, so a crafted link cannot fix a
victim's session), and only ids shaped like :func:`new_session_id` are looked up at all.
"""

from __future__ import annotations

import os
import re
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Protocol, runtime_checkable

DEFAULT_PARAM = "fluxlit_sid"
_HYDRATED_KEY = "_fluxlit_url_session_hydrated"
_SID_SHAPE = re.compile(r"[A-Za-z0-9_-]{32,128}")


@runtime_checkable
class SessionStore(Protocol):
    """Where URL-session snapshots live; share one across replicas (e.g. Redis) for continuity between them."""

    def get(self, session_id: str) -> dict[str, Any] | None: ...

    def set(self, session_id: str, data: Mapping[str, Any], ttl_seconds: int | None = None) -> None: ...

    def delete(self, session_id: str) -> None: ...


class InMemorySessionStore:
    """A per-process store: least recently *used* entries go first when full; each entry expires after its TTL.

    ``ttl_seconds=0`` (or a default of 0) means no expiry. Thread-safe: Streamlit runs sessions in threads.
    """

    def __init__(
        self,
        *,
        max_entries: int = 5000,
        default_ttl_seconds: int = 86400,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_entries < 1:
            raise ValueError(f"max_entries={max_entries} must be at least 1")
        if default_ttl_seconds < 0:
            raise ValueError(f"default_ttl_seconds={default_ttl_seconds} must be 0 (no expiry) or more")
        self.max_entries = max_entries
        self.default_ttl_seconds = default_ttl_seconds
        self._entries: OrderedDict[str, tuple[float | None, dict[str, Any]]] = OrderedDict()
        self._lock = threading.Lock()
        self._clock = clock

    def get(self, session_id: str) -> dict[str, Any] | None:
        with self._lock:
            entry = self._entries.get(session_id)
            if entry is None:
                return None
            expires, data = entry
            if expires is not None and self._clock() >= expires:
                del self._entries[session_id]
                return None
            self._entries.move_to_end(session_id)
            return dict(data)

    def set(self, session_id: str, data: Mapping[str, Any], ttl_seconds: int | None = None) -> None:
        ttl = self.default_ttl_seconds if ttl_seconds is None else ttl_seconds
        if ttl < 0:
            raise ValueError(f"ttl_seconds={ttl} must be 0 (no expiry) or more")
        expires = self._clock() + ttl if ttl else None
        with self._lock:
            self._entries[session_id] = (expires, dict(data))
            self._entries.move_to_end(session_id)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)

    def delete(self, session_id: str) -> None:
        with self._lock:
            self._entries.pop(session_id, None)

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    def __repr__(self) -> str:  # never the ids: they are secrets
        return f"InMemorySessionStore(entries={len(self)}, max_entries={self.max_entries})"


def new_session_id() -> str:
    """A fresh unguessable id (256 bits, URL-safe)."""
    return secrets.token_urlsafe(32)


def url_session_enabled(environ: Mapping[str, str] | None = None) -> bool:
    """Off with FLUXLIT_DISABLE_URL_SESSION=1; off under FLUXLIT_TESTS=1 unless FLUXLIT_FORCE_URL_SESSION_IN_TESTS=1."""
    env = os.environ if environ is None else environ
    if env.get("FLUXLIT_DISABLE_URL_SESSION") == "1":
        return False
    return env.get("FLUXLIT_TESTS") != "1" or env.get("FLUXLIT_FORCE_URL_SESSION_IN_TESTS") == "1"


def _session_id_from_url(st: Any, param: str) -> str | None:
    values = st.query_params.get_all(param)
    sid = values[0] if values else None
    return sid if sid and _SID_SHAPE.fullmatch(sid) else None


def hydrate_url_session(st: Any, store: SessionStore, *, param: str = DEFAULT_PARAM, merge: bool = True) -> bool:
    """Load the URL's session snapshot into st.session_state; True when one was found.

    With ``merge`` (the default) values already in session_state win, so a rerun never clobbers what the
    user just typed; ``merge=False`` overwrites them with the stored snapshot.
    """
    if not url_session_enabled():
        return False
    sid = _session_id_from_url(st, param)
    data = store.get(sid) if sid else None
    if data is None:
        return False
    for key, value in data.items():
        if merge:
            st.session_state.setdefault(key, value)
        else:
            st.session_state[key] = value
    return True


def persist_url_session(
    st: Any,
    store: SessionStore,
    *,
    param: str = DEFAULT_PARAM,
    keys: Iterable[str] | None = None,
    ttl_seconds: int | None = None,
) -> bool:
    """Save session_state (only ``keys`` when given; never keys starting with ``_``) under the URL's session id."""
    if not url_session_enabled():
        return False
    sid = _session_id_from_url(st, param)
    if sid is None:
        return False
    state = st.session_state
    names = [k for k in (list(keys) if keys is not None else list(state.keys())) if not str(k).startswith("_")]
    snapshot = {name: state[name] for name in names if name in state}
    store.set(sid, snapshot, ttl_seconds=ttl_seconds)
    return True


def ensure_url_session(
    st: Any,
    store: SessionStore,
    *,
    param: str = DEFAULT_PARAM,
    initial: Mapping[str, Any] | None = None,
    ttl_seconds: int | None = None,
) -> str | None:
    """Make sure the URL carries a live session id and session_state holds its snapshot; returns the id.

    Call it at the top of a page (cheap on reruns: the store is read once per browser session). A missing,
    malformed, expired or unknown id gets a fresh one seeded with ``initial``. Returns None when URL sessions
    are switched off (see :func:`url_session_enabled`).
    """
    if not url_session_enabled():
        return None
    sid = _session_id_from_url(st, param)
    if sid is not None and st.session_state.get(_HYDRATED_KEY) == sid:
        return sid
    data = store.get(sid) if sid else None
    if data is None:
        sid = new_session_id()
        data = dict(initial or {})
        store.set(sid, data, ttl_seconds=ttl_seconds)
        st.query_params[param] = sid
    for key, value in data.items():
        st.session_state.setdefault(key, value)
    st.session_state[_HYDRATED_KEY] = sid
    return sid


__all__ = [
    "DEFAULT_PARAM",
    "InMemorySessionStore",
    "SessionStore",
    "ensure_url_session",
    "hydrate_url_session",
    "new_session_id",
    "persist_url_session",
    "url_session_enabled",
]
