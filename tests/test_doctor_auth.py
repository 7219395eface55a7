"""`fluxlit doctor` on authentication and the body deadline: each risky set-up gets its verdict and a fix."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

import fluxlit.auth
from fluxlit.doctor.auth_checks import _jwt_import_failure, find_authenticators
from fluxlit.doctor.model import Check, DoctorContext, Status
from fluxlit.doctor.registry import doctor
from fluxlit.errors import TargetError

APP_PREFIX = "doctor_auth_case_"
SECRET = "s" * 24 + "0123456789abcdef"  # 40 bytes: enough for HS256
AUTH_APP = """
from typing import Annotated
from fastapi import APIRouter, Depends, FastAPI
from fluxlit import FluxLit
from fluxlit.auth import Principal, RequireRoles, TrustedHeaderAuth, JWTBearer
app = FluxLit()
{setup}
"""


@pytest.fixture(autouse=True)
def isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Path]:
    monkeypatch.chdir(tmp_path)
    for name in [n for n in os.environ if n.startswith("FLUXLIT_")]:
        monkeypatch.delenv(name)
    monkeypatch.setattr(sys, "path", list(sys.path))
    yield tmp_path
    for name in [n for n in sys.modules if n.startswith(APP_PREFIX)]:
        del sys.modules[name]


def check(tmp_path: Path, setup: str, name: str, env: dict[str, str] | None = None, source: str = AUTH_APP) -> Check:
    """Write an app whose body is `setup`, then run the doctor check `name` on it."""
    module = f"{APP_PREFIX}{abs(hash((setup, source))) % 10**8}"
    (tmp_path / f"{module}.py").write_text(source.format(setup=setup))
    ctx = DoctorContext(target_arg=f"{module}.py:app", cwd=tmp_path, env={"FLUXLIT_GATEWAY_PORT": "0", **(env or {})})
    from fluxlit.doctor.registry import OFFLINE_CHECKS

    function = next(fn for fn in OFFLINE_CHECKS if getattr(fn, "__name__", "") == f"check_{name}")
    return function(ctx)


def forward_route(trusted: str) -> str:
    return f"""
auth = TrustedHeaderAuth(trusted_proxies={trusted!r})
@app.api.get("/me")
def me(user: Annotated[Principal, Depends(auth)]) -> str:
    return user.subject
"""


def jwt_route(arguments: str) -> str:
    return f"""
auth = JWTBearer({arguments})
@app.api.get("/me")
def me(user: Annotated[Principal, Depends(auth)]) -> str:
    return user.subject
"""


# --- forward auth ---


@pytest.mark.parametrize("trusted", ["*", "0.0.0.0/0", "10.0.0.5,::/0"])
def test_forward_auth_trusting_every_address_fails(isolated: Path, trusted: str) -> None:
    result = check(isolated, forward_route(trusted), "forward_auth")
    assert result.status is Status.FAIL
    assert "believes X-Forwarded-User from any address" in result.detail
    assert "/me" in result.detail
    assert "trusted_proxies=" in result.fix


def test_forward_auth_proxy_missing_from_forwarded_allow_ips_warns_with_the_addition(isolated: Path) -> None:
    result = check(isolated, forward_route("10.0.0.5"), "forward_auth")
    assert result.status is Status.WARN
    assert "trusts 10.0.0.5/32 but FLUXLIT_FORWARDED_ALLOW_IPS='127.0.0.1,::1' does not" in result.detail
    assert result.fix == "add 10.0.0.5/32 to FLUXLIT_FORWARDED_ALLOW_IPS"


def test_forwarded_allow_ips_star_behind_forward_auth_warns(isolated: Path) -> None:
    result = check(isolated, forward_route("10.0.0.5"), "forward_auth", {"FLUXLIT_FORWARDED_ALLOW_IPS": "*"})
    assert result.status is Status.WARN
    assert "FLUXLIT_FORWARDED_ALLOW_IPS='*' believes X-Forwarded-For/Proto from any peer" in result.detail
    assert "forward-auth proxy's address" in result.fix


def test_forward_auth_from_a_proxy_inside_forwarded_allow_ips_passes(isolated: Path) -> None:
    result = check(isolated, forward_route("10.0.0.5"), "forward_auth", {"FLUXLIT_FORWARDED_ALLOW_IPS": "10.0.0.0/24"})
    assert result.status is Status.PASS
    assert result.detail == "TrustedHeaderAuth on /me believes only 10.0.0.5/32"


def test_forward_auth_is_found_inside_require_roles_routers_and_mounted_apps(isolated: Path) -> None:
    setup = """
