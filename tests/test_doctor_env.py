"""doctor's environment checks on machines unlike this one: other Python and dependency versions, busy or
unusable binds."""

from __future__ import annotations

import socket
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from fluxlit.doctor import env_checks as doctor_env
from fluxlit.doctor.env_checks import (
    check_dependencies,
    check_port,
    check_python,
    version_tuple,
)
from fluxlit.doctor.model import DoctorContext, Status


def ctx(tmp_path: Path, url: str | None = None, **env: str) -> DoctorContext:
    return DoctorContext(url=url, cwd=tmp_path, env=env)


@pytest.mark.parametrize(
    ("text", "numbers"),
    [("1.67.0", (1, 67, 0)), ("1.67.0rc1", (1, 67, 0)), ("2.0b3.1", (2, 0)), ("1.x.2", (1,)), ("dev", ())],
)
def test_version_tuple_keeps_the_leading_numeric_release(text: str, numbers: tuple[int, ...]) -> None:
    assert version_tuple(text) == numbers


def test_a_python_older_than_supported_fails(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(doctor_env, "PYTHON_RANGE", ((sys.version_info[0] + 1, 0), (sys.version_info[0] + 1, 9)))
    check = check_python(ctx(tmp_path))
    assert (check.status, check.fix) == (Status.FAIL, "use Python 3.10 or newer")


def test_a_python_newer_than_tested_only_warns(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(doctor_env, "PYTHON_RANGE", ((3, 0), (3, 1)))
    check = check_python(ctx(tmp_path))
    assert check.status is Status.WARN
    assert "is newer than the newest tested (3.1)" in check.detail


def test_missing_and_too_old_dependencies_fail_with_the_pins_to_install(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    supported = {"no-such-distribution-for-doctor": ("1", "2"), "h11": ("999", "1000")}
    monkeypatch.setattr(doctor_env, "SUPPORTED_VERSIONS", supported)
    check = check_dependencies(ctx(tmp_path))
    assert check.status is Status.FAIL
    assert check.detail.startswith("no-such-distribution-for-doctor not installed; h11 ")
    assert "(need >=999)" in check.detail
    assert check.fix == "pip install 'no-such-distribution-for-doctor>=1,<2' 'h11>=999,<1000'"


def test_dependencies_newer_than_tested_only_warn(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(doctor_env, "SUPPORTED_VERSIONS", {"h11": ("0.1", "0.2")})
    check = check_dependencies(ctx(tmp_path))
    assert check.status is Status.WARN
    assert check.detail.startswith("newer than tested: h11 ")
    assert "(tested <0.2)" in check.detail


def test_a_unix_bind_needs_a_writable_directory(tmp_path: Path) -> None:
    ok = check_port(ctx(tmp_path, FLUXLIT_BIND=f"unix:{tmp_path}/app.sock"))
    assert (ok.status, ok.detail) == (Status.PASS, f"unix:{tmp_path}/app.sock free")
    missing = tmp_path / "no-such-dir"
    bad = check_port(ctx(tmp_path, FLUXLIT_BIND=f"unix:{missing}/app.sock"))
    assert bad.status is Status.FAIL
    assert bad.detail == f"cannot listen on unix:{missing}/app.sock: directory {missing} is not writable"
    assert bad.fix == "use a port above 1023, or grant CAP_NET_BIND_SERVICE"


def test_an_address_of_another_machine_says_to_use_one_of_this_one(tmp_path: Path) -> None:
    check = check_port(ctx(tmp_path, FLUXLIT_BIND="192.0.2.1:8000"))  # TEST-NET-1: never a local address
    assert check.status is Status.FAIL
    assert check.fix == "use an address of this machine (0.0.0.0 listens on all)"


def test_other_bind_errors_suggest_another_address(tmp_path: Path) -> None:
    check = check_port(ctx(tmp_path, FLUXLIT_BIND="[fe80::1]:8000"))  # link-local without a scope: EINVAL
    assert check.status is Status.FAIL
    assert check.fix == "choose another --host/--port or --bind"


@pytest.fixture
def busy_port() -> Iterator[int]:
    listener = socket.create_server(("127.0.0.1", 0))
    yield listener.getsockname()[1]
    listener.close()


def test_a_busy_port_is_expected_when_it_is_the_instance_at_url(tmp_path: Path, busy_port: int) -> None:
    bind = f"127.0.0.1:{busy_port}"
    same = check_port(ctx(tmp_path, f"http://localhost:{busy_port}/", FLUXLIT_BIND=bind))
    assert (same.status, same.detail) == (Status.PASS, f"{bind} in use by the instance at --url")
    other = check_port(ctx(tmp_path, "https://example.com/app", FLUXLIT_BIND=bind))
    assert (other.status, other.detail) == (
        Status.PASS,
        f"{bind} in use (expected if the instance checked with --url runs here)",
    )
