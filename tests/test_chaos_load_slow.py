"""Faults under load against a real `fluxlit serve`: child kills and stalls, graceful stop, and a parent killed hard.

A bounded load generator (threads, loopback only) runs while the fault happens; each test states what a client,
an operator's probe and the process table must see. Figures are printed (run with -s to read them).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import statistics
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from tests._live import LiveServer, pid_alive, wait_for

pytestmark = pytest.mark.slow

CRASH_BUDGET_ENV = {"FLUXLIT_RESTART_MAX_FAILURES": "1000", "FLUXLIT_RESTART_BACKOFF_MAX_S": "0.5"}
KILLS = int(os.environ.get("FLUXLIT_CHAOS_KILLS", "100"))
FD_SLACK = 8


def readiness(live: LiveServer, client: httpx.Client | None = None) -> tuple[int, int]:
    """(status, generation) of /api/readyz; (-1, -1) when it does not answer."""
    try:
        response = (client or httpx).get(f"{live.base}/api/readyz", timeout=2.0)
    except httpx.HTTPError:
        return -1, -1
    return response.status_code, int(response.json().get("generation", -1))


def restarts_counted(client: httpx.Client, live: LiveServer) -> float:
    text = client.get(f"{live.base}/__fluxlit/metrics").text
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("fluxlit_supervisor_child_restarts_total{")
    )


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def children_of(pid: int) -> list[tuple[int, str]]:
    """(pid, state letter) of each direct child, read from /proc."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        with contextlib.suppress(OSError):
            stat = Path(f"/proc/{entry}/stat").read_text()
            fields = stat.rsplit(")", 1)[1].split()
            if int(fields[1]) == pid:
                found.append((int(entry), fields[0]))
    return found


def session_members(sid: int) -> list[int]:
    """Every process whose session id is `sid` (what LiveServer started and all it spawned)."""
    members = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError):
                fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
                if int(fields[4]) == sid and fields[0] != "Z":
                    members.append(int(entry))
    return members


