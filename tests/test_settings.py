"""Settings: one precedence (CLI > env > fluxlit.toml > app > default), every value checked, every source named."""

from __future__ import annotations

from pathlib import Path

import pytest

from fluxlit.errors import ConfigError
from fluxlit.settings import SETTING_SPECS, Settings
from fluxlit.settings_sources import load_settings

LAYERS = ["cli", "env", "file", "app", "default"]
# One value per layer for a few representative settings of each kind.
CASES = {
    "port": {"cli": 7001, "env": "7002", "file": 7003, "app": 7004, "default": 8000},
    "api_mount_path": {"cli": "/c", "env": "/e", "file": "/f", "app": "/a", "default": "/api"},
    "metrics": {"cli": False, "env": "false", "file": False, "app": False, "default": True},
    "upstream_read_timeout_s": {"cli": 1.5, "env": "2.5", "file": 3.5, "app": 4.5, "default": 300.0},
}


def build(tmp_path: Path, name: str, layers: list[str]) -> tuple[object, str]:
    values = CASES[name]
    cli = {name: values["cli"]} if "cli" in layers else {}
    env = {next(s.env for s in SETTING_SPECS if s.name == name): values["env"]} if "env" in layers else {}
    if "file" in layers:
        literal = str(values["file"]).lower() if isinstance(values["file"], bool) else repr(values["file"])
        (tmp_path / "fluxlit.toml").write_text(f"{name} = {literal.replace(chr(39), chr(34))}\n")
    app = Settings(**{name: values["app"]}) if "app" in layers else None
    resolved = load_settings(cli, env=env, project_dir=tmp_path, app_settings=app)
    return getattr(resolved.settings, name), resolved.sources[name]


@pytest.mark.parametrize("name", sorted(CASES))
@pytest.mark.parametrize("top", range(len(LAYERS)))
def test_each_source_beats_the_next(tmp_path: Path, name: str, top: int) -> None:
    present = LAYERS[top:]
    value, source = build(tmp_path, name, present)
    winner = LAYERS[top]
    expected = CASES[name][winner]
    if winner == "env":
        expected = {"port": 7002, "api_mount_path": "/e", "metrics": False, "upstream_read_timeout_s": 2.5}[name]
    assert value == expected
    assert source.split(":")[0] == winner


def test_pyproject_tool_table_is_read_and_fluxlit_toml_wins_over_it(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text("[tool.fluxlit]\nport = 9001\nroot_path = '/x'\n")
    resolved = load_settings(env={}, project_dir=tmp_path)
    assert (resolved.settings.port, resolved.settings.root_path) == (9001, "/x")
    (tmp_path / "fluxlit.toml").write_text("port = 9002\n")
    resolved = load_settings(env={}, project_dir=tmp_path)
    assert (resolved.settings.port, resolved.settings.root_path) == (9002, "")
    assert resolved.sources["port"] == f"file:{tmp_path / 'fluxlit.toml'}"


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"FLUXLIT_GATEWAY_PORT": "abc"}, "FLUXLIT_GATEWAY_PORT='abc' is not valid: expected a port number"),
        ({"FLUXLIT_GATEWAY_PORT": "70000"}, "FLUXLIT_GATEWAY_PORT='70000'"),
        ({"FLUXLIT_API_MOUNT_PATH": "api/"}, "FLUXLIT_API_MOUNT_PATH='api/' must start with '/': try '/api'"),
        ({"FLUXLIT_ROOT_PATH": "apps"}, "FLUXLIT_ROOT_PATH='apps' must start with '/'"),
        ({"FLUXLIT_ENABLE_GATEWAY_PROMETHEUS_METRICS": "maybe"}, "one of 1/true/yes/on or 0/false/no/off"),
        ({"FLUXLIT_GATEWAY_UPSTREAM_READ_TIMEOUT_S": "0"}, "a number more than 0"),
        ({"FLUXLIT_GATEWAY_UPSTREAM_READ_TIMEOUT_S": "nan"}, "a number more than 0"),
        ({"FLUXLIT_GATEWAY_MAX_PROXY_REQUEST_BODY_BYTES": "-1"}, "a whole number 0 or more"),
        (
            {"FLUXLIT_GATEWAY_UPSTREAM_POOL_IDLE_TIMEOUT_S": "0"},
            "FLUXLIT_GATEWAY_UPSTREAM_POOL_IDLE_TIMEOUT_S='0' is not valid: expected a number more than 0, e.g. 4",
        ),
        (
            {"FLUXLIT_GATEWAY_BODY_READ_TIMEOUT_S": "0"},
            "FLUXLIT_GATEWAY_BODY_READ_TIMEOUT_S='0' is not valid: expected a number more than 0, e.g. 60",
        ),
        ({"FLUXLIT_GATEWAY_BODY_READ_TIMEOUT_S": "-5"}, "FLUXLIT_GATEWAY_BODY_READ_TIMEOUT_S='-5'"),
        ({"FLUXLIT_GATEWAY_BODY_READ_TIMEOUT_S": "soon"}, "expected a number more than 0, e.g. 60"),
        ({"FLUXLIT_ON_CHILD_EXIT": "sometimes"}, "one of restart, exit"),
        ({"FLUXLIT_LOG_LEVEL": "loud"}, "one of critical, error, warning, info, debug"),
        ({"FLUXLIT_BIND": "nohost"}, "'HOST:PORT' or 'unix:PATH'"),
        ({"FLUXLIT_BIND": "unix:"}, "with a path"),
        ({"FLUXLIT_CERTFILE": "c.pem"}, "TLS needs both --certfile and --keyfile"),
        ({"FLUXLIT_ROOT_PATH": "/api"}, "equals the API prefix"),
        ({"FLUXLIT_GATEWAY_PROMETHEUS_METRICS_PATH": "/api/metrics"}, "lies under the API prefix"),
        (
            {"FLUXLIT_RESTART_BACKOFF_INITIAL_S": "60", "FLUXLIT_RESTART_BACKOFF_MAX_S": "1"},
            "is larger than FLUXLIT_RESTART_BACKOFF_MAX_S",
        ),
    ],
)
def test_bad_values_fail_naming_variable_value_and_expected_form(
    tmp_path: Path, env: dict[str, str], message: str
) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(env=env, project_dir=tmp_path)
    assert message in str(info.value)


