"""The processes the full-stack bench measures: each started on a free loopback port, each stopped by its PID."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psutil

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
APPS = BENCH / "apps"
REF_VENV = BENCH / ".venv-ref"
REF_VERSION = "0.13.2"
APP_TARGET = "bench/apps/bench_app.py:app"
# The reference runs from bench/apps with an absolute target: from the repo root, its Streamlit child would
# import our fluxlit package (the working directory comes first on its sys.path) instead of its own.
REF_APP_TARGET = f"{APPS / 'bench_app.py'}:app"

sys.path.insert(0, str(ROOT))

from tests._edge import Nginx  # noqa: E402
from tests._live import free_port  # noqa: E402


def ensure_reference_venv() -> Path:
    """bench/.venv-ref with fluxlit==0.13.2 from PyPI; reused when it already holds that version."""
    python = REF_VENV / "bin" / "python"
    check = [str(python), "-I", "-c", "import importlib.metadata as m; print(m.version('fluxlit'))"]
    if python.exists():
        found = subprocess.run(check, capture_output=True, text=True, timeout=60)
        if found.returncode == 0 and found.stdout.strip() == REF_VERSION:
            return REF_VENV
    print(f"creating {REF_VENV} with fluxlit=={REF_VERSION} (once) ...", flush=True)
    subprocess.run(["python3", "-m", "venv", str(REF_VENV)], check=True, timeout=300)
    subprocess.run([str(python), "-m", "pip", "install", "--quiet", f"fluxlit=={REF_VERSION}"], check=True, timeout=900)
    return REF_VENV


@dataclass
class Target:
    """One server under test: how to start it, where it answers, and the processes it is made of."""

    name: str
    argv: list[str]
    ready_path: str
    workdir: Path
    cwd: Path = ROOT
    env: dict[str, str] = field(default_factory=dict)
    port: int = field(default_factory=free_port)
    serves_from_child: bool = False
    proc: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0
    started_wall: float = 0.0

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.workdir / f"{self.name}-{self.port}.log"

    def start(self) -> Target:
        env = {**os.environ, "PYTHONUNBUFFERED": "1", **self.env}
        with self.log_path.open("ab") as log:
            self.started_at = time.monotonic()
            self.started_wall = time.time()
            self.proc = subprocess.Popen(
                [part.replace("{port}", str(self.port)) for part in self.argv],
                cwd=self.cwd, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True,
            )  # fmt: skip
        return self

    def wait_ready(self, timeout: float = 120.0) -> float:
        """Seconds from start() to the first 200 on the ready path; polls every 10 ms."""
        assert self.proc is not None
        deadline = self.started_at + timeout
        with httpx.Client(timeout=2.0) as client:
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"{self.name} exited with {self.proc.returncode}:\n{self.log()[-3000:]}")
                try:
                    # A fresh connection per probe: a server that is still binding must not look ready.
                    if client.get(self.base + self.ready_path, headers={"connection": "close"}).status_code == 200:
                        return time.monotonic() - self.started_at
                except httpx.HTTPError:
                    pass
                time.sleep(0.01)
        raise RuntimeError(f"{self.name} not ready after {timeout}s:\n{self.log()[-3000:]}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def tree(self) -> list[psutil.Process]:
        """The started process and all its descendants (the reference starts Streamlit in its own session)."""
        assert self.proc is not None
        try:
            top = psutil.Process(self.proc.pid)
            return [top, *top.children(recursive=True)]
        except psutil.NoSuchProcess:
            return []

    def gateway(self) -> psutil.Process:
        """The process serving the public port: the first one listening on it, or with `serves_from_child` the
        last (hypercorn's CLI keeps the socket in its parent and serves from a worker). Only the first is safe
        by default: our Streamlit child inherits the gateway's listening socket (seen with fluxlit 0.1.0)."""
        listeners = []
        for process in self.tree():
            with contextlib.suppress(psutil.Error):
                if any(
                    conn.status == psutil.CONN_LISTEN and conn.laddr.port == self.port
                    for conn in process.net_connections(kind="tcp")
                ):
                    listeners.append(process)
        if not listeners:
            raise RuntimeError(f"no process of {self.name} listens on {self.port}")
        return listeners[-1] if self.serves_from_child else listeners[0]

    def stop(self, timeout: float = 20.0) -> None:
        """SIGTERM the started process, wait, then SIGKILL whatever of its tree is left, each by PID."""
        if self.proc is None:
            return
        leftovers = self.tree()
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)
        for process in leftovers[1:]:
            with contextlib.suppress(psutil.Error):
                process.wait(timeout=5)
            with contextlib.suppress(psutil.Error):
                if process.is_running() and process.status() != psutil.STATUS_ZOMBIE:
                    process.kill()
                    process.wait(timeout=5)
        self.proc = None


def ours(workdir: Path) -> Target:
    return Target(
        "ours",
        [sys.executable, "-m", "fluxlit", "serve", APP_TARGET, "--port", "{port}",
         "--state-file", str(workdir / "ours-state.json")],
        "/api/readyz",
        workdir,
    )  # fmt: skip


def reference(workdir: Path) -> Target:
    fluxlit_cli = str(REF_VENV / "bin" / "fluxlit")
    return Target(
        "reference",
        [fluxlit_cli, "run", REF_APP_TARGET, "--host", "127.0.0.1", "--port", "{port}", "--no-pidfile"],
        "/api/readyz",
        workdir,
        cwd=APPS,
        env={"PATH": f"{REF_VENV / 'bin'}:{os.environ.get('PATH', '')}", "VIRTUAL_ENV": str(REF_VENV)},
    )