@dataclass
class SteadyLoad:
    """GET `url` at `rate` per second from one keep-alive client until stopped; every outcome recorded."""

    url: str
    rate: float = 20.0
    limit_s: float = 1800.0
    outcomes: list[int | str] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __enter__(self) -> SteadyLoad:
        self._thread = threading.Thread(target=self._run, name="steady-load", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        assert self._thread is not None
        self._thread.join(timeout=30)

    def _run(self) -> None:
        period = 1.0 / self.rate
        started = time.monotonic()
        with httpx.Client(timeout=5.0) as client:
            tick = started
            while not self._stop.is_set() and time.monotonic() - started < self.limit_s:
                try:
                    self.outcomes.append(client.get(self.url).status_code)
                except httpx.HTTPError as exc:
                    self.outcomes.append(type(exc).__name__)
                tick += period
                self._stop.wait(max(0.0, tick - time.monotonic()))

    @property
    def failures(self) -> list[int | str]:
        return [outcome for outcome in self.outcomes if outcome != 200]


@pytest.fixture
def crash_tolerant(tmp_path: Path) -> Iterator[LiveServer]:
    with LiveServer(tmp_path, env=CRASH_BUDGET_ENV).running() as live:
        yield live


def kill_child_repeatedly(live: LiveServer, probe: httpx.Client, signum: int, times: int) -> list[float]:
    """Kill the child `times` times, each time waiting for readiness with a newer generation; seconds to ready."""
    to_ready = []
    for round_number in range(times):
        status, generation = readiness(live, probe)
        assert status == 200, f"not ready before kill {round_number}"
        victim = live.child_pid()
        killed_at = time.monotonic()
        os.kill(victim, signum)

        def ready_again(before: int = generation) -> bool:
            now_status, now_generation = readiness(live, probe)
            return now_status == 200 and now_generation > before

        wait_for(ready_again, 60, f"readiness after kill {round_number}")
        to_ready.append(time.monotonic() - killed_at)
        assert not pid_alive(victim)
    return to_ready


@pytest.mark.parametrize(
    ("signum", "times"),
    [(signal.SIGKILL, KILLS), (signal.SIGSEGV, 10)],
    ids=["sigkill", "sigsegv"],
)
def test_child_kills_under_load_lose_no_api_request_and_leak_nothing(
    crash_tolerant: LiveServer, signum: int, times: int
) -> None:
    """Probes and load use keep-alive connections: hypercorn holds a socket the client closed for up to
    keep_alive_timeout (see test_hostile_http), which would otherwise swamp the descriptor count."""
    live = crash_tolerant
    assert live.proc is not None
    gateway = live.proc.pid
    with httpx.Client(timeout=5.0) as probe:
        for _ in range(20):  # warm the pool and the API before counting descriptors
            probe.get(f"{live.base}/api/smoke")
            probe.get(f"{live.base}/")
        fds_before = open_fds(gateway)
        restarts_before = restarts_counted(probe, live)

        with SteadyLoad(f"{live.base}/api/smoke", rate=20) as load:
            to_ready = kill_child_repeatedly(live, probe, signum, times)

        assert probe.get(f"{live.base}/").status_code == 200
        wait_for(lambda: not [c for c in children_of(gateway) if c[1] == "Z"], 5, "dead children to be reaped")
        fds_after = open_fds(gateway)
        restarts = restarts_counted(probe, live) - restarts_before
    print(
        f"\n[{signal.Signals(signum).name}] kills={times} requests={len(load.outcomes)} failed={len(load.failures)} "
        f"ready_s median={statistics.median(to_ready):.2f} max={max(to_ready):.2f} "
        f"restarts_counted={restarts:.0f} fds before={fds_before} after={fds_after}"
    )
    assert load.failures == []
    assert len(load.outcomes) >= 10 * sum(to_ready) * 0.5  # the load really ran throughout (20/s, half slack)
    assert restarts == times
    assert fds_after <= fds_before + FD_SLACK
    assert [pid for pid, _ in children_of(gateway)] == [live.child_pid()]


def test_stalled_child_turns_readiness_503_and_proxied_requests_fail_fast(tmp_path: Path) -> None:
    env = {**CRASH_BUDGET_ENV, "FLUXLIT_GATEWAY_UPSTREAM_READ_TIMEOUT_S": "1"}
    live = LiveServer(tmp_path, env=env).start()
    child = None
    try:
        live.wait_ready()
        child = live.child_pid()
        os.kill(child, signal.SIGSTOP)
        stopped_at = time.monotonic()
        proxied: list[tuple[int, float]] = []
        probing = threading.Event()

        def proxied_requests() -> None:
            while not probing.is_set() and time.monotonic() - stopped_at < 15:
                started = time.monotonic()
                proxied.append((live.get("/_stcore/health", timeout=10).status_code, time.monotonic() - started))

        client = threading.Thread(target=proxied_requests, name="proxied-during-stall")
        client.start()
        try:
            # health_interval 2 s x 2 failures, each probe allowed up to 2 s: at most 8 s after the stall began.
            wait_for(lambda: readiness(live)[0] == 503, 10, "readiness 503 while the child is stopped")
            to_503 = time.monotonic() - stopped_at
        finally:
            probing.set()
            client.join(timeout=15)
        assert live.get("/api/smoke").status_code == 200
        after = live.get("/_stcore/health", timeout=10)
        os.kill(child, signal.SIGCONT)
        continued_at = time.monotonic()
        wait_for(lambda: readiness(live)[0] == 200, 15, "readiness 200 after SIGCONT")
        to_ready = time.monotonic() - continued_at
        print(f"\n[SIGSTOP] 503 after {to_503:.2f}s; ready {to_ready:.2f}s after SIGCONT; proxied={proxied}")
        assert to_503 <= 9.0
        assert proxied
        assert {status for status, _ in proxied} <= {504, 503}
        assert max(seconds for _, seconds in proxied) < 3.0  # read timeout 1 s: an answer, not a hang
        assert after.status_code == 503
        assert after.headers.get("retry-after")
        assert live.get("/").status_code == 200
    finally:
        if child is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(child, signal.SIGCONT)
        live.stop()


def test_parent_killed_hard_takes_the_child_down_and_frees_port_and_state_file(tmp_path: Path) -> None:
    live = LiveServer(tmp_path).start()
    again: LiveServer | None = None
    try:
        live.wait_ready()
        child = live.child_pid()
        killed_at = time.monotonic()
        live.signal(signal.SIGKILL)
        wait_for(lambda: not pid_alive(child), 5, "the orphaned child to die")
        child_gone = time.monotonic() - killed_at
        live.wait_exit(10)
        print(f"\n[parent SIGKILL] child gone after {child_gone:.3f}s")
        assert child_gone <= 1.0
        with socket.socket() as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind(("127.0.0.1", live.port))  # as the next server binds it
        assert live.state_file.exists()  # left by the killed run: the next one must cope with it

        again = LiveServer(tmp_path, port=live.port).start()
        again.wait_ready()
        assert again.state()["pid"] != child
        assert again.get("/api/smoke").status_code == 200
        assert again.get("/").status_code == 200
    finally:
        live.kill_leftovers()
        if again is not None:
            again.stop()


# --- graceful stop with ~50 requests in flight ---


@dataclass
class Outcome:
    """How one request ended: status and body size, or the error class; `refused` if never accepted."""

    kind: str
    status: int | None = None
    size: int = 0
    expected_size: int | None = None
    error: str = ""

    @property
    def refused(self) -> bool:
        return self.error == "ConnectError"

    @property
    def completed(self) -> bool:
        return self.status == 200 and (self.expected_size is None or self.size == self.expected_size)


def slow_api(base: str, seconds: float = 2.0) -> Outcome:
    try:
        response = httpx.get(f"{base}/api/slow?seconds={seconds}", timeout=30)
    except httpx.HTTPError as exc:
        return Outcome("slow", error=type(exc).__name__)
    return Outcome("slow", response.status_code, len(response.content))


def slow_download(base: str, asset: str, started: threading.Semaphore) -> Outcome:
    """Stream a static asset through the proxy, reading slowly so the response is still going at SIGTERM."""
    try:
        with httpx.stream("GET", f"{base}/{asset}", timeout=30) as response:
            started.release()
            size = 0
            for chunk in response.iter_bytes(65536):
                size += len(chunk)
                time.sleep(0.2)
            length = response.headers.get("content-length")
            return Outcome("stream", response.status_code, size, int(length) if length else None)
    except httpx.HTTPError as exc:
        return Outcome("stream", error=type(exc).__name__)


def websocket_close_code(port: int, opened: threading.Barrier) -> Outcome:
    from streamlit.proto.BackMsg_pb2 import BackMsg
    from websockets.exceptions import ConnectionClosed
    from websockets.sync.client import connect

    back = BackMsg()
    back.rerun_script.query_string = ""
    back.rerun_script.page_script_hash = ""
    try:
        with connect(f"ws://127.0.0.1:{port}/_stcore/stream", subprotocols=["streamlit"], open_timeout=10) as ws:
            ws.send(back.SerializeToString())
            ws.recv(timeout=10)
            opened.wait(timeout=30)
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                ws.recv(timeout=30)
    except ConnectionClosed as exc:
        code = exc.rcvd.code if exc.rcvd is not None else None
        return Outcome("websocket", status=code)
    except Exception as exc:  # reported in the assertion, not swallowed
        return Outcome("websocket", error=f"{type(exc).__name__}: {exc}")
    return Outcome("websocket", error="still open after 30 s")


def in_flight(live: LiveServer, dispatch: str) -> float:
    prefix = f'fluxlit_gateway_in_flight_requests{{dispatch="{dispatch}"}} '
    text = live.get("/__fluxlit/metrics").text
    return sum(float(line[len(prefix) :]) for line in text.splitlines() if line.startswith(prefix))


def first_script(live: LiveServer) -> str:
    shell = live.get("/").text
    return next(p.split('"')[0] for p in shell.split('src="')[1:] if p.split('"')[0].endswith(".js")).lstrip("./")


def test_sigterm_with_fifty_requests_in_flight_finishes_them_and_exits_zero(tmp_path: Path) -> None:
    graceful = 10.0
    with LiveServer(tmp_path, "--graceful-timeout", str(graceful)).started() as live:
        assert live.proc is not None
        child = live.child_pid()
        asset = first_script(live)
        sockets = 4
        opened = threading.Barrier(sockets + 1)
        with ThreadPoolExecutor(max_workers=64) as pool:
            futures = [pool.submit(websocket_close_code, live.port, opened) for _ in range(sockets)]
            opened.wait(timeout=30)  # every WebSocket has a live session
            downloads = threading.Semaphore(0)
            futures += [pool.submit(slow_api, live.base, 4.0) for _ in range(40)]
            futures += [pool.submit(slow_download, live.base, asset, downloads) for _ in range(6)]
            for _ in range(6):
                assert downloads.acquire(timeout=20), "a download never got its response head"
            wait_for(lambda: in_flight(live, "api") >= 40, 20, "40 slow API requests in flight")
            live.signal(signal.SIGTERM)
            stopped_at = time.monotonic()
            code = live.wait_exit(graceful + 10)
            took = time.monotonic() - stopped_at
            outcomes = [f.result(timeout=60) for f in futures]
        print(f"\n[SIGTERM] exit {code} after {took:.2f}s; outcomes={[(o.kind, o.status, o.error) for o in outcomes]}")
        http = [o for o in outcomes if o.kind != "websocket"]
        assert [o for o in http if not o.completed] == []
        assert [o.status for o in outcomes if o.kind == "websocket"] == [1001] * sockets
        assert code == 0
        assert took <= graceful + 1.0
        assert not pid_alive(child)
        assert session_members(live.proc.pid) == []


def test_requests_arriving_after_sigterm_are_refused_not_accepted_and_dropped(tmp_path: Path) -> None:
    with LiveServer(tmp_path).started() as live:
        with ThreadPoolExecutor(max_workers=16) as pool:
            draining = pool.submit(slow_api, live.base)  # keeps the drain going for 2 s
            time.sleep(0.5)
            live.signal(signal.SIGTERM)
            time.sleep(0.3)  # past the moment hypercorn closes its listener
            late = [pool.submit(slow_api, live.base) for _ in range(5)]
            outcomes = [f.result(timeout=60) for f in late]
            assert draining.result(timeout=60).completed
        assert live.wait_exit(20) == 0
        assert [o.error or o.status for o in outcomes if not (o.completed or o.refused)] == []


def listening_inode(port: int) -> str:
    """The socket inode of the TCP listener on 127.0.0.1:`port`, from /proc/net/tcp."""
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local, state, inode = fields[1], fields[3], fields[9]
        if state == "0A" and local.endswith(f":{port:04X}"):
            return inode
    raise AssertionError(f"nothing listens on port {port}")


def test_the_streamlit_child_holds_no_public_listening_socket(crash_tolerant: LiveServer) -> None:
    live = crash_tolerant
    inode = listening_inode(live.port)
    child = live.child_pid()
    held = {os.readlink(f"/proc/{child}/fd/{fd}") for fd in os.listdir(f"/proc/{child}/fd")}
    assert f"socket:[{inode}]" not in held


def test_load_generator_counts_a_dead_server_as_failures(tmp_path: Path) -> None:
    """The load generator itself can fail: with nothing listening every request is recorded as an error."""
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        port = holder.getsockname()[1]
    with SteadyLoad(f"http://127.0.0.1:{port}/api/smoke", rate=50) as load:
        time.sleep(0.3)
    assert load.outcomes
    assert set(load.failures) == {"ConnectError"}