def test_bad_cli_value_is_reported_with_the_flag(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="--api-prefix='v1' must start with '/'"):
        load_settings({"api_mount_path": "v1"}, env={}, project_dir=tmp_path)


def test_bad_file_value_names_the_file_and_key(tmp_path: Path) -> None:
    (tmp_path / "fluxlit.toml").write_text('port = "x"\n')
    with pytest.raises(ConfigError, match=r"fluxlit.toml: port='x'"):
        load_settings(env={}, project_dir=tmp_path)


def test_invalid_toml_is_an_error_not_ignored(tmp_path: Path) -> None:
    (tmp_path / "fluxlit.toml").write_text("port = = 1\n")
    with pytest.raises(ConfigError, match="is not valid TOML"):
        load_settings(env={}, project_dir=tmp_path)


def test_unknown_file_key_lists_known_keys(tmp_path: Path) -> None:
    (tmp_path / "fluxlit.toml").write_text("prot = 1\n")
    with pytest.raises(ConfigError, match=r"unknown key\(s\) prot; known keys: .*port"):
        load_settings(env={}, project_dir=tmp_path)


def test_settings_in_code_are_checked_like_any_source() -> None:
    with pytest.raises(ConfigError, match="must start with '/'"):
        Settings(api_mount_path="api")
    assert Settings(api_mount_path="/v1/").api_mount_path == "/v1"


def test_settings_are_frozen() -> None:
    with pytest.raises(AttributeError):
        Settings().port = 1  # type: ignore[misc]


def test_every_setting_has_env_help_and_report_row(tmp_path: Path) -> None:
    rows = load_settings(env={}, project_dir=tmp_path).report()
    assert [row["name"] for row in rows] == [spec.name for spec in SETTING_SPECS]
    assert all(row["source"] == "default" for row in rows)
    assert all(spec.env.startswith("FLUXLIT_") and spec.help for spec in SETTING_SPECS)


@pytest.mark.parametrize("bad", ["café", "a b", "a\r\nSet-Cookie: x=1", "x" * 129])
def test_replica_id_must_be_safe_in_a_header(tmp_path: Path, bad: str) -> None:
    with pytest.raises(ConfigError, match="FLUXLIT_REPLICA_ID"):
        load_settings(env={"FLUXLIT_REPLICA_ID": bad}, project_dir=tmp_path)


def test_binds_need_explicit_ports(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="explicit ports in binds"):
        load_settings(env={"FLUXLIT_BIND": "127.0.0.1:0"}, project_dir=tmp_path)


def test_body_read_timeout_defaults_to_60_and_is_read_from_env_file_and_code(tmp_path: Path) -> None:
    assert load_settings(env={}, project_dir=tmp_path).settings.body_read_timeout_s == 60.0
    resolved = load_settings(env={"FLUXLIT_GATEWAY_BODY_READ_TIMEOUT_S": "2.5"}, project_dir=tmp_path)
    assert (resolved.settings.body_read_timeout_s, resolved.sources["body_read_timeout_s"]) == (2.5, "env")
    (tmp_path / "fluxlit.toml").write_text("body_read_timeout_s = 15\n")
    assert load_settings(env={}, project_dir=tmp_path).settings.body_read_timeout_s == 15.0
    with pytest.raises(ConfigError, match="FLUXLIT_GATEWAY_BODY_READ_TIMEOUT_S=0 is not valid"):
        Settings(body_read_timeout_s=0)
