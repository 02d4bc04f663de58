"""Checks of the Dockerfile without a container engine.

No container engine runs in CI, so these tests parse the Dockerfile and replay
what matters in a virtual environment: the build stage's COPY and
`pip install` steps, then the final stage's CMD and HEALTHCHECK with its ENV.
Listeners bind 127.0.0.1 on free ports here, never 0.0.0.0 as in the image.

The parser covers what this Dockerfile uses: parser directives, comments,
line continuations (also across comment lines), exec and shell forms, ENV in
both forms, and COPY from the build context or from another stage. It raises
on heredocs and ADD rather than guess at them.
"""

from __future__ import annotations

import json
import os
import posixpath
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
DOCKERFILE = REPO_ROOT / "Dockerfile"
DOCKERIGNORE = REPO_ROOT / ".dockerignore"

API_PORT = 8080
METRICS_PORT = 9090
DATA_DIR = "/var/lib/faultguard"

PIP_INSTALL_TIMEOUT = 600.0
START_TIMEOUT = 30.0
STOP_TIMEOUT = 15.0
COMMAND_TIMEOUT = 30.0

_DIRECTIVE = re.compile(r"^#\s*([a-zA-Z]+)\s*=\s*(\S+)\s*$")
_HEALTHCHECK = re.compile(r"^((?:--\S+\s+)*)(CMD|NONE)\b\s*(.*)$", re.DOTALL)
_HEREDOC = re.compile(r"<<-?\s*[\"']?[A-Za-z_]")
_SHELL_OPERATORS = {"&&", "||", ";", "|", "&"}


# ---- parsing ------------------------------------------------------------


@dataclass(frozen=True)
class Instruction:
    """One instruction, its arguments with line continuations joined."""

    keyword: str
    arguments: str
    line: int


@dataclass
class Stage:
    """One FROM and the instructions up to the next FROM."""

    base: str
    name: str | None
    instructions: list[Instruction] = field(default_factory=list)

    def find(self, keyword: str) -> list[Instruction]:
        return [item for item in self.instructions if item.keyword == keyword]


def _logical_lines(text: str) -> Iterator[tuple[int, str]]:
    """Yield (first line number, text) of each instruction.

    Docker drops comment lines and blank lines inside a continuation, and
    reads parser directives (`# escape=`) only before the first instruction.
    """
    escape = "\\"
    in_header = True
    parts: list[str] = []
    start = 0
    for number, raw in enumerate(text.splitlines(), start=1):
        stripped = raw.strip()
        if in_header:
            directive = _DIRECTIVE.match(stripped)
            if directive:
                if directive.group(1).lower() == "escape":
                    escape = directive.group(2)
                continue
            in_header = False

        if not stripped or stripped.startswith("#"):
            continue

        if not parts:
            start = number
        line = raw.rstrip()
        if line.endswith(escape):
            parts.append(line[: -len(escape)])
            continue

        parts.append(line)
        yield start, " ".join(part.strip() for part in parts)
        parts = []

    if parts:
        yield start, " ".join(part.strip() for part in parts)


def parse_dockerfile(text: str) -> list[Stage]:
    """Split a Dockerfile into stages of instructions.

    Raises ValueError on a heredoc, an instruction before the first FROM
    other than ARG, or a file without FROM.
    """
    stages: list[Stage] = []
    for number, line in _logical_lines(text):
        keyword, _, arguments = line.partition(" ")
        keyword = keyword.upper()
        arguments = arguments.strip()
        if _HEREDOC.search(arguments):
            raise ValueError(f"line {number}: heredocs are not supported")

        if keyword == "FROM":
            tokens = arguments.split()
            tokens = [token for token in tokens if not token.startswith("--")]
            name = None
            if len(tokens) == 3 and tokens[1].upper() == "AS":
                name = tokens[2]
            stages.append(Stage(base=tokens[0], name=name))
        elif stages:
            stages[-1].instructions.append(Instruction(keyword, arguments, number))
        elif keyword != "ARG":
            raise ValueError(f"line {number}: {keyword} before the first FROM")

    if not stages:
        raise ValueError("no FROM instruction found")
    return stages


