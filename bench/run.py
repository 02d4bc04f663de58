"""Benchmark POST /execute against calling the upstream directly, with wrk.

The harness starts the scripted upstream (`tests/upstream.py`) and one
`faultguard serve` process per faultguard scenario, all on 127.0.0.1. It then
runs wrk against each scenario in turn, `--repeat` rounds, rotating the order
every round, so all scenarios see the same machine load. It prints the median
req/s, p50 and p99 latency of each scenario and its req/s ratio to the
`direct` scenario, which is always measured as the baseline. It also prints
the CPU time that faultguard and the upstream spent per request, read from
/proc (Linux only).

Usage (from the repository root):

    python bench/run.py                       # all scenarios, 3 x 10 s each
    python bench/run.py --scenario execute-memory --repeat 5 --json out.json

Every run must return only successful responses. The benchmark stops with
exit status 1 when wrk's output has a "Non-2xx or 3xx responses" or "Socket
errors" line, or when faultguard's Prometheus counters show a failed attempt,
a retry or a fallback response. Each server and wrk process has a time limit,
so the run ends by itself, and the servers are stopped by PID on every exit
path.

To add a scenario, add a `Scenario` to `SCENARIOS`. A faultguard scenario sets
its configuration through `env`, which holds `FAULTGUARD_*` variables
(`__` between setting levels, as in `FAULTGUARD_RETRY__MAX_RETRIES=0`).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import re
import selectors
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import FrameType
from typing import IO, Any, TypeVar

from prometheus_client.parser import text_string_to_metric_families

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
UPSTREAM_SCRIPT = REPO_ROOT / "tests" / "upstream.py"
WRK_SCRIPT = BENCH_DIR / "execute.lua"

HOST = "127.0.0.1"
UPSTREAM_PATH = "/data"
EXECUTE_KEY = "bench"
BASELINE = "direct"

# Time limits of the steps that wait on another process, in seconds.
UPSTREAM_START_TIMEOUT = 15.0
HEALTH_TIMEOUT = 30.0
PREFLIGHT_TIMEOUT = 10.0
STOP_TIMEOUT = 5.0
# wrk gets this much time beyond --duration and --timeout before it is killed.
WRK_GRACE_SECONDS = 15.0

# Exit statuses: argparse uses 2 for invalid options.
EXIT_OK = 0
EXIT_FAILED = 1

T = TypeVar("T")


class BenchmarkError(Exception):
    """A benchmark step failed: a server did not start, or wrk saw errors."""


class WrkOutputError(BenchmarkError):
    """wrk's output lacks a line that the parser requires."""


# --------------------------------------------------------------------------
# Scenarios
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class Scenario:
    """One measured target.

    A faultguard scenario (`through_faultguard=True`) gets its own
    `faultguard serve` process, configured by the defaults plus `env`, and
    wrk POSTs to its /execute with bench/execute.lua. The direct scenario
    sends wrk GETs straight to the upstream and ignores `env`.
    """

    name: str
    description: str
    through_faultguard: bool
    env: Mapping[str, str] = field(default_factory=dict)


SCENARIOS: dict[str, Scenario] = {
    scenario.name: scenario
    for scenario in (
        Scenario(
            name=BASELINE,
            description="wrk GET straight at the upstream (baseline)",
            through_faultguard=False,
        ),
        Scenario(
            name="execute-sqlite",
            description="POST /execute, default settings (SQLite fallback store)",
            through_faultguard=True,
        ),
        Scenario(
            name="execute-memory",
            description="POST /execute, in-memory fallback store",
            through_faultguard=True,
            env={"FAULTGUARD_STORAGE__BACKEND": "memory"},
        ),
        # The two retry scenarios differ only in retry.max_retries, so their
        # req/s ratio is the cost of the retry machinery on successful calls
        # (retry budget accounting, backoff and retry rules). Both use a 10 s
        # attempt timeout, so a CPU-starved 2-core machine does not turn slow
        # calls into timeouts, which only the scenario without retries would
        # report as failures.
        Scenario(
            name="retries-on",
            description="POST /execute, memory store, retries enabled (3)",
            through_faultguard=True,
            env={
                "FAULTGUARD_STORAGE__BACKEND": "memory",
                "FAULTGUARD_RETRY__MAX_RETRIES": "3",
                "FAULTGUARD_REQUEST__TIMEOUT": "10s",
                "FAULTGUARD_REQUEST__DEADLINE": "30s",
            },
        ),
        Scenario(
            name="retries-off",
            description="POST /execute, memory store, retries disabled (0)",
            through_faultguard=True,
            env={
                "FAULTGUARD_STORAGE__BACKEND": "memory",
                "FAULTGUARD_RETRY__MAX_RETRIES": "0",
                "FAULTGUARD_REQUEST__TIMEOUT": "10s",
                "FAULTGUARD_REQUEST__DEADLINE": "30s",
            },
        ),
        # Storage cost: execute-sqlite is storage.durability = "sync" (one
        # fsync'd commit per stored response), this one commits in groups.
        Scenario(
            name="execute-sqlite-batched",
            description="POST /execute, SQLite store, batched durability (50 ms)",
            through_faultguard=True,
            env={"FAULTGUARD_STORAGE__DURABILITY": "batched"},
        ),
        # Transport cost: the same call through the faultguard-aiohttp plugin
        # (plugins/faultguard-aiohttp, installed by `nox -s bench`) instead of
        # the built-in httpx transport.
        Scenario(
            name="execute-aiohttp",
            description="POST /execute, memory store, aiohttp transport plugin",
            through_faultguard=True,
            env={
                "FAULTGUARD_STORAGE__BACKEND": "memory",
                "FAULTGUARD_TRANSPORT__NAME": "aiohttp",
            },
        ),
    )
}