def streamlit_direct(workdir: Path) -> Target:
    """Plain Streamlit on the same page; loopback and no file watcher, as FluxLit runs its child."""
    return Target(
        "streamlit",
        [sys.executable, "-m", "streamlit", "run", str(APPS / "streamlit_page.py"), "--server.port", "{port}",
         "--server.address", "127.0.0.1", "--server.headless", "true", "--browser.gatherUsageStats", "false",
         "--server.fileWatcherType", "none"],
        "/_stcore/health",
        workdir,
    )  # fmt: skip


def plain_fastapi(workdir: Path) -> Target:
    """The same routes on FastAPI alone, on hypercorn with uvloop (ours runs its gateway on uvloop too)."""
    return Target(
        "fastapi",
        [sys.executable, "-m", "hypercorn", "--bind", "127.0.0.1:{port}", "--worker-class", "uvloop",
         "plain_api:app"],
        "/api/sync",
        workdir,
        cwd=APPS,
        serves_from_child=True,
    )  # fmt: skip


class NginxTarget:
    """Debian's nginx with deploy/nginx/fluxlit-root.conf rendered in front of a running Streamlit."""

    name = "nginx"

    def __init__(self, workdir: Path, upstream: Target) -> None:
        self.nginx = Nginx(workdir, "fluxlit-root.conf", upstream.port)
        self.port = self.nginx.port
        self.base = self.nginx.base

    def start(self) -> NginxTarget:
        self.nginx.start()
        return self

    def gateway(self) -> psutil.Process:
        """The nginx worker (worker_processes 1), which does the proxying."""
        return self.tree()[-1]

    def tree(self) -> list[psutil.Process]:
        assert self.nginx.proc is not None
        with contextlib.suppress(psutil.NoSuchProcess):
            top = psutil.Process(self.nginx.proc.pid)
            return [top, *top.children(recursive=True)]
        return []

    def stop(self) -> None:
        self.nginx.stop()


class StockNginx(NginxTarget):
    """nginx with a minimal reverse-proxy config: keep-alive upstream, default buffering, WebSocket upgrade."""

    name = "nginx-stock"

    def __init__(self, workdir: Path, upstream: Target) -> None:
        self.dir = workdir / "nginx-stock"
        self.dir.mkdir()
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log = self.dir / "error.log"
        temp = "".join(f"  {name}_temp_path {self.dir / name};\n" for name in ("proxy", "fastcgi", "uwsgi", "scgi"))
        (self.dir / "nginx.conf").write_text(
            "worker_processes 1;\nuser root;\n"
            f"pid {self.dir}/nginx.pid;\nerror_log {self.log} warn;\n"
            "events { worker_connections 256; }\nhttp {\n  access_log off;\n"
            f"{temp}  client_body_temp_path {self.dir / 'body'};\n"
            "  map $http_upgrade $connection_upgrade { default upgrade; '' ''; }\n"
            f"  upstream streamlit {{ server 127.0.0.1:{upstream.port}; keepalive 32; }}\n"
            f"  server {{\n    listen 127.0.0.1:{self.port};\n    location / {{\n"
            "      proxy_pass http://streamlit;\n      proxy_http_version 1.1;\n"
            "      proxy_set_header Host $http_host;\n      proxy_set_header Upgrade $http_upgrade;\n"
            "      proxy_set_header Connection $connection_upgrade;\n    }\n  }\n}\n"
        )
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> StockNginx:
        with (self.dir / "stderr.log").open("ab") as err:
            self.proc = subprocess.Popen(
                ["nginx", "-p", str(self.dir), "-c", str(self.dir / "nginx.conf"), "-g", "daemon off;"],
                stdout=err, stderr=err, stdin=subprocess.DEVNULL,
            )  # fmt: skip
        deadline = time.monotonic() + 20
        while True:
            try:
                if httpx.get(self.base + "/_stcore/health", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise RuntimeError(f"nginx-stock did not start:\n{(self.dir / 'stderr.log').read_text()}")
            time.sleep(0.1)

    def tree(self) -> list[psutil.Process]:
        assert self.proc is not None
        with contextlib.suppress(psutil.NoSuchProcess):
            top = psutil.Process(self.proc.pid)
            return [top, *top.children(recursive=True)]
        return []

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)


def versions() -> dict[str, str]:
    """Versions of everything in the figures, each asked of the environment that runs it."""
    from importlib.metadata import version

    def run(argv: list[str]) -> str:
        try:
            done = subprocess.run(argv, capture_output=True, text=True, timeout=60)
        except OSError:
            return "?"
        return (done.stdout + done.stderr).strip().splitlines()[0] if (done.stdout + done.stderr).strip() else "?"

    ref_python = str(REF_VENV / "bin" / "python")
    ask = "import importlib.metadata as m; print(*(m.version(n) for n in ('fluxlit', 'uvicorn', 'fastapi')))"
    ref = run([ref_python, "-I", "-c", ask])
    return {
        "ours (fluxlit)": version("fluxlit"),
        "reference (fluxlit, uvicorn, fastapi)": ref,
        "streamlit": version("streamlit"),
        "fastapi": version("fastapi"),
        "hypercorn": version("hypercorn"),
        "uvloop": version("uvloop"),
        "python": sys.version.split()[0],
        "nginx": run(["nginx", "-v"]).rpartition("nginx/")[2],
        "wrk": run(["wrk", "-v"]).split(" [")[0].removeprefix("wrk "),
        "chromium": run(["/usr/bin/chromium", "--version"]),
    }