def command_form(arguments: str) -> list[str]:
    """Return the argv of an exec-form (JSON) or shell-form command.

    As in Docker, text that starts with `[` but is not a JSON list of strings
    is shell form.
    """
    text = arguments.strip()
    if text.startswith("["):
        try:
            value = json.loads(text)
        except json.JSONDecodeError:
            value = None
        if isinstance(value, list) and all(isinstance(item, str) for item in value):
            return value
    return ["/bin/sh", "-c", text]


def parse_env(arguments: str) -> dict[str, str]:
    """Parse `ENV K=V K2="V 2"` or the legacy `ENV K value with spaces`."""
    tokens = shlex.split(arguments)
    if tokens and "=" not in tokens[0]:
        key, _, value = arguments.strip().partition(" ")
        return {key: " ".join(shlex.split(value))}
    pairs = {}
    for token in tokens:
        key, separator, value = token.partition("=")
        if not separator:
            raise ValueError(f"ENV {arguments!r}: {token!r} has no '='")
        pairs[key] = value
    return pairs


def parse_healthcheck(arguments: str) -> tuple[dict[str, str], list[str] | None]:
    """Return the options and the argv of a HEALTHCHECK (None for NONE)."""
    match = _HEALTHCHECK.match(arguments.strip())
    if match is None:
        raise ValueError(f"HEALTHCHECK {arguments!r}: expected CMD or NONE")
    options = {}
    for option in match.group(1).split():
        name, _, value = option.removeprefix("--").partition("=")
        options[name] = value
    if match.group(2) == "NONE":
        return options, None
    return options, command_form(match.group(3))