def select_scenarios(names: Sequence[str] | None) -> list[Scenario]:
    """Return the scenarios named in `names`, in `SCENARIOS` order.

    None or an empty list selects every scenario. The baseline is always
    included because the ratios need it. Raises BenchmarkError on an unknown
    name.
    """
    if not names:
        return list(SCENARIOS.values())

    unknown = [name for name in names if name not in SCENARIOS]
    if unknown:
        raise BenchmarkError(
            f"unknown scenario {', '.join(unknown)}; choose from {', '.join(SCENARIOS)}"
        )

    wanted = {BASELINE, *names}
    return [scenario for name, scenario in SCENARIOS.items() if name in wanted]


def rotate(items: Sequence[T], offset: int) -> list[T]:
    """Return `items` rotated left by `offset`, so each round starts elsewhere."""
    if not items:
        return []

    shift = offset % len(items)
    return [*items[shift:], *items[:shift]]


# --------------------------------------------------------------------------
# wrk output
# --------------------------------------------------------------------------

# wrk prints times with the units of its format_time_us (us, ms, s, m, h).
_TIME_UNITS_MS = {
    "us": 0.001,
    "ms": 1.0,
    "s": 1000.0,
    "m": 60_000.0,
    "h": 3_600_000.0,
}

_NUMBER = r"(\d+(?:\.\d+)?)"
_TIME = _NUMBER + r"(us|ms|s|m|h)"
_PERCENTILE_LINE = re.compile(r"^\s*(\d+(?:\.\d+)?)%\s+" + _TIME + r"\s*$", re.M)
_REQUESTS_LINE = re.compile(r"^\s*(\d+) requests in " + _TIME + r",", re.M)
_RATE_LINE = re.compile(r"^Requests/sec:\s+" + _NUMBER + r"\s*$", re.M)
_STATUS_LINE = re.compile(r"^\s*Non-2xx or 3xx responses:\s+(\d+)\s*$", re.M)
_SOCKET_LINE = re.compile(
    r"^\s*Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)\s*$",
    re.M,
)


def parse_time_ms(number: str, unit: str) -> float:
    """Convert a wrk time such as ("171.00", "us") to milliseconds.

    Raises WrkOutputError on a unit that wrk does not print.
    """
    try:
        scale = _TIME_UNITS_MS[unit]
    except KeyError:
        raise WrkOutputError(f"unknown wrk time unit {unit!r}") from None

    return float(number) * scale


@dataclass(frozen=True)
class WrkResult:
    """The figures of one wrk run.

    `latency_ms` maps a percentile (50.0, 75.0, 90.0, 99.0) to milliseconds.
    `error_responses` is wrk's "Non-2xx or 3xx responses" count. wrk 4.x
    increments it only for a status above 399, despite the wording, so a 3xx
    response is not counted. `socket_errors` maps connect, read, write and
    timeout to their counts; wrk prints them only when one is non-zero. wrk
    4.x counts a "timeout" when a response arrives later than --timeout and
    leaves that response out of the latency percentiles.
    """

    requests: int
    duration_s: float
    requests_per_second: float
    latency_ms: dict[float, float]
    error_responses: int
    socket_errors: dict[str, int]

    @property
    def p50_ms(self) -> float:
        """Median latency in milliseconds."""
        return self.latency_ms[50.0]

    @property
    def p99_ms(self) -> float:
        """99th percentile latency in milliseconds."""
        return self.latency_ms[99.0]

    def problems(self) -> list[str]:
        """Describe why this run does not count as all-successful (empty if it does)."""
        found = []
        if self.requests == 0:
            found.append("wrk completed no requests")

        if self.error_responses:
            found.append(
                f"{self.error_responses} of {self.requests} responses had a "
                "status of 400 or above"
            )

        # A timeout also fails the run, because the percentiles would omit
        # the slowest responses and understate p99.
        failed_sockets = {kind: n for kind, n in self.socket_errors.items() if n}
        if failed_sockets:
            listed = ", ".join(f"{kind} {n}" for kind, n in failed_sockets.items())
            found.append(f"socket errors: {listed}")

        return found