auth = TrustedHeaderAuth(trusted_proxies="10.0.0.5")
router = APIRouter(prefix="/admin", dependencies=[Depends(RequireRoles(auth, "admin"))])
@router.get("/users")
def users() -> list[str]:
    return []
app.api.include_router(router)
sub = FastAPI()
@sub.get("/report")
def report(user: Annotated[Principal, Depends(RequireRoles(auth, "ops"))]) -> str:
    return ""
app.api.mount("/ops", sub)
"""
    result = check(isolated, setup, "forward_auth", {"FLUXLIT_FORWARDED_ALLOW_IPS": "10.0.0.5"})
    assert result.status is Status.PASS
    assert result.detail == "TrustedHeaderAuth on /admin/users, /ops/report believes only 10.0.0.5/32"


def test_forward_auth_in_a_plain_fastapi_target_is_found(isolated: Path) -> None:
    source = AUTH_APP.replace("app = FluxLit()", "app = FastAPI()")
    result = check(isolated, forward_route("10.9.9.9").replace("app.api.", "app."), "forward_auth", source=source)
    assert result.status is Status.WARN
    assert "trusts 10.9.9.9/32" in result.detail


def test_forward_auth_with_invalid_settings_is_not_checked(isolated: Path) -> None:
    result = check(isolated, forward_route("10.0.0.5"), "forward_auth", {"FLUXLIT_API_MOUNT_PATH": "api"})
    assert (result.status, result.detail) == (Status.WARN, "not checked: the settings are invalid")


def test_many_routes_are_summarised(isolated: Path) -> None:
    setup = 'auth = TrustedHeaderAuth(trusted_proxies="*")\n' + "".join(
        f"@app.api.get('/r{i}', dependencies=[Depends(auth)])\ndef r{i}() -> None: ...\n" for i in range(5)
    )
    result = check(isolated, setup, "forward_auth")
    assert "on /r0, /r1, /r2 and 2 more believes" in result.detail


# --- JWT bearer ---


def test_a_jwt_bearer_with_defaults_passes_and_says_what_it_checks(isolated: Path) -> None:
    result = check(isolated, jwt_route(f"{SECRET!r}, issuer='https://id.example'"), "jwt_auth")
    assert result.status is Status.PASS
    assert result.detail == "JWTBearer(HS256) on /me (issuer https://id.example, audience not checked)"


@pytest.mark.parametrize(
    ("arguments", "detail", "fix"),
    [
        (f"{SECRET!r}, require=['sub']", "does not require 'exp': a token without an expiry", "keep 'exp'"),
        (f"{SECRET!r}, leeway=3600", "allows leeway=3600 s: expired tokens stay usable", "at most 300 s"),
    ],
    ids=["no-exp", "huge-leeway"],
)
def test_risky_jwt_bearer_options_warn(isolated: Path, arguments: str, detail: str, fix: str) -> None:
    result = check(isolated, jwt_route(arguments), "jwt_auth")
    assert result.status is Status.WARN
    assert detail in result.detail
    assert fix in result.fix


def test_several_jwt_problems_are_counted(isolated: Path) -> None:
    result = check(isolated, jwt_route(f"{SECRET!r}, require=['sub'], leeway=3600"), "jwt_auth")
    assert result.detail.endswith("(and 1 more issue(s))")


@pytest.fixture(scope="module")
def public_pem() -> str:
    rsa = pytest.importorskip("cryptography.hazmat.primitives.asymmetric.rsa")
    from cryptography.hazmat.primitives import serialization

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key()
    return str(key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode())


def test_a_public_key_verifier_without_audience_warns(isolated: Path, public_pem: str) -> None:
    result = check(isolated, jwt_route(f"{public_pem!r}, algorithms=['RS256']"), "jwt_auth")
    assert result.status is Status.WARN
    assert "checks no audience: any token its issuer signed, for any application, is accepted" in result.detail
    assert "audience=" in result.fix


def test_a_public_key_verifier_with_audience_passes(isolated: Path, public_pem: str) -> None:
    result = check(isolated, jwt_route(f"{public_pem!r}, algorithms=['RS256'], audience='my-api'"), "jwt_auth")
    assert result.status is Status.PASS
    assert "audience my-api" in result.detail


def test_a_short_secret_fails_the_import_and_jwt_auth_names_it(isolated: Path) -> None:
    result = check(isolated, jwt_route("'too-short'"), "jwt_auth")
    assert result.status is Status.FAIL
    assert "JWTBearer secret is 9 bytes; HS256 needs at least 32" in result.detail
    assert "correct the JWTBearer(...) arguments" in result.fix


def test_an_unusable_algorithm_names_the_auth_extra(isolated: Path) -> None:
    result = check(isolated, jwt_route(f"{SECRET!r}, algorithms=['XS999']"), "jwt_auth")
    assert result.status is Status.FAIL
    assert "not usable" in result.detail
    assert "pip install 'fluxlit[auth]'" in result.fix


def test_missing_pyjwt_fails_jwt_auth_with_the_install_command(isolated: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "jwt", None)
    monkeypatch.delitem(sys.modules, "fluxlit.auth.jwt_bearer", raising=False)
    monkeypatch.delattr(fluxlit.auth, "JWTBearer", raising=False)
    result = check(isolated, jwt_route(repr(SECRET)), "jwt_auth")
    assert result.status is Status.FAIL
    assert "JWTBearer needs PyJWT, which is not installed" in result.detail
    assert result.fix.startswith("pip install 'fluxlit[auth]'")


def test_an_import_error_of_jwt_itself_counts_as_missing_pyjwt() -> None:
    error = TargetError("target 'x': importing 'x' failed")
    error.__cause__ = ModuleNotFoundError("No module named 'jwt'", name="jwt")
    result = _jwt_import_failure(error)
    assert result is not None
    assert result.status is Status.FAIL


@pytest.mark.parametrize("name", ["forward_auth", "jwt_auth"])
def test_auth_checks_are_not_run_on_a_target_that_does_not_load(isolated: Path, name: str) -> None:
    result = check(isolated, "raise RuntimeError('broken app')", name)
    assert (result.status, result.detail) == (Status.WARN, "not checked: the target did not load")


def test_an_app_without_routes_has_no_authenticators() -> None:
    found = find_authenticators(object())
    assert (found.forward, found.jwt) == ({}, {})


# --- body read timeout ---


@pytest.mark.parametrize(
    ("value", "status", "detail"),
    [
        (None, Status.PASS, "60 s per wait for request body data"),
        ("1", Status.WARN, "FLUXLIT_GATEWAY_BODY_READ_TIMEOUT_S=1 is under 5 s"),
        ("900", Status.WARN, "FLUXLIT_GATEWAY_BODY_READ_TIMEOUT_S=900 is over 300 s"),
    ],
)
def test_body_read_timeout_is_checked_against_slow_uploads_and_stalled_bodies(
    isolated: Path, value: str | None, status: Status, detail: str
) -> None:
    env = {} if value is None else {"FLUXLIT_GATEWAY_BODY_READ_TIMEOUT_S": value}
    result = check(isolated, "", "body_read_timeout", env)
    assert result.status is status
    assert detail in result.detail


def test_body_read_timeout_with_invalid_settings_is_not_checked(isolated: Path) -> None:
    result = check(isolated, "", "body_read_timeout", {"FLUXLIT_GATEWAY_BODY_READ_TIMEOUT_S": "0"})
    assert (result.status, result.detail) == (Status.WARN, "not checked: the settings are invalid")


def test_the_cli_reports_the_auth_checks(isolated: Path) -> None:
    module = f"{APP_PREFIX}cli"
    (isolated / f"{module}.py").write_text(AUTH_APP.format(setup=forward_route("*")))
    result = CliRunner().invoke(doctor, [f"{module}.py:app", "--json"], env={"FLUXLIT_GATEWAY_PORT": "0"})
    report: dict[str, Any] = json.loads(result.output)
    statuses = {c["name"]: c["status"] for c in report["checks"]}
    assert (statuses["forward_auth"], statuses["jwt_auth"], result.exit_code) == ("FAIL", "PASS", 1)


def test_an_app_mounted_inside_itself_is_walked_to_a_bounded_depth() -> None:
    from fastapi import Depends, FastAPI

    from fluxlit.auth import TrustedHeaderAuth

    auth = TrustedHeaderAuth()
    api = FastAPI()
    api.get("/me", dependencies=[Depends(auth)])(lambda: None)
    api.mount("/again", api)
    found = find_authenticators(api)
    [(seen, paths)] = found.forward.values()
    assert seen is auth
    assert "/me" in paths
    assert "/again/again/me" in paths
