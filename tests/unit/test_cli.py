"""Unit tests of the `faultguard` command line: `config show` and `serve` errors.

Every test calls `faultguard_core.cli.main` in-process and reads its output
with `capsys`. `uvicorn.run` is replaced in the `serve` tests, so no test
binds a port.
"""

from __future__ import annotations

import json
import os
import socket
import tomllib
from pathlib import Path
from typing import Any

import pytest
import uvicorn

from faultguard_core.cli import main
from faultguard_core.settings import load_settings

CUSTOM_TOML = """
[server]
port = 9001
log_level = "debug"

[metrics]
port = 0
exporters = ["prometheus"]

[storage]
backend = "memory"
path = "/tmp/faultguard-fallback.db"

[breaker]
open_duration = "1m"

[retry]
base_delay = "250ms"

[security]
blocked_networks = ["169.254.0.0/16", "10.0.0.0/8"]

[services.payments]
url = "http://127.0.0.1:9000"
allowed_hosts = ["127.0.0.1"]

[services.payments.breaker]
max_failures = 2
"""


def write_config(tmp_path: Path, text: str, name: str = "faultguard.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def drop_none(node: Any) -> Any:
    """Remove None values, which TOML cannot express and `config show` skips."""
    if isinstance(node, dict):
        return {
            key: drop_none(value) for key, value in node.items() if value is not None
        }
    return node


def show(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    status = main(["config", "show", *args])
    captured = capsys.readouterr()
    assert status == 0, captured.err
    return captured.out


# config show as TOML.


def test_show_toml_parses_to_settings(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_config(tmp_path, CUSTOM_TOML)
    expected = drop_none(json.loads(load_settings(path).model_dump_json()))

    output = show(capsys, "--config", str(path))

    assert tomllib.loads(output) == expected


def test_show_toml_reloads_same_settings(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The printed TOML, loaded as a config file, gives the same settings."""
    path = write_config(tmp_path, CUSTOM_TOML)
    original = load_settings(path)

    output = show(capsys, "--config", str(path))
    reloaded = load_settings(write_config(tmp_path, output, "shown.toml"))

    assert reloaded.model_dump() == original.model_dump()
    assert reloaded.policy_for("payments") == original.policy_for("payments")


def test_show_defaults_without_config(capsys: pytest.CaptureFixture[str]) -> None:
    output = show(capsys)

    parsed = tomllib.loads(output)

    assert parsed == drop_none(json.loads(load_settings().model_dump_json()))
    assert parsed["server"]["port"] == 8080


def test_show_masks_admin_token_toml(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAULTGUARD_SECURITY__ADMIN_TOKEN", "s3cret-token")

    output = show(capsys)

    assert "s3cret-token" not in output
    assert tomllib.loads(output)["security"]["admin_token"] == "***"


def test_show_masks_admin_token_json(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_config(tmp_path, '[security]\nadmin_token = "s3cret-token"\n')

    output = show(capsys, "--config", str(path), "--format", "json")

    assert "s3cret-token" not in output
    assert json.loads(output)["security"]["admin_token"] == "***"


def test_show_masks_plugin_password(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Storage plugins may keep a `password` in their own table under storage."""
    path = write_config(
        tmp_path,
        '[storage.redis]\nurl = "redis://127.0.0.1:6379"\npassword = "hunter2"\n',
    )

    output = show(capsys, "--config", str(path))

    assert "hunter2" not in output
    assert tomllib.loads(output)["storage"]["redis"]["password"] == "***"


def test_show_unset_token_omitted(capsys: pytest.CaptureFixture[str]) -> None:
    output = show(capsys)

    assert "admin_token" not in tomllib.loads(output)["security"]


# config show as JSON.


def test_show_json_matches_settings(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_config(tmp_path, CUSTOM_TOML)
    expected = json.loads(load_settings(path).model_dump_json())

    output = show(capsys, "--config", str(path), "--format", "json")

    assert json.loads(output) == expected


def test_show_json_unset_token_null(capsys: pytest.CaptureFixture[str]) -> None:
    output = show(capsys, "--format", "json")

    assert json.loads(output)["security"]["admin_token"] is None


# Environment overrides in the output.


def test_show_includes_env_overrides(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    path = write_config(tmp_path, CUSTOM_TOML)
    monkeypatch.setenv("FAULTGUARD_SERVER__PORT", "9100")
    monkeypatch.setenv("FAULTGUARD_METRICS__EXPORTERS", "prometheus,otel")
    monkeypatch.setenv("FAULTGUARD_REQUEST__TIMEOUT", "750ms")

    parsed = tomllib.loads(show(capsys, "--config", str(path)))

    assert parsed["server"]["port"] == 9100
    assert parsed["server"]["log_level"] == "debug"
    assert parsed["metrics"]["exporters"] == ["prometheus", "otel"]
    assert parsed["request"]["timeout"] == pytest.approx(0.75)


def test_show_config_from_env_var(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    path = write_config(tmp_path, CUSTOM_TOML)
    monkeypatch.setenv("FAULTGUARD_CONFIG", str(path))

    parsed = tomllib.loads(show(capsys))

    assert parsed["server"]["port"] == 9001


def test_show_includes_env_service(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAULTGUARD_SERVICES__PAYMENTS__URL", "http://127.0.0.1:9000")

    parsed = tomllib.loads(show(capsys))

    assert parsed["services"]["payments"]["url"] == "http://127.0.0.1:9000"


def test_show_env_service_override_typed(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAULTGUARD_SERVICES__PAYMENTS__BREAKER__MAX_FAILURES", "2")

    parsed = tomllib.loads(show(capsys))

    assert parsed["services"]["payments"]["breaker"]["max_failures"] == 2


# Errors: exit status 2 and a message on stderr.


def test_show_missing_config_exits_2(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(tmp_path)

    status = main(["config", "show", "--config", "missing.toml"])

    captured = capsys.readouterr()
    assert status == 2
    assert "missing.toml" in captured.err
    assert "not found" in captured.err
    assert captured.out == ""


def test_show_missing_env_config_exits_2(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    missing = tmp_path / "missing.toml"
    monkeypatch.setenv("FAULTGUARD_CONFIG", str(missing))

    status = main(["config", "show"])

    assert status == 2
    assert str(missing) in capsys.readouterr().err


def test_show_invalid_value_exits_2(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAULTGUARD_BREAKER__MAX_FAILURES", "zero")

    status = main(["config", "show"])

    captured = capsys.readouterr()
    assert status == 2
    assert "breaker.max_failures" in captured.err
    assert "'zero'" in captured.err
    assert captured.out == ""


# serve: invalid settings stop it before uvicorn binds a port.


@pytest.fixture
def uvicorn_calls(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """Replace `uvicorn.run` with a recorder, so no test binds a port."""
    calls: list[dict[str, Any]] = []

    def record(app: object, **kwargs: Any) -> None:
        calls.append(kwargs)

    monkeypatch.setattr(uvicorn, "run", record)
    return calls


def test_serve_invalid_env_port_exits_2(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    uvicorn_calls: list[dict[str, Any]],
) -> None:
    monkeypatch.setenv("FAULTGUARD_SERVER__PORT", "99999")

    status = main(["serve"])

    captured = capsys.readouterr()
    assert status == 2
    assert "server.port" in captured.err
    assert "99999" in captured.err
    assert uvicorn_calls == []


def test_serve_invalid_option_port_exits_2(
    capsys: pytest.CaptureFixture[str], uvicorn_calls: list[dict[str, Any]]
) -> None:
    status = main(["serve", "--port", "99999"])

    captured = capsys.readouterr()
    assert status == 2
    assert "server.port" in captured.err
    assert uvicorn_calls == []


def test_serve_missing_config_exits_2(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    uvicorn_calls: list[dict[str, Any]],
) -> None:
    missing = tmp_path / "missing.toml"

    status = main(["serve", "--config", str(missing)])

    assert status == 2
    assert str(missing) in capsys.readouterr().err
    assert uvicorn_calls == []


def test_serve_zero_workers_option_rejected(
    capsys: pytest.CaptureFixture[str], uvicorn_calls: list[dict[str, Any]]
) -> None:
    status = main(["serve", "--workers", "0"])

    captured = capsys.readouterr()
    assert status == 2
    assert "server.workers" in captured.err
    assert uvicorn_calls == []


def test_serve_zero_workers_env_rejected(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    uvicorn_calls: list[dict[str, Any]],
) -> None:
    monkeypatch.setenv("FAULTGUARD_SERVER__WORKERS", "0")

    status = main(["serve"])

    captured = capsys.readouterr()
    assert status == 2
    assert "server.workers" in captured.err
    assert uvicorn_calls == []


def test_serve_too_many_workers_rejected(
    capsys: pytest.CaptureFixture[str], uvicorn_calls: list[dict[str, Any]]
) -> None:
    status = main(["serve", "--workers", "65"])

    captured = capsys.readouterr()
    assert status == 2
    assert "server.workers" in captured.err
    assert uvicorn_calls == []


def test_serve_workers_hands_over_sources(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[dict[str, Any]] = []

    def record(app: object, **kwargs: Any) -> None:
        handed_over = json.loads(os.environ["_FAULTGUARD_SERVE_ARGS"])
        metrics_dir = os.environ["PROMETHEUS_MULTIPROC_DIR"]
        seen.append(
            {"app": app, **kwargs, "args": handed_over, "metrics_dir": metrics_dir}
        )

    monkeypatch.setattr(uvicorn, "run", record)
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    options = ["--workers", "3", "--port", "0", "--metrics-port", "0"]
    database = str(tmp_path / "fallback.db")

    status = main(["serve", *options, "--storage-path", database])

    assert status == 0
    assert len(seen) == 1
    call = seen[0]
    assert call["app"] == "faultguard_core.server.worker:create_worker_app"
    assert call["factory"] is True
    assert call["workers"] == 3
    assert call["args"]["config_file"] is None
    assert call["args"]["overrides"]["server"]["workers"] == 3
    assert call["args"]["overrides"]["storage"]["path"] == database
    assert not Path(call["metrics_dir"]).exists()
    assert "PROMETHEUS_MULTIPROC_DIR" not in os.environ
    assert "_FAULTGUARD_SERVE_ARGS" not in os.environ


def test_serve_non_integer_port_exits_2(
    capsys: pytest.CaptureFixture[str], uvicorn_calls: list[dict[str, Any]]
) -> None:
    with pytest.raises(SystemExit) as caught:
        main(["serve", "--port", "eighty"])

    assert caught.value.code == 2
    assert "--port" in capsys.readouterr().err
    assert uvicorn_calls == []


def test_serve_options_override_env(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    uvicorn_calls: list[dict[str, Any]],
) -> None:
    """Options override the environment, and uvicorn receives the merged values."""
    monkeypatch.setenv("FAULTGUARD_SERVER__PORT", "9000")
    monkeypatch.setenv("FAULTGUARD_STORAGE__BACKEND", "memory")
    monkeypatch.setenv("FAULTGUARD_METRICS__PORT", "0")

    status = main(["serve", "--port", "9002", "--host", "::1", "--log-level", "error"])

    assert status == 0
    assert len(uvicorn_calls) == 1
    assert uvicorn_calls[0]["port"] == 9002
    assert uvicorn_calls[0]["host"] == "::1"
    assert uvicorn_calls[0]["log_level"] == "error"


@pytest.mark.parametrize("busy", ["server", "metrics"])
def test_serve_busy_port_exits_2(
    busy: str,
    capsys: pytest.CaptureFixture[str],
    uvicorn_calls: list[dict[str, Any]],
) -> None:
    with socket.socket() as taken, socket.socket() as spare:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        spare.bind(("127.0.0.1", 0))
        busy_port = str(taken.getsockname()[1])
        free_port = str(spare.getsockname()[1])
        spare.close()
        api_port, metrics_port = (
            (busy_port, free_port) if busy == "server" else (free_port, busy_port)
        )

        status = main(
            [
                "serve",
                "--port",
                api_port,
                "--metrics-port",
                metrics_port,
                "--storage-backend",
                "memory",
            ]
        )

    captured = capsys.readouterr()
    assert status == 2
    assert f"{busy}.port" in captured.err
    assert busy_port in captured.err
    assert uvicorn_calls == []


def test_show_masks_url_password(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(
        "FAULTGUARD_STORAGE__REDIS__URL", "redis://user:pw-SECRET@127.0.0.1:6379/0"
    )

    status = main(["config", "show"])

    output = capsys.readouterr().out
    assert status == 0
    assert "pw-SECRET" not in output
    assert "redis://user:***@127.0.0.1:6379/0" in output