def parse_wrk_output(text: str) -> WrkResult:
    """Parse the stdout of `wrk --latency` into a WrkResult.

    Requires the "Latency Distribution" percentiles 50% and 99%, the
    "N requests in T" line and "Requests/sec". Missing "Non-2xx or 3xx
    responses" and "Socket errors" lines mean zero, as wrk omits them then.
    Raises WrkOutputError when a required line is missing.
    """
    latency_ms = {
        float(match.group(1)): parse_time_ms(match.group(2), match.group(3))
        for match in _PERCENTILE_LINE.finditer(text)
    }
    for percentile in (50.0, 99.0):
        if percentile not in latency_ms:
            raise WrkOutputError(
                f"wrk output has no {percentile:g}% latency line; "
                "was wrk run with --latency?"
            )

    requests_match = _REQUESTS_LINE.search(text)
    if requests_match is None:
        raise WrkOutputError("wrk output has no 'N requests in T' line")

    rate_match = _RATE_LINE.search(text)
    if rate_match is None:
        raise WrkOutputError("wrk output has no 'Requests/sec:' line")

    status_match = _STATUS_LINE.search(text)
    error_responses = int(status_match.group(1)) if status_match else 0

    socket_match = _SOCKET_LINE.search(text)
    socket_counts = socket_match.groups() if socket_match else ("0",) * 4
    socket_errors = dict(
        zip(
            ("connect", "read", "write", "timeout"),
            map(int, socket_counts),
            strict=True,
        )
    )

    duration_ms = parse_time_ms(requests_match.group(2), requests_match.group(3))
    return WrkResult(
        requests=int(requests_match.group(1)),
        duration_s=duration_ms / 1000.0,
        requests_per_second=float(rate_match.group(1)),
        latency_ms=latency_ms,
        error_responses=error_responses,
        socket_errors=socket_errors,
    )


# --------------------------------------------------------------------------
# Processes
# --------------------------------------------------------------------------


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that was free a moment ago.

    NOTE: another process can take the port between this call and the
    server's bind. The server then fails to start and the harness reports it.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((HOST, 0))
        return int(probe.getsockname()[1])


@dataclass
class Server:
    """A server process started by this harness, with its log file."""

    name: str
    process: subprocess.Popen[bytes]
    log_path: Path
    port: int = 0
    metrics_url: str | None = None

    @property
    def base_url(self) -> str:
        """URL of the server root, e.g. "http://127.0.0.1:41234"."""
        return f"http://{HOST}:{self.port}"

    def log_tail(self, lines: int = 30) -> str:
        """Return the last `lines` lines of the server's stderr log."""
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError as exc:
            return f"(log {self.log_path} unreadable: {exc})"

        return "\n".join(text.splitlines()[-lines:])


class ServerGroup:
    """The servers started by one benchmark run; `stop_all` ends them by PID."""

    def __init__(self, work_dir: Path) -> None:
        self.work_dir = work_dir
        self.servers: list[Server] = []

    def start(
        self,
        name: str,
        command: Sequence[str],
        env: Mapping[str, str],
        stdout: int | IO[bytes],
    ) -> Server:
        """Start `command` with stderr in `<work_dir>/<name>.log`."""
        log_path = self.work_dir / f"{name}.log"
        with log_path.open("wb") as log:
            process = subprocess.Popen(
                list(command),
                cwd=REPO_ROOT,
                env=dict(env),
                stdin=subprocess.DEVNULL,
                stdout=stdout,
                stderr=log,
            )

        server = Server(name=name, process=process, log_path=log_path)
        self.servers.append(server)
        return server

    def stop_all(self) -> None:
        """Send SIGTERM to each server by PID, then SIGKILL any still running.

        Returns within about STOP_TIMEOUT seconds per server.
        """
        for server in self.servers:
            if server.process.poll() is None:
                server.process.terminate()

        for server in self.servers:
            try:
                server.process.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                print(
                    f"warning: {server.name} (pid {server.process.pid}) ignored "
                    "SIGTERM; sending SIGKILL",
                    file=sys.stderr,
                )
                server.process.kill()
                server.process.wait(timeout=STOP_TIMEOUT)

            if server.process.stdout is not None:
                server.process.stdout.close()


def clean_environment() -> dict[str, str]:
    """Return os.environ without FAULTGUARD_* variables.

    The shell's faultguard settings would otherwise change what a scenario
    measures. Scenarios set their configuration through `Scenario.env`.
    """
    return {
        name: value
        for name, value in os.environ.items()
        if not name.startswith("FAULTGUARD_")
    }


def start_upstream(group: ServerGroup) -> Server:
    """Start tests/upstream.py on a free port and read the port it prints."""
    if not UPSTREAM_SCRIPT.is_file():
        raise BenchmarkError(f"upstream server not found at {UPSTREAM_SCRIPT}")

    command = [sys.executable, str(UPSTREAM_SCRIPT), "--port", "0", "--print-port"]
    server = group.start("upstream", command, clean_environment(), subprocess.PIPE)
    first_line = read_line_with_timeout(server, UPSTREAM_START_TIMEOUT)
    try:
        server.port = int(first_line)
    except ValueError:
        raise BenchmarkError(
            f"upstream printed {first_line!r} instead of its port; "
            f"log:\n{server.log_tail()}"
        ) from None

    return server


