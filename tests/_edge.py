"""Real nginx and Caddy on loopback in front of a live `fluxlit serve`, built from the configs in deploy/."""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import httpx

from tests._certs import self_signed_certificate
from tests._live import free_port

DEPLOY = Path(__file__).resolve().parent.parent / "deploy"

# The nginx recipes run for real in front of `fluxlit serve`: (site file, serve flags, public prefix). The Docker
# smoke kit (deploy/proxy-smoke) mounts exactly these files, with the same flags (tests/test_deploy.py checks it).
NGINX_SITES: list[tuple[str, tuple[str, ...], str]] = [
    ("fluxlit-root.conf", (), ""),
    ("fluxlit-strip-prefix.conf", ("--root-path", "/apps/my-app"), "/apps/my-app"),
    ("fluxlit-full-path.conf", ("--root-path", "/apps/my-app"), "/apps/my-app"),
    ("fluxlit-tls.conf", (), ""),
]


def _wait_listening(port: int, proc: subprocess.Popen[bytes], log: Path, scheme: str = "http") -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"edge proxy exited with {proc.returncode}:\n{log.read_text(errors='replace')}")
        try:
            httpx.get(f"{scheme}://127.0.0.1:{port}/", timeout=1, verify=False)
            return
        except httpx.HTTPError:
            time.sleep(0.1)
    raise AssertionError(f"edge proxy not listening on {port}:\n{log.read_text(errors='replace')}")


def _stop(proc: subprocess.Popen[bytes] | None) -> None:
    """SIGTERM, then SIGKILL after 10 s: edge proxies are stopped by the PID we started."""
    if proc is not None and proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


class Nginx:
    """nginx in the foreground with a private prefix; the deploy/ site config rendered for test ports."""

    def __init__(
        self,
        workdir: Path,
        site: str,
        upstream_port: int,
        *,
        body_limit: str = "200m",
        site_replacements: dict[str, str] | None = None,
        params_replacements: dict[str, str] | None = None,
    ) -> None:
        self.dir = workdir / "nginx"
        self.dir.mkdir()
        self.port = free_port()
        self.log = self.dir / "error.log"
        http_conf = (
            (DEPLOY / "nginx" / "fluxlit-http.conf").read_text().replace("127.0.0.1:8000", f"127.0.0.1:{upstream_port}")
        )
        params = (DEPLOY / "nginx" / "fluxlit-proxy-params.conf").read_text()
        params = params.replace("client_max_body_size 200m;", f"client_max_body_size {body_limit};")
        for old, new in (params_replacements or {}).items():
            assert old in params, f"{old!r} is not in fluxlit-proxy-params.conf"
            params = params.replace(old, new)
        site_text = (DEPLOY / "nginx" / site).read_text()
        for old, new in (site_replacements or {}).items():
            site_text = site_text.replace(old, new)
        self.scheme = "https" if "listen 443 ssl" in site_text else "http"
        if self.scheme == "https":
            site_text = site_text.replace("listen 443 ssl", f"listen 127.0.0.1:{self.port} ssl")
            site_text = site_text.replace("listen 80;", f"listen 127.0.0.1:{free_port()};")
        else:
            site_text = site_text.replace("listen 80;", f"listen 127.0.0.1:{self.port};")
        if self.scheme == "https":
            self._make_cert()
            site_text = site_text.replace("/etc/ssl/fluxlit/", f"{self.dir}/")
        (self.dir / "fluxlit-http.conf").write_text(http_conf)
        (self.dir / "fluxlit-proxy-params.conf").write_text(params)
        (self.dir / "site.conf").write_text(site_text)
        temp = {name: self.dir / name for name in ("body", "proxy", "fastcgi", "uwsgi", "scgi")}
        (self.dir / "nginx.conf").write_text(
            "worker_processes 1;\nuser root;\n"
            f"pid {self.dir}/nginx.pid;\nerror_log {self.log} warn;\n"
            "events { worker_connections 256; }\nhttp {\n  access_log off;\n"
            + "".join(f"  {name}_temp_path {path};\n" for name, path in temp.items() if name != "body")
            + f"  client_body_temp_path {temp['body']};\n"
            "  include fluxlit-http.conf;\n  include site.conf;\n}\n"
        )
        self.proc: subprocess.Popen[bytes] | None = None
        self.base = f"{self.scheme}://127.0.0.1:{self.port}"

    def _make_cert(self) -> None:
        self_signed_certificate(self.dir, "fullchain.pem", "privkey.pem")

    def start(self) -> Nginx:
        with (self.dir / "stderr.log").open("ab") as err:
            self.proc = subprocess.Popen(
                [shutil.which("nginx") or "nginx", "-p", str(self.dir), "-c", str(self.dir / "nginx.conf"),
                 "-g", "daemon off;"],
                stdout=err, stderr=err, stdin=subprocess.DEVNULL,
            )  # fmt: skip
        _wait_listening(self.port, self.proc, self.dir / "stderr.log", self.scheme)
        return self

    def stop(self) -> None:
        _stop(self.proc)


class Caddy:
    """Caddy in the foreground with deploy/caddy/Caddyfile rendered for test ports."""

    def __init__(self, workdir: Path, upstream_port: int) -> None:
        self.dir = workdir / "caddy"
        self.dir.mkdir()
        self.port = free_port()
        text = (DEPLOY / "caddy" / "Caddyfile").read_text()
        text = text.replace(":80 {", "{\n\tadmin off\n\tauto_https off\n}\n\n" + f"http://127.0.0.1:{self.port} {{", 1)
        text = text.replace("127.0.0.1:8000", f"127.0.0.1:{upstream_port}")
        (self.dir / "Caddyfile").write_text(text)
        self.proc: subprocess.Popen[bytes] | None = None
        self.base = f"http://127.0.0.1:{self.port}"

    def start(self) -> Caddy:
        env = {
            "HOME": str(self.dir),
            "XDG_DATA_HOME": str(self.dir),
            "XDG_CONFIG_HOME": str(self.dir),
            "PATH": "/usr/bin:/bin",
        }
        with (self.dir / "stderr.log").open("ab") as err:
            self.proc = subprocess.Popen(
                [shutil.which("caddy") or "caddy", "run", "--adapter", "caddyfile",
                 "--config", str(self.dir / "Caddyfile")],
                stdout=err, stderr=err, stdin=subprocess.DEVNULL, env=env,
            )  # fmt: skip
        _wait_listening(self.port, self.proc, self.dir / "stderr.log")
        return self

    def stop(self) -> None:
        _stop(self.proc)
