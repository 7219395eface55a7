"""Settings: one precedence (CLI > env > fluxlit.toml > app > default), every value checked, every source named."""

from __future__ import annotations

from pathlib import Path

import pytest

from fluxlit.config.parsers import parse_str
from fluxlit.config.setting_spec import setting_field
from fluxlit.config.settings import SETTING_SPECS, Settings
from fluxlit.config.sources import load_settings
from fluxlit.errors import ConfigError

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


def refusal(tmp_path: Path, env: dict[str, str]) -> str:
    """The message load_settings refuses `env` with."""
    with pytest.raises(ConfigError) as info:
        load_settings(env=env, project_dir=tmp_path)
    return str(info.value)


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
        # the hardening settings
        (
            {"FLUXLIT_GATEWAY_MAX_URL_BYTES": "0"},
            "FLUXLIT_GATEWAY_MAX_URL_BYTES='0' is not valid: expected a whole number",
        ),
        ({"FLUXLIT_GATEWAY_MAX_HEADER_BYTES": "64k"}, "expected a whole number more than 0, e.g. 65536"),
        ({"FLUXLIT_GATEWAY_ALLOW_ENCODED_SLASHES": "sometimes"}, "one of 1/true/yes/on or 0/false/no/off"),
        ({"FLUXLIT_GATEWAY_BODY_MIN_RATE_BYTES_S": "-1"}, "a whole number 0 or more, e.g. 1024"),
        ({"FLUXLIT_GATEWAY_BODY_MIN_RATE_WINDOW_S": "0"}, "a number more than 0, e.g. 10"),
        ({"FLUXLIT_GATEWAY_PROMETHEUS_METRICS_ALLOW": "10.0.0.0/8,prom"}, "'prom' is not an IP address or CIDR"),
        ({"FLUXLIT_GATEWAY_PROMETHEUS_METRICS_BIND": "9100"}, "one HOST:PORT with an explicit port, e.g. 0.0.0.0:9100"),
        ({"FLUXLIT_GATEWAY_PROMETHEUS_METRICS_BIND": "0.0.0.0:0"}, "one HOST:PORT with an explicit port"),
        ({"FLUXLIT_GATEWAY_PROMETHEUS_METRICS_BIND": "unix:/run/m.sock"}, "one HOST:PORT with an explicit port"),
        (
            {"FLUXLIT_GATEWAY_PROMETHEUS_METRICS_BIND": "0.0.0.0:8000"},
            "FLUXLIT_GATEWAY_PROMETHEUS_METRICS_BIND='0.0.0.0:8000' uses the public port 8000: choose another",
        ),
        (
            {"FLUXLIT_BIND": "0.0.0.0:9000,unix:/run/a.sock", "FLUXLIT_GATEWAY_PROMETHEUS_METRICS_BIND": "[::]:9000"},
            "uses the public port 9000",
        ),
        (
            {
                "FLUXLIT_GATEWAY_PROMETHEUS_METRICS_BIND": "0.0.0.0:9100",
                "FLUXLIT_ENABLE_GATEWAY_PROMETHEUS_METRICS": "0",
            },
            "is set but metrics are off (--no-metrics): drop one of them",
        ),
    ],
)
def test_bad_values_fail_naming_variable_value_and_expected_form(
    tmp_path: Path, env: dict[str, str], message: str
) -> None:
    assert message in refusal(tmp_path, env)


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


# WebSockets (issues 22 and 15): keepalive pings on the browser leg and the memory reassembly may hold.


@pytest.mark.parametrize(
    ("env", "name", "value"),
    [
        ({}, "ws_ping_interval_s", 20.0),
        ({"FLUXLIT_WS_PING_INTERVAL_S": "5"}, "ws_ping_interval_s", 5.0),
        ({"FLUXLIT_WS_PING_INTERVAL_S": "0"}, "ws_ping_interval_s", 0.0),  # off
        ({"FLUXLIT_WS_PING_INTERVAL_S": " 2.5 "}, "ws_ping_interval_s", 2.5),
        ({}, "ws_ping_timeout_s", 20.0),
        ({"FLUXLIT_WS_PING_TIMEOUT_S": "7"}, "ws_ping_timeout_s", 7.0),
        ({}, "max_ws_client_message_bytes", 4 * 1024 * 1024),
        ({"FLUXLIT_MAX_WS_CLIENT_MESSAGE_BYTES": "1048576"}, "max_ws_client_message_bytes", 1048576),
        ({}, "ws_reassembly_budget_bytes", 0),  # from memory
        ({"FLUXLIT_WS_REASSEMBLY_BUDGET_BYTES": "268435456"}, "ws_reassembly_budget_bytes", 268435456),
    ],
)
def test_websocket_settings_parse(tmp_path: Path, env: dict[str, str], name: str, value: float) -> None:
    assert getattr(load_settings(env=env, project_dir=tmp_path).settings, name) == value