def read_line_with_timeout(server: Server, timeout: float) -> str:
    """Read the first stdout line of `server`, or raise BenchmarkError on timeout."""
    stream = server.process.stdout
    if stream is None:
        raise BenchmarkError(f"{server.name} has no stdout pipe")

    with selectors.DefaultSelector() as selector:
        selector.register(stream, selectors.EVENT_READ)
        if not selector.select(timeout):
            raise BenchmarkError(
                f"{server.name} printed no port within {timeout:g} s; "
                f"log:\n{server.log_tail()}"
            )

    line = stream.readline().decode("utf-8", errors="replace").strip()
    if not line:
        raise BenchmarkError(
            f"{server.name} exited before printing its port "
            f"(exit status {server.process.wait(timeout=STOP_TIMEOUT)}); "
            f"log:\n{server.log_tail()}"
        )

    return line


def faultguard_command() -> list[str]:
    """Return the `faultguard` command of the interpreter running this script.

    Uses the console script next to sys.executable (a venv's bin directory),
    else `python -m faultguard_core.cli`, so the benchmark never picks up
    another installation from PATH.
    """
    script = Path(sys.executable).parent / "faultguard"
    if script.is_file():
        return [str(script)]

    return [sys.executable, "-m", "faultguard_core.cli"]


def start_faultguard(group: ServerGroup, scenario: Scenario) -> Server:
    """Start `faultguard serve` for `scenario` and wait until /health returns 200."""
    port = free_port()
    env = clean_environment()
    env.update(
        {
            "FAULTGUARD_STORAGE__PATH": str(group.work_dir / f"{scenario.name}.db"),
            "FAULTGUARD_METRICS__HOST": HOST,
            "FAULTGUARD_METRICS__PORT": str(free_port()),
        }
    )
    env.update(scenario.env)

    command = [
        *faultguard_command(),
        "serve",
        "--host",
        HOST,
        "--port",
        str(port),
        "--log-level",
        "warning",
    ]
    server = group.start(
        f"faultguard-{scenario.name}", command, env, subprocess.DEVNULL
    )
    server.port = port
    server.metrics_url = prometheus_url(env)
    wait_for_health(server, HEALTH_TIMEOUT)
    return server


def prometheus_url(env: Mapping[str, str]) -> str | None:
    """Return the Prometheus URL that `env` configures, or None if it is off.

    A scenario turns the listener off with FAULTGUARD_METRICS__PORT=0 or with a
    FAULTGUARD_METRICS__EXPORTERS list that lacks "prometheus".
    """
    port = env.get("FAULTGUARD_METRICS__PORT", "0")
    exporters = env.get("FAULTGUARD_METRICS__EXPORTERS", "prometheus")
    if port == "0" or "prometheus" not in exporters:
        return None

    return f"http://{HOST}:{port}/metrics"


def wait_for_health(server: Server, timeout: float) -> None:
    """Poll GET /health until it returns 200; raise BenchmarkError after `timeout`."""
    deadline = time.monotonic() + timeout
    last_error = "no attempt"
    while time.monotonic() < deadline:
        status = server.process.poll()
        if status is not None:
            raise BenchmarkError(
                f"{server.name} exited with status {status} before it was "
                f"healthy; log:\n{server.log_tail()}"
            )

        try:
            with urllib.request.urlopen(
                server.base_url + "/health", timeout=2
            ) as reply:
                if reply.status == 200:
                    return

                last_error = f"status {reply.status}"
        except OSError as exc:  # URLError and HTTPError are OSErrors
            last_error = str(exc)

        time.sleep(0.1)

    raise BenchmarkError(
        f"{server.name} was not healthy within {timeout:g} s "
        f"(last error: {last_error}); log:\n{server.log_tail()}"
    )


# --------------------------------------------------------------------------
# Targets and preflight checks
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    """Target of one scenario: the URL that wrk requests and the PIDs serving it.

    `faultguard_pid` is None for the direct scenario. `metrics_url` is None
    for the direct scenario and when the scenario turns Prometheus off.
    """

    scenario: Scenario
    url: str
    upstream_pid: int
    faultguard_pid: int | None = None
    metrics_url: str | None = None
    script_args: tuple[str, ...] = ()


def preflight(target: Target) -> None:
    """Send one request like wrk's and check the reply is a 200 from upstream.

    wrk only counts statuses above 399, so this check catches a 3xx or a
    fallback response that wrk would count as success.
    """
    if target.scenario.through_faultguard:
        upstream_url = target.script_args[0]
        body = json.dumps({"key": EXECUTE_KEY, "url": upstream_url}).encode()
        request = urllib.request.Request(
            target.url,
            data=body,
            method="POST",
            headers={"Content-Type": "application/json"},
        )
    else:
        request = urllib.request.Request(target.url, method="GET")

    try:
        with urllib.request.urlopen(request, timeout=PREFLIGHT_TIMEOUT) as reply:
            status = reply.status
            payload = reply.read()
    except urllib.error.HTTPError as exc:
        raise BenchmarkError(
            f"{target.scenario.name}: preflight request to {target.url} returned "
            f"{exc.code}: {exc.read()[:500]!r}"
        ) from exc
    except OSError as exc:
        raise BenchmarkError(
            f"{target.scenario.name}: preflight request to {target.url} failed: {exc}"
        ) from exc

    if status != 200:
        raise BenchmarkError(
            f"{target.scenario.name}: preflight returned {status}, expected 200"
        )

    if target.scenario.through_faultguard:
        try:
            envelope = json.loads(payload)
        except ValueError as exc:
            raise BenchmarkError(
                f"{target.scenario.name}: /execute returned a body that is not "
                f"JSON: {payload[:500]!r}"
            ) from exc

        if envelope.get("source") != "upstream" or envelope.get("status_code") != 200:
            raise BenchmarkError(
                f"{target.scenario.name}: /execute did not deliver a 200 from the "
                f"upstream: {envelope!r}"
            )


