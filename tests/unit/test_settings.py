"""Unit tests of `load_settings`: sources, precedence, durations and errors.

Environment variables go through `monkeypatch`, and config files are written
to `tmp_path`. The repository's conftest removes every `FAULTGUARD_*`
variable before each test.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from faultguard_core.durations import format_duration, parse_duration
from faultguard_core.errors import ConfigError, FaultguardError
from faultguard_core.settings import (
    BreakerSettings,
    RequestSettings,
    RetrySettings,
    load_settings,
)


def write_config(tmp_path: Path, text: str, name: str = "faultguard.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


# Precedence: defaults < TOML file < environment < explicit overrides.


def test_precedence_toml_over_defaults(tmp_path: Path) -> None:
    path = write_config(tmp_path, "[server]\nport = 9001\n")

    settings = load_settings(path)

    assert settings.server.port == 9001
    assert settings.server.host == "127.0.0.1"


def test_precedence_env_over_toml(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write_config(tmp_path, "[server]\nport = 9001\n")
    monkeypatch.setenv("FAULTGUARD_SERVER__PORT", "9000")

    settings = load_settings(path)

    assert settings.server.port == 9000


def test_precedence_cli_over_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAULTGUARD_SERVER__PORT", "9000")

    settings = load_settings(overrides={"server": {"port": 9002}})

    assert settings.server.port == 9002


def test_precedence_cli_over_toml(tmp_path: Path) -> None:
    path = write_config(tmp_path, "[server]\nport = 9001\n")

    settings = load_settings(path, {"server": {"port": 9002}})

    assert settings.server.port == 9002


def test_precedence_merges_per_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A higher source replaces single keys, not the whole section."""
    path = write_config(tmp_path, '[server]\nlog_level = "debug"\nport = 9001\n')
    monkeypatch.setenv("FAULTGUARD_SERVER__HOST", "::1")

    settings = load_settings(path, {"server": {"port": 9002}})

    assert settings.server.log_level == "debug"
    assert settings.server.host == "::1"
    assert settings.server.port == 9002
    assert settings.server.max_body_bytes == 1_048_576


def test_defaults_match_contract() -> None:
    settings = load_settings()

    assert settings.server.host == "127.0.0.1"
    assert settings.server.port == 8080
    assert settings.metrics.port == 9090
    assert settings.metrics.exporters == ["prometheus"]
    assert settings.storage.backend == "sqlite"
    assert settings.storage.path == Path("./fallback.db")
    assert settings.breaker.max_failures == 5
    assert settings.breaker.open_duration == 30.0
    assert settings.breaker.half_open_max_calls == 1
    assert settings.retry.max_retries == 3
    assert settings.retry.backoff == "exponential"
    assert settings.retry.base_delay == 0.1
    assert settings.retry.max_delay == 10.0
    assert settings.retry.jitter == "full"
    assert settings.request.timeout == 2.0
    assert settings.request.deadline == 10.0
    assert settings.services == {}


# The config file: FAULTGUARD_CONFIG, an explicit path, missing and invalid files.


def test_config_env_var_names_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write_config(tmp_path, "[breaker]\nmax_failures = 9\n")
    monkeypatch.setenv("FAULTGUARD_CONFIG", str(path))

    settings = load_settings()

    assert settings.breaker.max_failures == 9


