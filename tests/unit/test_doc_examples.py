"""The examples under docs/examples run against a real upstream."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from upstream import ScriptedUpstream, ok, status

EXAMPLES = Path(__file__).parents[2] / "docs" / "examples"


def run_example(name: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(EXAMPLES / name), *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_library_example_prints_upstream_body() -> None:
    with ScriptedUpstream() as upstream:
        upstream.script("/users/42", ok(body={"id": 42}))

        result = run_example("library_usage.py", upstream.url_for("/users/42"))

    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("upstream 200")
    assert '"id":42' in result.stdout.replace(" ", "")


def test_library_example_reports_failure() -> None:
    with ScriptedUpstream() as upstream:
        upstream.script("/users/42", status(500))

        result = run_example("library_usage.py", upstream.url_for("/users/42"))

    assert result.returncode == 1, result.stderr
    assert "no response" in result.stdout