def shell_commands(argv: list[str]) -> list[list[str]]:
    """Split a RUN command into simple commands at `&&`, `||`, `;` and `|`."""
    if argv[:2] != ["/bin/sh", "-c"]:
        return [argv]
    lexer = shlex.shlex(argv[2], posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    commands: list[list[str]] = [[]]
    for token in lexer:
        if token in _SHELL_OPERATORS:
            commands.append([])
        else:
            commands[-1].append(token)
    return [command for command in commands if command]


def pip_install_arguments(command: list[str]) -> list[str] | None:
    """Return the arguments after `pip install`, or None for other commands.

    Accepts `pip`, `pip3`, a path to either, and `python -m pip`.
    """
    program = posixpath.basename(command[0]) if command else ""
    rest: list[str]
    if re.fullmatch(r"pip[0-9.]*", program):
        rest = command[1:]
    elif re.fullmatch(r"python[0-9.]*", program) and command[1:3] == ["-m", "pip"]:
        rest = command[3:]
    else:
        return None
    if not rest or rest[0] != "install":
        return None
    return rest[1:]


def final_env(stage: Stage) -> dict[str, str]:
    env: dict[str, str] = {}
    for instruction in stage.find("ENV"):
        env.update(parse_env(instruction.arguments))
    return env


# ---- .dockerignore ------------------------------------------------------


def _ignore_regex(pattern: str) -> re.Pattern[str]:
    """Translate a .dockerignore pattern (`*`, `?`, `**`) into a regex.

    NOTE: character classes (`[a-z]`) are matched literally here.
    """
    pieces = []
    index = 0
    while index < len(pattern):
        if pattern.startswith("**/", index):
            pieces.append("(?:.*/)?")
            index += 3
        elif pattern.startswith("**", index):
            pieces.append(".*")
            index += 2
        elif pattern[index] == "*":
            pieces.append("[^/]*")
            index += 1
        elif pattern[index] == "?":
            pieces.append("[^/]")
            index += 1
        else:
            pieces.append(re.escape(pattern[index]))
            index += 1
    return re.compile("".join(pieces) + r"\Z")


def dockerignore_matcher(text: str) -> Callable[[str], bool]:
    """Return a predicate: is this context-relative POSIX path excluded?

    The last matching pattern wins, `!` re-includes, and a path is matched
    through its parent directories too, as in Docker.
    """
    rules = []
    for raw in text.splitlines():
        pattern = raw.strip()
        if not pattern or pattern.startswith("#"):
            continue
        negate = pattern.startswith("!")
        pattern = posixpath.normpath(pattern.removeprefix("!").strip()).lstrip("/")
        rules.append((negate, _ignore_regex(pattern)))

    def excluded(path: str) -> bool:
        parts = path.split("/")
        candidates = ["/".join(parts[:end]) for end in range(1, len(parts) + 1)]
        result = False
        for negate, regex in rules:
            if any(regex.match(candidate) for candidate in candidates):
                result = not negate
        return result

    return excluded


# ---- replaying the build stage -----------------------------------------


@dataclass(frozen=True)
class CopyStep:
    sources: list[str]
    destination: str


def parse_copy(arguments: str) -> CopyStep | None:
    """Return a COPY from the build context, or None for `COPY --from=...`."""
    argv = command_form(arguments)
    if argv[:2] == ["/bin/sh", "-c"]:
        argv = shlex.split(argv[2])
    flags = [token for token in argv if token.startswith("--")]
    if any(flag.startswith("--from") for flag in flags):
        return None
    paths = [token for token in argv if not token.startswith("--")]
    return CopyStep(sources=paths[:-1], destination=paths[-1])


class BuildReplay:
    """Replay of one stage's COPY and `pip install` steps in a local directory.

    Container paths map under `rootfs`, and build-context files are copied
    there with .dockerignore applied. Other RUN commands are skipped, because
    the test creates its own virtual environment in place of the image's.
    """

    def __init__(self, context: Path, rootfs: Path, excluded: Callable[[str], bool]):
        self.context = context
        self.rootfs = rootfs
        self.excluded = excluded
        self.workdir = "/"

    def host_path(self, container_path: str) -> Path:
        absolute = posixpath.join(self.workdir, container_path)
        return self.rootfs / posixpath.normpath(absolute).lstrip("/")

    def copy(self, step: CopyStep) -> None:
        directory_target = step.destination.endswith("/") or len(step.sources) > 1
        target = self.host_path(step.destination)
        for source in step.sources:
            relative = posixpath.normpath(source).lstrip("/")
            if self.excluded(relative):
                raise AssertionError(f"COPY source {source!r} is in .dockerignore")
            origin = self.context / relative
            if not origin.exists():
                raise AssertionError(f"COPY source {source!r} is missing")

            if origin.is_dir():
                self._copy_tree(origin, relative, target)
            else:
                path = target / origin.name if directory_target else target
                path.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(origin, path)

    def _copy_tree(self, origin: Path, relative: str, target: Path) -> None:
        for path in sorted(origin.rglob("*")):
            inside = path.relative_to(origin).as_posix()
            if path.is_dir() or self.excluded(f"{relative}/{inside}"):
                continue
            destination = target / inside
            destination.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, destination)

    def pip_arguments(self, arguments: list[str]) -> list[str]:
        """Map absolute container paths that exist under rootfs to host paths."""
        mapped = []
        for argument in arguments:
            if argument.startswith("/") and self.host_path(argument).exists():
                mapped.append(str(self.host_path(argument)))
            else:
                mapped.append(argument)
        return mapped


def install_stage(stages: list[Stage]) -> Stage:
    for stage in stages:
        for instruction in stage.find("RUN"):
            commands = shell_commands(command_form(instruction.arguments))
            if any(pip_install_arguments(command) for command in commands):
                return stage
    raise AssertionError("no stage runs pip install")


