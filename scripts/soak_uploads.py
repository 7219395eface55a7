"""The upload part of scripts/soak_mixed.py: Streamlit file uploads from a live session, after shared idle pauses."""

from __future__ import annotations

import threading
import time
import uuid
from typing import Any
from urllib.parse import urlsplit

import httpx

# Streamlit's server (uvicorn) closes connections idle this long: pauses over it test stale pooled connections.
STREAMLIT_KEEP_ALIVE_S = 5.0
XSRF_COOKIE = "_streamlit_xsrf"


class StreamlitUploader:
    """One worker's browser tab for file uploads: its own client (holding the XSRF cookie Streamlit set) and a
    live session, whose WebSocket stays open for the whole soak (a session takes uploads only while connected)."""

    def __init__(self, base_url: str, timeout_s: float) -> None:
        self.base_url = base_url
        self.timeout_s = timeout_s
        self.client = httpx.Client(timeout=timeout_s)
        self.problem: str | None = None
        self._token = ""
        self._session = ""
        self._ws: Any = None

    def open(self) -> None:
        """Get a token and a session now, before any pause, so that nothing but the upload follows one."""
        try:
            self._token = self.client.get(f"{self.base_url}/_stcore/health").cookies[XSRF_COOKIE].strip('"')
            self._ws, self._session = self._open_session()
        except Exception as exc:  # every upload of this worker then reports it
            self.problem = f"no Streamlit session: {type(exc).__name__}: {exc}"

    def _open_session(self) -> tuple[Any, str]:
        from streamlit.proto.BackMsg_pb2 import BackMsg
        from streamlit.proto.ForwardMsg_pb2 import ForwardMsg
        from websockets.sync.client import connect
        from websockets.typing import Subprotocol

        parts = urlsplit(self.base_url)
        ws = connect(
            f"{'wss' if parts.scheme == 'https' else 'ws'}://{parts.netloc}{parts.path}/_stcore/stream",
            subprotocols=[Subprotocol("streamlit"), Subprotocol(self._token)],
            additional_headers={"Cookie": f"{XSRF_COOKIE}={self._token}", "Origin": self.base_url},
            open_timeout=self.timeout_s,
            max_queue=None,  # nothing reads it after the first message: never stop answering pings for a full queue
        )
        back = BackMsg()
        back.rerun_script.query_string = ""
        back.rerun_script.page_script_hash = ""
        ws.send(back.SerializeToString())
        deadline = time.monotonic() + self.timeout_s * 2
        while time.monotonic() < deadline:
            message = ForwardMsg()
            message.ParseFromString(ws.recv(timeout=self.timeout_s))
            if message.WhichOneof("type") == "new_session":
                return ws, message.new_session.initialize.session_id
        ws.close()
        raise TimeoutError("no new_session message")

    def upload(self) -> str | None:
        """PUT one small file as st.file_uploader does; None when Streamlit took it (204), else why not."""
        if self.problem is not None:
            return self.problem
        url = f"{self.base_url}/_stcore/upload_file/{self._session}/{uuid.uuid4().hex}"
        files = {"file": ("soak.txt", b"soak upload\n" * 2000, "text/plain")}
        headers = {"X-Xsrftoken": self._token, "Origin": self.base_url}
        response = self.client.put(url, files=files, headers=headers)
        return None if response.status_code == 204 else f"status {response.status_code}: {response.text[:80].strip()}"

    def close(self) -> None:
        if self._ws is not None:
            self._ws.close()
        self.client.close()


class IdlePauses:
    """Every worker stops at the same points of the schedule (`boundaries`); once all have, none sends anything
    for that point's pause, so the gateway's connections to Streamlit idle (past Streamlit's keep-alive in about
    half of the pauses for a 10 s maximum); then every worker uploads at once, each meeting an idle connection."""

    def __init__(self, *, boundaries: list[int], pauses: list[float], workers: int, deadline_s: float) -> None:
        self.boundaries = boundaries
        self.pauses = pauses
        self.current = 0
        self._all_stopped = threading.Barrier(workers, timeout=deadline_s)
        self._all_uploaded = threading.Barrier(workers, action=self._next, timeout=deadline_s)

    @property
    def next_boundary(self) -> int | None:
        return self.boundaries[self.current] if self.current < len(self.boundaries) else None

    def upload_after_pause(self, uploader: StreamlitUploader) -> str | None:
        """Wait for every worker, idle, upload, and wait for every upload; None when this worker's upload passed."""
        try:
            self._all_stopped.wait()
        except threading.BrokenBarrierError:
            return self._abandon()
        time.sleep(self.pauses[self.current])
        try:
            error = uploader.upload()
        except Exception as exc:  # counted like any failed request
            error = f"{type(exc).__name__}: {exc}"
        try:
            self._all_uploaded.wait()
        except threading.BrokenBarrierError:
            return error or self._abandon()
        return error

    def _abandon(self) -> str:
        """A worker never arrived within the deadline: no more pauses, so nobody waits for it again."""
        self.boundaries = []
        self._all_stopped.abort()
        self._all_uploaded.abort()
        return "an idle pause was abandoned: a worker never reached it"

    def _next(self) -> None:
        self.current += 1