# faultguard counters that stay at 0 while every call succeeds upstream on its
# first attempt.
_ZERO_COUNTERS = (
    "circuit_breaker_failures_total",
    "circuit_breaker_retries_total",
    "circuit_breaker_fallback_success_total",
)
_CALLS_COUNTER = "circuit_breaker_calls_total"


def unexpected_outcomes(exposition: str, max_cancelled: float) -> list[str]:
    """List what in faultguard's Prometheus text shows other than clean calls.

    A clean call has outcome "success" and source "upstream", and no failure,
    retry or fallback happened. wrk counts only statuses above 399 as errors,
    so this check also catches a 200 served from the fallback store. The
    list is empty when all calls were clean and at least one call was counted.

    Calls with outcome "cancelled" are expected up to `max_cancelled`. wrk
    closes its connections when a run ends, so faultguard cancels the calls
    still in flight, at most one per connection per wrk run.
    """
    found = []
    clean_calls = 0.0
    cancelled_calls = 0.0
    for family in text_string_to_metric_families(exposition):
        for sample in family.samples:
            if sample.name in _ZERO_COUNTERS and sample.value:
                found.append(f"{sample.name}{sample.labels} = {sample.value:g}")
                continue

            if sample.name != _CALLS_COUNTER:
                continue

            labels = sample.labels
            outcome = labels.get("outcome")
            if outcome == "success" and labels.get("source") == "upstream":
                clean_calls += sample.value
            elif outcome == "cancelled":
                cancelled_calls += sample.value
            elif sample.value:
                found.append(f"{sample.name}{labels} = {sample.value:g}")

    if cancelled_calls > max_cancelled:
        found.append(
            f"{cancelled_calls:g} cancelled calls, more than the {max_cancelled:g} "
            "that ending wrk runs can explain"
        )

    if not clean_calls and not found:
        found.append(f"no {_CALLS_COUNTER} sample with a successful upstream call")

    return found


def check_metrics(scenario_name: str, metrics_url: str, max_cancelled: int) -> None:
    """Raise BenchmarkError unless faultguard's metrics show only clean calls.

    `max_cancelled` is the number of calls that ending wrk runs may have
    cancelled: connections times wrk runs so far against this faultguard.
    """
    try:
        with urllib.request.urlopen(metrics_url, timeout=PREFLIGHT_TIMEOUT) as reply:
            exposition = reply.read().decode("utf-8", errors="replace")
    except OSError as exc:
        raise BenchmarkError(
            f"{scenario_name}: reading metrics from {metrics_url} failed: {exc}"
        ) from exc

    found = unexpected_outcomes(exposition, max_cancelled)
    if found:
        raise BenchmarkError(
            f"{scenario_name}: not every call reached the upstream on its first "
            f"attempt: {'; '.join(found)}"
        )


# --------------------------------------------------------------------------
# wrk
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class WrkSettings:
    """wrk options shared by every run."""

    duration_s: int
    connections: int
    threads: int
    timeout_s: int


def wrk_command(target: Target, settings: WrkSettings, duration_s: int) -> list[str]:
    """Build the wrk command line for one run of `target`."""
    command = [
        "wrk",
        "--threads",
        str(settings.threads),
        "--connections",
        str(settings.connections),
        "--duration",
        f"{duration_s}s",
        "--timeout",
        f"{settings.timeout_s}s",
        "--latency",
    ]
    if target.scenario.through_faultguard:
        command += ["--script", str(WRK_SCRIPT)]

    command.append(target.url)
    if target.script_args:
        command += ["--", *target.script_args]

    return command