@pytest.mark.parametrize(
    ("variable", "text", "message"),
    [
        ("FLUXLIT_WS_PING_INTERVAL_S", "-1", "expected a number 0 or more, e.g. 20"),
        ("FLUXLIT_WS_PING_INTERVAL_S", "often", "expected a number 0 or more, e.g. 20"),
        ("FLUXLIT_WS_PING_INTERVAL_S", "nan", "expected a number 0 or more, e.g. 20"),
        ("FLUXLIT_WS_PING_TIMEOUT_S", "0", "expected a number more than 0, e.g. 20"),
        ("FLUXLIT_MAX_WS_CLIENT_MESSAGE_BYTES", "0", "expected a whole number more than 0, e.g. 4194304"),
        ("FLUXLIT_MAX_WS_CLIENT_MESSAGE_BYTES", "4MiB", "expected a whole number more than 0, e.g. 4194304"),
        ("FLUXLIT_WS_REASSEMBLY_BUDGET_BYTES", "-1", "expected a whole number 0 or more"),
    ],
)
def test_bad_websocket_settings_name_the_variable_the_value_and_the_expected_form(
    tmp_path: Path, variable: str, text: str, message: str
) -> None:
    assert refusal(tmp_path, {variable: text}) == f"{variable}={text!r} is not valid: {message}"


def test_the_ping_flags_beat_the_environment_and_say_where_a_bad_value_came_from(tmp_path: Path) -> None:
    env = {"FLUXLIT_WS_PING_INTERVAL_S": "5", "FLUXLIT_WS_PING_TIMEOUT_S": "6"}
    resolved = load_settings({"ws_ping_interval_s": 0.0, "ws_ping_timeout_s": 3.0}, env=env, project_dir=tmp_path)
    assert (resolved.settings.ws_ping_interval_s, resolved.settings.ws_ping_timeout_s) == (0.0, 3.0)
    assert resolved.sources["ws_ping_interval_s"].startswith("cli")
    with pytest.raises(ConfigError, match=r"--ws-ping-timeout=0\.0 is not valid: expected a number more than 0"):
        load_settings({"ws_ping_timeout_s": 0.0}, env={}, project_dir=tmp_path)


# --- gateway hardening (issue 15): request limits, body pace, metrics access ---


def test_hardening_defaults(tmp_path: Path) -> None:
    settings = load_settings(env={}, project_dir=tmp_path).settings
    assert (settings.max_url_bytes, settings.max_header_bytes, settings.allow_encoded_slashes) == (8192, 65536, False)
    assert (settings.body_min_rate_bytes_s, settings.body_min_rate_window_s) == (1024, 10.0)
    assert (settings.metrics_allow, settings.metrics_bind) == ("", "")


def test_metrics_access_comes_from_flags_env_and_file(tmp_path: Path) -> None:
    resolved = load_settings(
        {"metrics_allow": "10.0.0.0/8", "metrics_bind": None},
        env={"FLUXLIT_GATEWAY_PROMETHEUS_METRICS_BIND": "0.0.0.0:9100"},
        project_dir=tmp_path,
    )
    assert (resolved.settings.metrics_allow, resolved.sources["metrics_allow"]) == ("10.0.0.0/8", "cli")
    assert (resolved.settings.metrics_bind, resolved.sources["metrics_bind"]) == ("0.0.0.0:9100", "env")
    (tmp_path / "fluxlit.toml").write_text("allow_encoded_slashes = true\nmax_url_bytes = 4096\n")
    from_file = load_settings(env={}, project_dir=tmp_path).settings
    assert (from_file.allow_encoded_slashes, from_file.max_url_bytes) == (True, 4096)


def test_a_mutable_setting_default_is_refused() -> None:
    with pytest.raises(TypeError, match="settings defaults must be immutable"):
        setting_field([], "FLUXLIT_EXAMPLE", None, "an example", parse_str)


def test_an_unreadable_project_file_is_a_config_error(tmp_path: Path) -> None:
    # Reading /proc/self/mem from offset 0 fails with EIO for every user, root included.
    (tmp_path / "fluxlit.toml").symlink_to("/proc/self/mem")
    with pytest.raises(ConfigError, match=r"fluxlit\.toml cannot be read \(Input/output error\)"):
        load_settings(project_dir=tmp_path, env={})


def test_fluxlit_013_project_file_keys_load_unchanged(tmp_path: Path) -> None:
    (tmp_path / "fluxlit.toml").write_text(
        'target = "shop:app"\ngateway_host = "0.0.0.0"\ngateway_port = 9000\ndebug = true\n'
    )
    resolved = load_settings(env={}, project_dir=tmp_path)
    settings = resolved.settings
    assert (settings.target, settings.host, settings.port, settings.log_level) == ("shop:app", "0.0.0.0", 9000, "debug")
    assert resolved.sources["port"] == f"file:{tmp_path / 'fluxlit.toml'}"


def test_a_key_and_its_fluxlit_013_alias_together_are_an_error(tmp_path: Path) -> None:
    (tmp_path / "fluxlit.toml").write_text("port = 9000\ngateway_port = 9100\n")
    with pytest.raises(ConfigError, match="gateway_port and port are the same setting: keep one"):
        load_settings(env={}, project_dir=tmp_path)


@pytest.mark.parametrize(
    ("cli", "env", "level"),
    [
        ({"debug": True}, {}, "debug"),
        ({}, {"FLUXLIT_DEBUG": "1"}, "debug"),
        ({"debug": True, "log_level": "warning"}, {}, "warning"),
    ],
)
def test_debug_means_debug_logs_unless_a_level_is_given(
    cli: dict[str, object], env: dict[str, str], level: str, tmp_path: Path
) -> None:
    resolved = load_settings(cli, env=env, project_dir=tmp_path)
    assert resolved.settings.log_level == level
    assert resolved.sources["log_level"] == ("cli" if "log_level" in cli else resolved.sources["debug"])