def replay_install(
    stages: list[Stage], venv_python: Path, rootfs: Path, log: Path
) -> list[list[str]]:
    """Run the install stage's COPY and pip install steps, returning each pip argv."""
    stage = install_stage(stages)
    replay = BuildReplay(
        REPO_ROOT, rootfs, dockerignore_matcher(DOCKERIGNORE.read_text())
    )
    env = dict(os.environ)
    run_commands = []
    for instruction in stage.instructions:
        if instruction.keyword == "ADD":
            raise AssertionError(f"line {instruction.line}: ADD is not replayed")
        if instruction.keyword == "WORKDIR":
            replay.workdir = posixpath.join(replay.workdir, instruction.arguments)
            replay.host_path(".").mkdir(parents=True, exist_ok=True)
        elif instruction.keyword == "ENV":
            stage_env = parse_env(instruction.arguments)
            stage_env.pop("PATH", None)
            env.update(stage_env)
        elif instruction.keyword == "COPY":
            step = parse_copy(instruction.arguments)
            if step is not None:
                replay.copy(step)
        elif instruction.keyword == "RUN":
            for command in shell_commands(command_form(instruction.arguments)):
                arguments = pip_install_arguments(command)
                if arguments is None:
                    continue
                argv = [str(venv_python), "-m", "pip", "install"]
                argv += replay.pip_arguments(arguments)
                _run_logged(argv, replay.host_path("."), env, log)
                run_commands.append(argv)
    return run_commands


def _run_logged(argv: list[str], cwd: Path, env: dict[str, str], log: Path) -> None:
    with log.open("ab") as output:
        result = subprocess.run(
            argv,
            cwd=cwd,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
            timeout=PIP_INSTALL_TIMEOUT,
            check=False,
        )
    if result.returncode != 0:
        tail = log.read_text(errors="replace")[-4000:]
        pytest.fail(f"{argv} exited {result.returncode}:\n{tail}")


# ---- helpers ------------------------------------------------------------


def free_ports(count: int) -> list[int]:
    """Return `count` distinct loopback ports that were free a moment ago.

    Another process may bind one before the caller does, which is unlikely on
    a test machine but not prevented.
    """
    with ExitStack() as stack:
        sockets = []
        for _ in range(count):
            sock = stack.enter_context(socket.socket())
            sock.bind(("127.0.0.1", 0))
            sockets.append(sock)
        return [sock.getsockname()[1] for sock in sockets]


def http_get(url: str, timeout: float = 2.0) -> tuple[int, str]:
    request = urllib.request.Request(url)
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(request, timeout=timeout) as response:
        return response.status, response.read().decode()


@contextmanager
def running(
    argv: list[str], env: dict[str, str], cwd: Path, log: Path
) -> Iterator[subprocess.Popen[bytes]]:
    """Start `argv`, and on exit stop it by PID: SIGTERM, then SIGKILL if stuck."""
    with log.open("wb") as output:
        process = subprocess.Popen(
            argv, cwd=cwd, env=env, stdout=output, stderr=subprocess.STDOUT
        )
    try:
        yield process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=STOP_TIMEOUT)


def wait_for_health(
    process: subprocess.Popen[bytes], url: str, log: Path
) -> tuple[int, str]:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            output = log.read_text(errors="replace")
            pytest.fail(f"server exited {process.returncode}:\n{output}")
        try:
            return http_get(url)
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            time.sleep(0.2)
    pytest.fail(f"{url} did not answer within {START_TIMEOUT}s")


# ---- fixtures -----------------------------------------------------------


@pytest.fixture(scope="module")
def stages() -> list[Stage]:
    return parse_dockerfile(DOCKERFILE.read_text())


@pytest.fixture(scope="module")
def final_stage(stages: list[Stage]) -> Stage:
    return stages[-1]


# ---- parser -------------------------------------------------------------


def test_parser_joins_continuations_skips_comments() -> None:
    text = (
        "# syntax=docker/dockerfile:1\n"
        "FROM python:3.11-slim AS build\n"
        "RUN python -m venv /v \\\n"
        "    # a comment inside the continuation\n"
        "\n"
        "    && /v/bin/pip install \\\n"
        "       --no-cache-dir .\n"
        "FROM python:3.11-slim\n"
        'CMD ["faultguard", "serve"]\n'
    )

    parsed = parse_dockerfile(text)

    assert [stage.name for stage in parsed] == ["build", None]
    run = parsed[0].find("RUN")[0]
    assert run.line == 3
    assert run.arguments == "python -m venv /v && /v/bin/pip install --no-cache-dir ."
    commands = shell_commands(command_form(run.arguments))
    assert pip_install_arguments(commands[1]) == ["--no-cache-dir", "."]
    assert pip_install_arguments(commands[0]) is None
    assert command_form(parsed[1].find("CMD")[0].arguments) == ["faultguard", "serve"]