def run_wrk(target: Target, settings: WrkSettings, duration_s: int) -> WrkResult:
    """Run wrk once against `target` and return its parsed, error-free result.

    Raises BenchmarkError when wrk fails, runs over its time limit, or reports
    error responses or socket errors. The message includes wrk's output.
    """
    command = wrk_command(target, settings, duration_s)
    limit = duration_s + settings.timeout_s + WRK_GRACE_SECONDS
    try:
        completed = subprocess.run(
            command,
            capture_output=True,
            text=True,
            timeout=limit,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise BenchmarkError(
            f"{target.scenario.name}: wrk ran over its {limit:g} s limit and was killed"
        ) from exc

    output = completed.stdout + completed.stderr
    if completed.returncode != 0:
        raise BenchmarkError(
            f"{target.scenario.name}: wrk exited with status "
            f"{completed.returncode}:\n{output}"
        )

    result = parse_wrk_output(completed.stdout)
    problems = result.problems()
    if problems:
        raise BenchmarkError(
            f"{target.scenario.name}: not all responses were successful "
            f"({'; '.join(problems)}). wrk output:\n{output}"
        )

    return result


# --------------------------------------------------------------------------
# Results
# --------------------------------------------------------------------------


def process_cpu_seconds(pid: int) -> float:
    """Return the user plus system CPU time of `pid`, all threads, in seconds.

    Reads utime and stime from /proc/<pid>/stat, so it works on Linux only.
    The resolution is one clock tick (10 ms at the usual 100 Hz).
    """
    text = Path(f"/proc/{pid}/stat").read_text()

    # The command name in field 2 may contain spaces, so split after its ")".
    # The remaining fields start at field 3, so utime (14) and stime (15) are
    # at indexes 11 and 12.
    fields = text.rsplit(")", 1)[1].split()
    ticks = int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Run:
    """One measured wrk run and the CPU time the servers spent during it.

    `faultguard_cpu_s` is None for the direct scenario. The CPU times cover
    the whole wrk process lifetime, including its connection setup, which is
    a few milliseconds longer than the window that wrk counts requests in.
    """

    wrk: WrkResult
    upstream_cpu_s: float
    faultguard_cpu_s: float | None

    @property
    def upstream_cpu_ms_per_request(self) -> float:
        """Upstream CPU milliseconds per completed request."""
        return 1000.0 * self.upstream_cpu_s / self.wrk.requests

    @property
    def faultguard_cpu_ms_per_request(self) -> float | None:
        """faultguard CPU milliseconds per completed request (None if direct)."""
        if self.faultguard_cpu_s is None:
            return None

        return 1000.0 * self.faultguard_cpu_s / self.wrk.requests


def measure_run(target: Target, settings: WrkSettings, earlier_runs: int) -> Run:
    """Run wrk once against `target` and record the servers' CPU time.

    `earlier_runs` counts the wrk runs, warmup included, that `target`'s
    faultguard served before this one. The metrics check needs it.
    """
    upstream_before = process_cpu_seconds(target.upstream_pid)
    faultguard_before = None
    if target.faultguard_pid is not None:
        faultguard_before = process_cpu_seconds(target.faultguard_pid)

    result = run_wrk(target, settings, settings.duration_s)

    upstream_cpu = process_cpu_seconds(target.upstream_pid) - upstream_before
    faultguard_cpu = None
    if target.faultguard_pid is not None and faultguard_before is not None:
        faultguard_cpu = process_cpu_seconds(target.faultguard_pid) - faultguard_before

    if target.metrics_url is not None:
        max_cancelled = settings.connections * (earlier_runs + 1)
        check_metrics(target.scenario.name, target.metrics_url, max_cancelled)

    return Run(result, upstream_cpu, faultguard_cpu)


@dataclass
class ScenarioResult:
    """All measured runs of one scenario, in round order."""

    scenario: Scenario
    runs: list[Run] = field(default_factory=list)

    @property
    def median_rate(self) -> float:
        """Median req/s over the runs."""
        return statistics.median(run.wrk.requests_per_second for run in self.runs)

    @property
    def median_p50_ms(self) -> float:
        """Median over the runs of each run's p50 latency."""
        return statistics.median(run.wrk.p50_ms for run in self.runs)

    @property
    def median_p99_ms(self) -> float:
        """Median over the runs of each run's p99 latency."""
        return statistics.median(run.wrk.p99_ms for run in self.runs)

    @property
    def median_upstream_cpu_ms(self) -> float:
        """Median upstream CPU milliseconds per request."""
        return statistics.median(run.upstream_cpu_ms_per_request for run in self.runs)

    @property
    def median_faultguard_cpu_ms(self) -> float | None:
        """Median faultguard CPU milliseconds per request (None if direct)."""
        values = [run.faultguard_cpu_ms_per_request for run in self.runs]
        measured = [value for value in values if value is not None]
        if not measured:
            return None

        return statistics.median(measured)


def paired_ratio(result: ScenarioResult, baseline: ScenarioResult) -> float:
    """Return the median over rounds of result req/s / baseline req/s.

    Each round's runs follow each other within seconds, so pairing them by
    round cancels most of the machine's slow drift in load.
    """
    ratios = [
        run.wrk.requests_per_second / base.wrk.requests_per_second
        for run, base in zip(result.runs, baseline.runs, strict=True)
    ]
    return statistics.median(ratios)


def format_table(results: Mapping[str, ScenarioResult]) -> str:
    """Render the median figures of every scenario as a Markdown table."""
    baseline = results[BASELINE]
    header = (
        "| scenario | req/s (median) | req/s (min-max) | p50 ms | p99 ms "
        "| req/s ratio to direct | faultguard CPU ms/req | upstream CPU ms/req |"
    )
    lines = [header, "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for name, result in results.items():
        rates = [run.wrk.requests_per_second for run in result.runs]
        ratio = paired_ratio(result, baseline)
        faultguard_cpu = result.median_faultguard_cpu_ms
        faultguard_text = "-" if faultguard_cpu is None else f"{faultguard_cpu:.2f}"
        lines.append(
            f"| {name} | {result.median_rate:,.0f} "
            f"| {min(rates):,.0f}-{max(rates):,.0f} "
            f"| {result.median_p50_ms:.2f} | {result.median_p99_ms:.2f} "
            f"| {ratio:.3f} | {faultguard_text} "
            f"| {result.median_upstream_cpu_ms:.3f} |"
        )

    return "\n".join(lines)


def results_document(
    results: Mapping[str, ScenarioResult],
    settings: WrkSettings,
    repeat: int,
    machine: Mapping[str, Any],
) -> dict[str, Any]:
    """Build the JSON document that `--json` writes."""
    baseline = results[BASELINE]
    scenarios = {}
    for name, result in results.items():
        scenarios[name] = {
            "description": result.scenario.description,
            "through_faultguard": result.scenario.through_faultguard,
            "env": dict(result.scenario.env),
            "median_requests_per_second": result.median_rate,
            "median_p50_ms": result.median_p50_ms,
            "median_p99_ms": result.median_p99_ms,
            "ratio_to_direct": paired_ratio(result, baseline),
            "median_faultguard_cpu_ms_per_request": result.median_faultguard_cpu_ms,
            "median_upstream_cpu_ms_per_request": result.median_upstream_cpu_ms,
            "runs": [run_document(run) for run in result.runs],
        }

    return {
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": dict(machine),
        "settings": {**asdict(settings), "repeat": repeat},
        "scenarios": scenarios,
    }


def run_document(run: Run) -> dict[str, Any]:
    """Return one run as JSON-ready data, percentiles keyed as "50", "99"."""
    document = asdict(run.wrk)
    document["latency_ms"] = {f"{p:g}": v for p, v in run.wrk.latency_ms.items()}
    document["upstream_cpu_s"] = run.upstream_cpu_s
    document["faultguard_cpu_s"] = run.faultguard_cpu_s
    return document


# --------------------------------------------------------------------------
# Machine description
# --------------------------------------------------------------------------


def describe_machine() -> dict[str, Any]:
    """Collect the CPU count, CPU model, Python and wrk versions and the load.

    `load_average_1m` is the 1-minute load average before the servers start.
    A value near or above the CPU count means other work shared the machine.
    """
    return {
        "cpus": len(os.sched_getaffinity(0)),
        "cpu_model": cpu_model(),
        "python": platform.python_version(),
        "wrk": wrk_version(),
        "platform": platform.platform(),
        "load_average_1m": os.getloadavg()[0],
    }


def cpu_model() -> str:
    """Return the first "model name" of /proc/cpuinfo, or "unknown"."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return "unknown"

    for line in text.splitlines():
        name, _, value = line.partition(":")
        if name.strip() == "model name":
            return value.strip()

    return "unknown"


def wrk_version() -> str:
    """Return the first line of `wrk --version` (wrk exits 1 after printing it)."""
    completed = subprocess.run(
        ["wrk", "--version"], capture_output=True, text=True, timeout=10, check=False
    )
    lines = completed.stdout.splitlines()
    if not lines:
        return "unknown"

    return lines[0].replace("Copyright (C) 2012 Will Glozer", "").strip()


# --------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """Parse the command line; argparse exits with status 2 on invalid options."""
    parser = argparse.ArgumentParser(
        description=(
            "Measure faultguard's POST /execute against the upstream called "
            "directly, with wrk, on 127.0.0.1."
        ),
        epilog="Scenarios: "
        + "; ".join(f"{s.name}: {s.description}" for s in SCENARIOS.values()),
    )
    parser.add_argument(
        "--scenario",
        action="append",
        metavar="NAME",
        help=(
            "measure this scenario; repeat the option for several "
            f"(default: all). '{BASELINE}' is always measured for the ratios."
        ),
    )
    parser.add_argument(
        "--repeat",
        type=positive_int,
        default=3,
        help="measured runs per scenario (default: 3)",
    )
    parser.add_argument(
        "--duration",
        type=positive_int,
        default=10,
        help="seconds per wrk run (default: 10)",
    )
    parser.add_argument(
        "--connections",
        type=positive_int,
        default=32,
        help="open connections per wrk run (default: 32)",
    )
    parser.add_argument(
        "--threads",
        type=positive_int,
        default=2,
        help="wrk threads (default: 2)",
    )
    parser.add_argument(
        "--timeout",
        type=positive_int,
        default=10,
        help=(
            "seconds after which wrk counts a response as timed out and leaves "
            "it out of the percentiles; any timeout fails the benchmark "
            "(default: 10)"
        ),
    )
    parser.add_argument(
        "--warmup",
        type=non_negative_int,
        default=2,
        help="seconds of unmeasured wrk load per scenario before round 1 (default: 2)",
    )
    parser.add_argument(
        "--json",
        type=Path,
        metavar="FILE",
        help="also write the results, every run included, to FILE as JSON",
    )
    args = parser.parse_args(argv)
    if args.connections < args.threads:
        parser.error(
            f"--connections ({args.connections}) must be at least --threads "
            f"({args.threads}), as wrk requires"
        )

    return args


def positive_int(text: str) -> int:
    """argparse type: an integer of at least 1."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")

    return value


def non_negative_int(text: str) -> int:
    """argparse type: an integer of at least 0."""
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be at least 0, got {value}")

    return value


@contextlib.contextmanager
def sigterm_as_exit() -> Iterator[None]:
    """Turn SIGTERM into SystemExit while active, so `finally` blocks run."""

    def handle(signum: int, frame: FrameType | None) -> None:
        raise SystemExit(128 + signum)

    previous = signal.signal(signal.SIGTERM, handle)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def start_targets(group: ServerGroup, scenarios: Sequence[Scenario]) -> list[Target]:
    """Start the upstream and one faultguard per faultguard scenario."""
    upstream = start_upstream(group)
    upstream_url = upstream.base_url + UPSTREAM_PATH
    print(f"upstream: {upstream_url} (pid {upstream.process.pid})", flush=True)

    targets = []
    for scenario in scenarios:
        if not scenario.through_faultguard:
            targets.append(Target(scenario, upstream_url, upstream.process.pid))
            continue

        server = start_faultguard(group, scenario)
        if server.metrics_url is None:
            print(
                f"{scenario.name}: Prometheus is off, so the harness cannot "
                "check that every call reached the upstream on its first attempt",
                flush=True,
            )

        print(
            f"{scenario.name}: faultguard on {server.base_url} "
            f"(pid {server.process.pid}, env {dict(scenario.env) or 'defaults'})",
            flush=True,
        )
        targets.append(
            Target(
                scenario,
                server.base_url + "/execute",
                upstream_pid=upstream.process.pid,
                faultguard_pid=server.process.pid,
                metrics_url=server.metrics_url,
                script_args=(upstream_url, EXECUTE_KEY),
            )
        )

    return targets


def measure(
    targets: Sequence[Target], settings: WrkSettings, repeat: int, warmup_s: int
) -> dict[str, ScenarioResult]:
    """Warm up every target, then run `repeat` rounds of one wrk run per target."""
    for target in targets:
        preflight(target)
        if warmup_s:
            run_wrk(target, settings, warmup_s)

    warmup_runs = 1 if warmup_s else 0
    results = {
        target.scenario.name: ScenarioResult(target.scenario) for target in targets
    }
    for round_index in range(repeat):
        for target in rotate(targets, round_index):
            run = measure_run(target, settings, warmup_runs + round_index)
            results[target.scenario.name].runs.append(run)
            print(
                f"round {round_index + 1}/{repeat} {target.scenario.name:16} "
                f"{run.wrk.requests_per_second:10,.0f} req/s  "
                f"p50 {run.wrk.p50_ms:8.2f} ms  p99 {run.wrk.p99_ms:8.2f} ms",
                flush=True,
            )

    return results


def planned_seconds(args: argparse.Namespace, count: int) -> float:
    """Return the upper bound of the run time in seconds, from the step limits."""
    overrun = float(args.timeout) + WRK_GRACE_SECONDS
    runs_per_scenario = int(args.repeat) + (1 if args.warmup else 0)
    load = int(args.repeat) * int(args.duration) + int(args.warmup)
    wrk_time = count * (load + runs_per_scenario * overrun)
    # One preflight per scenario and one metrics read per measured run.
    checks = count * (1 + int(args.repeat)) * PREFLIGHT_TIMEOUT
    startup = UPSTREAM_START_TIMEOUT + count * HEALTH_TIMEOUT + checks
    shutdown = (count + 1) * 2 * STOP_TIMEOUT
    return wrk_time + startup + shutdown


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark and print the table; returns the exit status."""
    args = parse_args(argv)
    if shutil.which("wrk") is None:
        print(
            "error: wrk not found on PATH; install it (apt-get install wrk)",
            file=sys.stderr,
        )
        return EXIT_FAILED

    try:
        scenarios = select_scenarios(args.scenario)
    except BenchmarkError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILED

    settings = WrkSettings(args.duration, args.connections, args.threads, args.timeout)
    machine = describe_machine()
    load_seconds = len(scenarios) * (args.repeat * args.duration + args.warmup)
    max_seconds = planned_seconds(args, len(scenarios))
    print(
        f"machine: {machine['cpus']} CPUs, {machine['cpu_model']}, "
        f"Python {machine['python']}, {machine['wrk']}, "
        f"load average {machine['load_average_1m']:.2f}\n"
        f"wrk: {args.threads} threads, {args.connections} connections, "
        f"{args.duration} s x {args.repeat} rounds per scenario; "
        f"about {load_seconds} s of load, at most {max_seconds:.0f} s",
        flush=True,
    )

    with (
        sigterm_as_exit(),
        tempfile.TemporaryDirectory(prefix="faultguard-bench-") as work_dir,
    ):
        group = ServerGroup(Path(work_dir))
        try:
            targets = start_targets(group, scenarios)
            results = measure(targets, settings, args.repeat, args.warmup)
        except BenchmarkError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return EXIT_FAILED
        finally:
            group.stop_all()

    print()
    print(format_table(results))
    if args.json is not None:
        document = results_document(results, settings, args.repeat, machine)
        args.json.write_text(json.dumps(document, indent=2) + "\n")
        print(f"\nwrote {args.json}")

    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
