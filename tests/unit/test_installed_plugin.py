"""A plugin installed with pip is found through its `faultguard` entry point.

The fixture distribution in tests/fixtures/faultguard-example-plugin is
installed once per module with `pip install --target` into a temporary
directory. Each test then runs a subprocess of the current interpreter with
that directory on PYTHONPATH, so `importlib.metadata` finds the installed
dist-info and its entry point while faultguard comes from this environment.

When hatchling is not importable here, pip builds the wheel with build
isolation and fetches hatchling from the package index (cached after the first
run), so this module then needs network access to the index.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

FIXTURE = Path(__file__).parent.parent / "fixtures" / "faultguard-example-plugin"

GUARD_SNIPPET = textwrap.dedent(
    """
    import json
    import random
    import socket

    import anyio

    import faultguard_example_plugin as example
    from faultguard_core import Call, Guard, UpstreamFailedError, load_settings


    def closed_loopback_port():
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            return sock.getsockname()[1]


    async def main():
        settings = load_settings(
            overrides={
                "retry": {"backoff": "example-fixed", "max_retries": 1},
                "storage": {"backend": "example-memory"},
                "metrics": {"port": 0},
            }
        )
        guard = Guard.from_settings(settings)
        strategy = guard.plugins.backoff_strategies.get("example-fixed")
        delay = strategy(settings.retry, random.Random()).next_delay(1)

        url = f"http://127.0.0.1:{closed_loopback_port()}/refused"
        error = None
        async with guard:
            try:
                await guard.execute(Call(key="refused", url=url))
            except UpstreamFailedError as exc:
                error = type(exc).__name__

        print(json.dumps({
            "store_class": type(guard.store).__qualname__,
            "store_module": type(guard.store).__module__,
            "backoff_plugin": guard.plugins.backoff_strategies.names()[
                "example-fixed"
            ],
            "storage_plugin": guard.plugins.storage_backends.names()[
                "example-memory"
            ],
            "delay": delay,
            "error": error,
            "finished": [
                [event.outcome, event.attempts, event.duration]
                for event in example.CALLS_FINISHED
            ],
        }))


    anyio.run(main)
    """
)


@pytest.fixture(scope="module")
def plugin_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Install the fixture distribution into a new directory and return its path."""
    site = tmp_path_factory.mktemp("example-plugin-site")
    command = [
        sys.executable,
        "-m",
        "pip",
        "install",
        "--no-deps",
        "--no-input",
        "--disable-pip-version-check",
        "--quiet",
        "--target",
        str(site),
    ]
    if importlib.util.find_spec("hatchling") is not None:
        command.append("--no-build-isolation")
    command.append(str(FIXTURE))

    installed = subprocess.run(
        command, capture_output=True, text=True, timeout=110, check=False
    )

    assert installed.returncode == 0, installed.stderr
    return site


def _run(
    site: Path, cwd: Path, arguments: list[str], **env: str
) -> subprocess.CompletedProcess[str]:
    """Run the current interpreter with only `site` on PYTHONPATH."""
    clean = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("FAULTGUARD_")
    }
    clean["PYTHONPATH"] = str(site)
    clean.update(env)
    return subprocess.run(
        [sys.executable, *arguments],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=clean,
        timeout=60,
        check=False,
    )


def _plugin_rows(output: str) -> dict[str, list[str]]:
    """Map each plugin name in the `faultguard plugins` table to its columns."""
    rows = {}
    for line in output.splitlines():
        if not line.strip():
            break
        columns = line.split()
        rows[columns[0]] = columns[1:]
    return rows


def _registry_line(output: str, title: str) -> str:
    for line in output.splitlines():
        if line.startswith(f"{title}: "):
            return line
    raise AssertionError(f"no {title!r} line in:\n{output}")


def test_plugins_command_lists_example(plugin_site: Path, tmp_path: Path) -> None:
    result = _run(plugin_site, tmp_path, ["-m", "faultguard_core.cli", "plugins"])

    assert result.returncode == 0, result.stderr
    rows = _plugin_rows(result.stdout)
    assert rows["example"] == ["faultguard-example-plugin", "0.3.1"]
    assert "example-fixed (example)" in _registry_line(
        result.stdout, "backoff strategies"
    )
    assert "example-memory (example)" in _registry_line(
        result.stdout, "storage backends"
    )


@pytest.fixture(scope="module")
def guard_report(
    plugin_site: Path, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Any]:
    """Run one failing call through a guard built from the plugin's names."""
    cwd = tmp_path_factory.mktemp("guard-run")

    result = _run(plugin_site, cwd, ["-c", GUARD_SNIPPET])

    assert result.returncode == 0, result.stderr
    report: dict[str, Any] = json.loads(result.stdout)
    return report


def test_guard_uses_installed_plugin(guard_report: dict[str, Any]) -> None:
    assert guard_report["store_class"] == "ExampleMemoryStore"
    assert guard_report["store_module"] == "faultguard_example_plugin"
    assert guard_report["backoff_plugin"] == "example"
    assert guard_report["storage_plugin"] == "example"
    assert guard_report["delay"] == pytest.approx(0.05)
    assert guard_report["error"] == "UpstreamFailedError"


def test_installed_event_hook_receives_call(guard_report: dict[str, Any]) -> None:
    finished = guard_report["finished"]

    assert len(finished) == 1
    outcome, attempts, duration = finished[0]
    assert outcome == "failure"
    assert attempts == 2
    # The one retry waited the fixed 0.05 s of `example-fixed`.
    assert duration >= 0.05


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        pytest.param("FAULTGUARD_PLUGINS__AUTOLOAD", "false", id="autoload_off"),
        pytest.param("FAULTGUARD_PLUGINS__BLOCK", "example", id="blocked"),
    ],
)
def test_environment_hides_example(
    plugin_site: Path, tmp_path: Path, variable: str, value: str
) -> None:
    result = _run(
        plugin_site,
        tmp_path,
        ["-m", "faultguard_core.cli", "plugins"],
        **{variable: value},
    )

    assert result.returncode == 0, result.stderr
    assert "example" not in _plugin_rows(result.stdout)
    assert "example-fixed" not in result.stdout
    assert "example-memory" not in result.stdout