def test_parser_honours_escape_directive() -> None:
    text = "# escape=`\nFROM base\nRUN pip install `\n  .\n"

    run = parse_dockerfile(text)[0].find("RUN")[0]

    assert run.arguments == "pip install ."


def test_parser_rejects_heredoc() -> None:
    with pytest.raises(ValueError, match="heredoc"):
        parse_dockerfile("FROM base\nRUN <<EOF\necho hi\nEOF\n")


def test_parse_env_both_forms() -> None:
    assert parse_env('A=1 B="two words" C=x\\ y') == {
        "A": "1",
        "B": "two words",
        "C": "x y",
    }
    assert parse_env("LEGACY some value") == {"LEGACY": "some value"}


def test_parse_healthcheck_options_and_forms() -> None:
    options, argv = parse_healthcheck('--interval=5s --retries=3 CMD ["a", "b c"]')

    assert options == {"interval": "5s", "retries": "3"}
    assert argv == ["a", "b c"]
    assert parse_healthcheck("CMD true") == ({}, ["/bin/sh", "-c", "true"])
    assert parse_healthcheck("NONE") == ({}, None)


def test_dockerignore_matcher_cases() -> None:
    excluded = dockerignore_matcher("**/__pycache__\n*.db\ntests\n!tests/keep.py\n")

    assert excluded("__pycache__")
    assert excluded("faultguard_core/x/__pycache__/m.pyc")
    assert excluded("fallback.db")
    assert not excluded("data/fallback.db")
    assert excluded("tests/unit/test_x.py")
    assert not excluded("tests/keep.py")
    assert not excluded("faultguard_core/guard.py")


# ---- static checks of the Dockerfile -----------------------------------


def test_dockerfile_bases_are_python_slim(stages: list[Stage]) -> None:
    for stage in stages:
        assert stage.base == "python:3.11-slim"


def test_dockerfile_runs_as_non_root(final_stage: Stage) -> None:
    users = final_stage.find("USER")

    assert users, "the final stage declares no USER, so the container runs as root"
    user = users[-1].arguments.split(":")[0]
    assert user not in {"root", "0"}


def test_dockerfile_exposes_api_and_metrics(final_stage: Stage) -> None:
    ports = set()
    for instruction in final_stage.find("EXPOSE"):
        ports.update(int(port.split("/")[0]) for port in instruction.arguments.split())

    assert API_PORT in ports
    assert METRICS_PORT in ports


def test_dockerfile_env_binds_all_interfaces(final_stage: Stage) -> None:
    env = final_env(final_stage)

    assert env["FAULTGUARD_SERVER__HOST"] == "0.0.0.0"
    assert env["FAULTGUARD_METRICS__HOST"] == "0.0.0.0"
    assert env["FAULTGUARD_SERVER__PORT"] == str(API_PORT)
    assert env["FAULTGUARD_METRICS__PORT"] == str(METRICS_PORT)
    assert env["FAULTGUARD_STORAGE__PATH"] == f"{DATA_DIR}/fallback.db"


def test_dockerfile_workdir_is_data_dir(final_stage: Stage) -> None:
    workdirs = final_stage.find("WORKDIR")

    assert workdirs
    assert workdirs[-1].arguments == DATA_DIR


def test_dockerfile_healthcheck_probes_health(final_stage: Stage) -> None:
    checks = final_stage.find("HEALTHCHECK")

    assert checks, "the final stage declares no HEALTHCHECK"
    _, argv = parse_healthcheck(checks[-1].arguments)
    assert argv is not None
    assert argv[0] == "python"
    assert f"http://127.0.0.1:{API_PORT}/health" in " ".join(argv)


def test_dockerfile_cmd_is_serve(final_stage: Stage) -> None:
    commands = final_stage.find("CMD")

    assert commands
    assert command_form(commands[-1].arguments) == ["faultguard", "serve"]