def test_explicit_config_file_beats_env_var(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from_env = write_config(tmp_path, "[breaker]\nmax_failures = 9\n", "env.toml")
    explicit = write_config(tmp_path, "[breaker]\nmax_failures = 4\n", "cli.toml")
    monkeypatch.setenv("FAULTGUARD_CONFIG", str(from_env))

    settings = load_settings(explicit)

    assert settings.breaker.max_failures == 4


def test_explicit_file_ignores_missing_env_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    explicit = write_config(tmp_path, "[breaker]\nmax_failures = 4\n")
    monkeypatch.setenv("FAULTGUARD_CONFIG", str(tmp_path / "absent.toml"))

    settings = load_settings(explicit)

    assert settings.breaker.max_failures == 4


def test_missing_explicit_file_names_path(tmp_path: Path) -> None:
    missing = tmp_path / "missing.toml"

    with pytest.raises(ConfigError) as caught:
        load_settings(missing)

    assert str(missing) in str(caught.value)
    assert "not found" in str(caught.value)


def test_missing_env_var_file_names_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    missing = tmp_path / "missing.toml"
    monkeypatch.setenv("FAULTGUARD_CONFIG", str(missing))

    with pytest.raises(ConfigError) as caught:
        load_settings()

    assert str(missing) in str(caught.value)


def test_directory_as_config_file_rejected(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(tmp_path)

    assert str(tmp_path) in str(caught.value)


def test_invalid_toml_raises_config_error(tmp_path: Path) -> None:
    path = write_config(tmp_path, "[server\nport = \n")

    with pytest.raises(ConfigError) as caught:
        load_settings(path)

    assert str(path) in str(caught.value)
    assert "not valid TOML" in str(caught.value)


def test_config_error_is_faultguard_error() -> None:
    assert issubclass(ConfigError, FaultguardError)


# Invalid values: the error names the setting and the value.


@pytest.mark.parametrize(
    ("env", "setting", "value"),
    [
        ("FAULTGUARD_BREAKER__MAX_FAILURES", "breaker.max_failures", "zero"),
        ("FAULTGUARD_BREAKER__MAX_FAILURES", "breaker.max_failures", "0"),
        ("FAULTGUARD_BREAKER__OPEN_DURATION", "breaker.open_duration", "3 parsecs"),
        ("FAULTGUARD_SERVER__PORT", "server.port", "99999"),
        ("FAULTGUARD_SERVER__LOG_LEVEL", "server.log_level", "verbose"),
        ("FAULTGUARD_RETRY__JITTER", "retry.jitter", "sometimes"),
        ("FAULTGUARD_REQUEST__TIMEOUT", "request.timeout", "-2s"),
        ("FAULTGUARD_BREAKER__BOGUS", "breaker.bogus", "1"),
    ],
)
def test_invalid_env_value_named(
    monkeypatch: pytest.MonkeyPatch, env: str, setting: str, value: str
) -> None:
    monkeypatch.setenv(env, value)

    with pytest.raises(ConfigError) as caught:
        load_settings()

    assert setting in str(caught.value)
    assert repr(value) in str(caught.value)


@pytest.mark.parametrize(
    ("toml", "setting", "value"),
    [
        (
            '[breaker]\nopen_duration = "3 parsecs"\n',
            "breaker.open_duration",
            "3 parsecs",
        ),
        ('[breaker]\nmax_failures = "zero"\n', "breaker.max_failures", "zero"),
        ("[breaker]\nmax_failures = 0\n", "breaker.max_failures", "0"),
        ("[breaker]\nbogus = 17\n", "breaker.bogus", "17"),
        ("[metrics]\nport = -1\n", "metrics.port", "-1"),
        ("[request]\ntimeout = true\n", "request.timeout", "True"),
        ("[bogus]\nx = 17\n", "bogus", "17"),
    ],
)
def test_invalid_toml_value_named(
    tmp_path: Path, toml: str, setting: str, value: str
) -> None:
    path = write_config(tmp_path, toml)

    with pytest.raises(ConfigError) as caught:
        load_settings(path)

    assert setting in str(caught.value)
    assert value in str(caught.value)


def test_unknown_env_section_rejected(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAULTGUARD_BRAKER__MAX_FAILURES", "2")

    with pytest.raises(ConfigError) as caught:
        load_settings()

    assert "braker" in str(caught.value).lower()


def test_invalid_override_value_named() -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(overrides={"server": {"port": 70000}})

    assert "server.port" in str(caught.value)
    assert "70000" in str(caught.value)


# Durations.


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("250ms", 0.25),
        ("2s", 2.0),
        ("1m", 60.0),
        ("1h", 3600.0),
        ("1.5m", 90.0),
        (".5s", 0.5),
        (" 3 ", 3.0),
        ("0", 0.0),
        (1.5, 1.5),
        (3, 3.0),
        (0, 0.0),
    ],
)
def test_parse_duration_accepts(text: str | float, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize(
    "value",
    [-1, -0.5, "-1s", "inf", float("inf"), float("nan"), True, False, None, "", "2 d"],
)
def test_parse_duration_rejects(value: object) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration(value)


@pytest.mark.parametrize("seconds", [0.0, 0.25, 0.001, 2.0, 30.0, 90.0])
def test_format_duration_round_trips(seconds: float) -> None:
    assert parse_duration(format_duration(seconds)) == pytest.approx(seconds)


def test_duration_settings_in_seconds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write_config(
        tmp_path,
        '[request]\ntimeout = "250ms"\ndeadline = 1.5\n'
        '[breaker]\nopen_duration = "1m"\n',
    )
    monkeypatch.setenv("FAULTGUARD_RETRY__BASE_DELAY", "0")

    settings = load_settings(path)

    assert settings.request.timeout == pytest.approx(0.25)
    assert settings.request.deadline == pytest.approx(1.5)
    assert settings.breaker.open_duration == pytest.approx(60.0)
    assert settings.retry.base_delay == 0.0


@pytest.mark.parametrize("value", ["inf", "-1", "true"])
def test_duration_setting_rejects_env(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv("FAULTGUARD_REQUEST__TIMEOUT", value)

    with pytest.raises(ConfigError) as caught:
        load_settings()

    assert "request.timeout" in str(caught.value)
    assert repr(value) in str(caught.value)


def test_duration_setting_rejects_toml_inf(tmp_path: Path) -> None:
    path = write_config(tmp_path, "[request]\ntimeout = inf\n")

    with pytest.raises(ConfigError) as caught:
        load_settings(path)

    assert "request.timeout" in str(caught.value)
    assert "inf" in str(caught.value)


# List settings from the environment.


@pytest.mark.parametrize(
    "value",
    ["prometheus,otel", " prometheus , otel ", '["prometheus", "otel"]'],
)
def test_env_list_comma_or_json(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("FAULTGUARD_METRICS__EXPORTERS", value)

    settings = load_settings()

    assert settings.metrics.exporters == ["prometheus", "otel"]


def test_env_list_empty_string_empty(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAULTGUARD_METRICS__EXPORTERS", "")

    settings = load_settings()

    assert settings.metrics.exporters == []


def test_env_list_broken_json_rejected(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAULTGUARD_PLUGINS__BLOCK", '["a", "b"')

    with pytest.raises(ConfigError) as caught:
        load_settings()

    assert "plugins.block" in str(caught.value)


def test_env_blocked_networks_comma(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAULTGUARD_SECURITY__BLOCKED_NETWORKS", "10.0.0.0/8,::1/128")

    settings = load_settings()

    assert settings.security.blocked_networks == ["10.0.0.0/8", "::1/128"]


# Security settings.


def test_blocked_networks_invalid_cidr_toml(tmp_path: Path) -> None:
    path = write_config(
        tmp_path, '[security]\nblocked_networks = ["10.0.0.0/8", "10.0.0.0/33"]\n'
    )

    with pytest.raises(ConfigError) as caught:
        load_settings(path)

    assert "security.blocked_networks" in str(caught.value)
    assert "10.0.0.0/33" in str(caught.value)


def test_blocked_networks_invalid_cidr_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAULTGUARD_SECURITY__BLOCKED_NETWORKS", "10.0.0.0/8,nowhere")

    with pytest.raises(ConfigError) as caught:
        load_settings()

    assert "security.blocked_networks" in str(caught.value)
    assert "nowhere" in str(caught.value)


# retry.max_delay against retry.base_delay.


def test_retry_max_delay_below_base(tmp_path: Path) -> None:
    path = write_config(tmp_path, '[retry]\nbase_delay = "5s"\nmax_delay = "1s"\n')

    with pytest.raises(ConfigError) as caught:
        load_settings(path)

    assert "retry.max_delay" in str(caught.value)
    assert "retry.base_delay" in str(caught.value)


def test_retry_max_delay_equal_base(tmp_path: Path) -> None:
    path = write_config(tmp_path, '[retry]\nbase_delay = "1s"\nmax_delay = "1s"\n')

    settings = load_settings(path)

    assert settings.retry.max_delay == settings.retry.base_delay


# Services: per-service overrides merged over the global sections.

SERVICES_TOML = """
[breaker]
max_failures = 7

[retry]
max_retries = 4

[services.payments]
url = "http://127.0.0.1:9000"
allowed_hosts = ["127.0.0.1", "localhost"]

[services.payments.breaker]
max_failures = 2
open_duration = "5s"

[services.payments.retry]
base_delay = "250ms"

[services.payments.request]
timeout = "500ms"

[services.inventory]
url = "http://127.0.0.1:9001"
"""


def test_services_from_toml(tmp_path: Path) -> None:
    settings = load_settings(write_config(tmp_path, SERVICES_TOML))

    payments = settings.services["payments"]

    assert set(settings.services) == {"payments", "inventory"}
    assert payments.url == "http://127.0.0.1:9000"
    assert payments.allowed_hosts == ["127.0.0.1", "localhost"]


def test_policy_for_merges_overrides(tmp_path: Path) -> None:
    settings = load_settings(write_config(tmp_path, SERVICES_TOML))

    policy = settings.policy_for("payments")

    assert policy.breaker.max_failures == 2
    assert policy.breaker.open_duration == 5.0
    assert policy.breaker.half_open_max_calls == 1
    assert policy.retry.base_delay == pytest.approx(0.25)
    assert policy.retry.max_retries == 4
    assert policy.request.timeout == pytest.approx(0.5)
    assert policy.request.deadline == 10.0


def test_policy_for_without_overrides(tmp_path: Path) -> None:
    settings = load_settings(write_config(tmp_path, SERVICES_TOML))

    policy = settings.policy_for("inventory")

    assert policy == settings.default_policy()
    assert policy.breaker.max_failures == 7


def test_policy_overrides_keep_globals(tmp_path: Path) -> None:
    settings = load_settings(write_config(tmp_path, SERVICES_TOML))

    settings.policy_for("payments")

    assert settings.breaker.max_failures == 7
    assert settings.retry.base_delay == pytest.approx(0.1)


def test_policy_types_are_section_models(tmp_path: Path) -> None:
    policy = load_settings(write_config(tmp_path, SERVICES_TOML)).policy_for("payments")

    assert isinstance(policy.breaker, BreakerSettings)
    assert isinstance(policy.retry, RetrySettings)
    assert isinstance(policy.request, RequestSettings)


def test_policy_for_unknown_service() -> None:
    settings = load_settings()

    with pytest.raises(KeyError):
        settings.policy_for("payments")


def test_default_policy_is_globals(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAULTGUARD_REQUEST__TIMEOUT", "750ms")
    settings = load_settings()

    policy = settings.default_policy()

    assert policy.breaker == settings.breaker
    assert policy.retry == settings.retry
    assert policy.request.timeout == pytest.approx(0.75)


def test_services_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAULTGUARD_SERVICES__PAYMENTS__BREAKER__MAX_FAILURES", "2")
    monkeypatch.setenv("FAULTGUARD_SERVICES__PAYMENTS__URL", "http://127.0.0.1:9000")
    monkeypatch.setenv("FAULTGUARD_SERVICES__PAYMENTS__ALLOWED_HOSTS", "a.test,b.test")

    settings = load_settings()

    payments = settings.services["payments"]
    assert payments.url == "http://127.0.0.1:9000"
    assert payments.allowed_hosts == ["a.test", "b.test"]
    assert settings.policy_for("payments").breaker.max_failures == 2


def test_services_env_parses_overrides(monkeypatch: pytest.MonkeyPatch) -> None:
    """Override tables are dicts, so env strings are parsed only at the merge."""
    monkeypatch.setenv("FAULTGUARD_SERVICES__PAYMENTS__RETRY__BASE_DELAY", "250ms")
    monkeypatch.setenv("FAULTGUARD_SERVICES__PAYMENTS__REQUEST__TIMEOUT", "1.5")

    policy = load_settings().policy_for("payments")

    assert policy.retry.base_delay == pytest.approx(0.25)
    assert policy.request.timeout == pytest.approx(1.5)


@pytest.mark.parametrize("key", ["max_response_bytes", "follow_redirects"])
def test_service_transport_override_rejected(key: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(overrides={"services": {"pay": {"request": {key: 1}}}})

    assert f"request.{key}" in str(caught.value)
    assert "global [request]" in str(caught.value)


def test_service_url_must_be_absolute() -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(overrides={"services": {"pay": {"url": "ftp://host/"}}})

    assert "services.pay.url" in str(caught.value)


def test_services_env_over_toml(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write_config(tmp_path, SERVICES_TOML)
    monkeypatch.setenv("FAULTGUARD_SERVICES__PAYMENTS__BREAKER__MAX_FAILURES", "3")

    settings = load_settings(path)

    policy = settings.policy_for("payments")
    assert policy.breaker.max_failures == 3
    assert policy.breaker.open_duration == 5.0
    assert settings.services["payments"].url == "http://127.0.0.1:9000"


def test_services_cli_over_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAULTGUARD_SERVICES__PAYMENTS__BREAKER__MAX_FAILURES", "3")

    settings = load_settings(
        overrides={"services": {"payments": {"breaker": {"max_failures": 6}}}}
    )

    assert settings.policy_for("payments").breaker.max_failures == 6


@pytest.mark.parametrize(
    ("toml", "section", "value"),
    [
        ("[services.payments.breaker]\nmax_failures = 0\n", "breaker", "0"),
        ('[services.payments.breaker]\nopen_duration = "soon"\n', "breaker", "soon"),
        ("[services.payments.breaker]\nbogus = 17\n", "breaker", "17"),
        ('[services.payments.retry]\njitter = "lots"\n', "retry", "lots"),
        ('[services.payments.request]\ntimeout = "-1s"\n', "request", "-1s"),
    ],
)
def test_invalid_service_override_named(
    tmp_path: Path, toml: str, section: str, value: str
) -> None:
    path = write_config(tmp_path, toml)

    with pytest.raises(ConfigError) as caught:
        load_settings(path)

    assert f"services.payments.{section}" in str(caught.value)
    assert value in str(caught.value)


def test_invalid_service_env_override_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAULTGUARD_SERVICES__PAYMENTS__BREAKER__MAX_FAILURES", "zero")

    with pytest.raises(ConfigError) as caught:
        load_settings()

    assert "services.payments.breaker" in str(caught.value)
    assert "'zero'" in str(caught.value)


def test_service_override_max_delay_below_global_base(tmp_path: Path) -> None:
    """A service's base_delay is checked against the merged max_delay."""
    path = write_config(tmp_path, '[services.payments.retry]\nbase_delay = "20s"\n')

    with pytest.raises(ConfigError) as caught:
        load_settings(path)

    assert "services.payments.retry" in str(caught.value)
    assert "max_delay" in str(caught.value)


def test_unknown_service_key_named(tmp_path: Path) -> None:
    path = write_config(tmp_path, '[services.payments]\nendpoint = "http://x"\n')

    with pytest.raises(ConfigError) as caught:
        load_settings(path)

    assert "services.payments.endpoint" in str(caught.value)


def test_config_not_utf8_rejected(tmp_path: Path) -> None:
    path = tmp_path / "latin1.toml"
    path.write_bytes(b"[server]\nport = 8080\n# caf\xe9\n")

    with pytest.raises(ConfigError) as caught:
        load_settings(path)

    assert str(path) in str(caught.value)
    assert "UTF-8" in str(caught.value)


def test_config_directory_rejected(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(tmp_path)

    assert "is a directory" in str(caught.value)


def test_empty_admin_token_rejected(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAULTGUARD_SECURITY__ADMIN_TOKEN", "")

    with pytest.raises(ConfigError) as caught:
        load_settings()

    assert "security.admin_token" in str(caught.value)


def test_invalid_secret_not_echoed() -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(overrides={"security": {"admin_token": 12345}})

    assert "12345" not in str(caught.value)
    assert "***" in str(caught.value)
