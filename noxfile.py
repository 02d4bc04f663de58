"""Developer sessions: tests, lint, typecheck, docs, bench.

Every session builds its own virtual environment from pyproject.toml, so a
fresh clone needs only Python 3.11+ and `pip install nox`.
"""

from __future__ import annotations

from pathlib import Path

import nox

nox.options.sessions = ["lint", "typecheck", "tests"]
nox.options.reuse_existing_virtualenvs = True

PYTHON = "3.11"


def install_first_party_plugins(session: nox.Session) -> None:
    """Install each plugin under plugins/ exactly as a third-party one would be."""
    for plugin in sorted(Path("plugins").glob("*/pyproject.toml")):
        session.install("-e", str(plugin.parent))


@nox.session(python=PYTHON)
def tests(session: nox.Session) -> None:
    """Run the whole test suite (unit, contract, server and end-to-end)."""
    session.install("-e", ".[test]")
    install_first_party_plugins(session)
    session.run("pytest", *session.posargs)


@nox.session(python=PYTHON)
def lint(session: nox.Session) -> None:
    """Check formatting and lint rules with ruff."""
    session.install("ruff==0.17.6")
    session.run("ruff", "format", "--check", ".")
    session.run("ruff", "check", ".")


@nox.session(python=PYTHON)
def typecheck(session: nox.Session) -> None:
    """Type-check faultguard_core with strict mypy."""
    session.install("-e", ".[test]", "mypy>=1.11")
    session.run("mypy")


@nox.session(python=PYTHON)
def bench(session: nox.Session) -> None:
    """Measure /execute against the upstream directly, with wrk, in one run."""
    session.install("-e", ".")
    install_first_party_plugins(session)
    session.run("python", "bench/run.py", *session.posargs)
    if not session.posargs:
        session.run("python", "bench/storage.py")