def test_dockerfile_installs_without_extras(stages: list[Stage]) -> None:
    stage = install_stage(stages)
    installs = []
    for instruction in stage.find("RUN"):
        for command in shell_commands(command_form(instruction.arguments)):
            arguments = pip_install_arguments(command)
            if arguments is not None:
                installs.append(arguments)

    assert installs
    for arguments in installs:
        assert not any("[" in argument for argument in arguments), arguments
        assert "-e" not in arguments
        assert "--editable" not in arguments


# ---- replay: install and start ------------------------------------------


@pytest.mark.slow
@pytest.mark.timeout(PIP_INSTALL_TIMEOUT + 180)
def test_image_commands_serve_in_venv(
    stages: list[Stage], final_stage: Stage, tmp_path: Path
) -> None:
    venv = tmp_path / "venv"
    subprocess.run(
        [sys.executable, "-m", "venv", str(venv)],
        check=True,
        timeout=COMMAND_TIMEOUT * 4,
    )
    venv_bin = venv / "bin"
    pip_commands = replay_install(
        stages, venv_bin / "python", tmp_path / "rootfs", tmp_path / "pip.log"
    )
    assert pip_commands

    cmd = command_form(final_stage.find("CMD")[-1].arguments)
    program = shutil.which(cmd[0], path=str(venv_bin))
    assert program is not None, f"{cmd[0]!r} was not installed into {venv_bin}"

    api_port, metrics_port, closed_port = free_ports(3)
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("FAULTGUARD_")}
    env.update(final_env(final_stage))
    env["PATH"] = f"{venv_bin}{os.pathsep}{os.environ.get('PATH', '')}"
    env["FAULTGUARD_SERVER__HOST"] = "127.0.0.1"
    env["FAULTGUARD_METRICS__HOST"] = "127.0.0.1"
    env["FAULTGUARD_SERVER__PORT"] = str(api_port)
    env["FAULTGUARD_METRICS__PORT"] = str(metrics_port)
    env["FAULTGUARD_STORAGE__PATH"] = str(data_dir / "fallback.db")
    # urllib in the health check honours proxy variables, so exclude loopback.
    env["no_proxy"] = env["NO_PROXY"] = "127.0.0.1,localhost"

    _, health_argv = parse_healthcheck(final_stage.find("HEALTHCHECK")[-1].arguments)
    assert health_argv is not None
    image_url = f"127.0.0.1:{API_PORT}/"
    assert any(image_url in arg for arg in health_argv), health_argv

    def health_command(port: int) -> list[str]:
        argv = [arg.replace(image_url, f"127.0.0.1:{port}/") for arg in health_argv]
        argv[0] = shutil.which(argv[0], path=str(venv_bin)) or argv[0]
        return argv

    server_log = tmp_path / "server.log"
    with running([program, *cmd[1:]], env, data_dir, server_log) as process:
        status, body = wait_for_health(
            process, f"http://127.0.0.1:{api_port}/health", server_log
        )
        assert status == 200
        assert json.loads(body) == {"status": "ok"}

        healthy = subprocess.run(
            health_command(api_port),
            env=env,
            capture_output=True,
            timeout=COMMAND_TIMEOUT,
            check=False,
        )
        assert healthy.returncode == 0, healthy.stderr.decode()

        unhealthy = subprocess.run(
            health_command(closed_port),
            env=env,
            capture_output=True,
            timeout=COMMAND_TIMEOUT,
            check=False,
        )
        assert unhealthy.returncode == 1

        status, metrics = http_get(f"http://127.0.0.1:{metrics_port}/metrics")
        assert status == 200
        assert "# TYPE circuit_breaker_state gauge" in metrics
        assert "# TYPE circuit_breaker_latency_seconds histogram" in metrics

        process.send_signal(signal.SIGTERM)
        exit_code = process.wait(timeout=STOP_TIMEOUT)

    # uvicorn (0.55 checked) re-raises SIGTERM after a graceful shutdown, so
    # the exit status is -SIGTERM rather than 0.
    output = server_log.read_text(errors="replace")
    assert exit_code in {0, -signal.SIGTERM}, output
    assert "storage_closed" in output
    assert (data_dir / "fallback.db").exists()
