"""Tests of the wrk output parser and scenario selection in bench/run.py.

The wrk outputs below were captured from wrk 4.1.0 (Debian 4.1.0-3+b2) on
127.0.0.1: against tests/upstream.py, against GET /execute (405 for every
request) and against a stdlib server that returns 503 for every 7th request
and sleeps 1.3 s on every 50th.
"""

from __future__ import annotations

import importlib.util
import os
import sys
import time
from pathlib import Path
from types import ModuleType

import pytest

RUN_PATH = Path(__file__).resolve().parents[2] / "bench" / "run.py"


def _load_run_module() -> ModuleType:
    # bench/ is not a package. The module goes into sys.modules before it runs
    # because dataclasses look up their module there.
    spec = importlib.util.spec_from_file_location("bench_run", RUN_PATH)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


run = _load_run_module()

DIRECT_MS = """\
Running 3s test @ http://127.0.0.1:36661/data
  2 threads and 32 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     4.86ms    3.64ms  34.00ms   85.64%
    Req/Sec     3.60k     1.50k    7.19k    70.00%
  Latency Distribution
     50%    3.85ms
     75%    5.79ms
     90%    8.97ms
     99%   19.17ms
  21662 requests in 3.07s, 2.20MB read
Requests/sec:   7047.72
Transfer/sec:    732.90KB
"""

DIRECT_US = """\
Running 2s test @ http://127.0.0.1:35631/data
  1 threads and 1 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   814.93us    1.17ms   8.75ms   84.31%
    Req/Sec     3.09k     2.08k    7.59k    80.00%
  Latency Distribution
     50%  171.00us
     75%    1.17ms
     90%    2.55ms
     99%    5.09ms
  6175 requests in 2.02s, 638.20KB read
Requests/sec:   3054.61
Transfer/sec:    315.70KB
"""

ALL_405 = """\
Running 2s test @ http://127.0.0.1:18765/execute
  2 threads and 8 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     3.36ms    5.37ms  58.22ms   94.45%
    Req/Sec     1.75k   838.47     4.47k    70.00%
  Latency Distribution
     50%    1.84ms
     75%    3.35ms
     90%    6.37ms
     99%   34.17ms
  6993 requests in 2.02s, 1.65MB read
  Non-2xx or 3xx responses: 6993
Requests/sec:   3469.00
Transfer/sec:    840.22KB
"""

# wrk pads a seconds value to the column width, hence the space after "1.28s".
SLOW_SECONDS = """\
Running 4s test @ http://127.0.0.1:44325/
  1 threads and 2 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   140.21ms  276.29ms   1.34s    89.51%
    Req/Sec    30.88     12.56    60.00     90.00%
  Latency Distribution
     50%   44.03ms
     75%   48.02ms
     90%  436.63ms
     99%    1.28s \n\
  124 requests in 4.02s, 14.09KB read
  Non-2xx or 3xx responses: 18
Requests/sec:     30.86
Transfer/sec:      3.51KB
"""

SOCKET_TIMEOUT = """\
Running 3s test @ http://127.0.0.1:37061/
  1 threads and 2 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency    44.11ms    6.08ms  52.00ms   96.04%
    Req/Sec    34.00     12.48    60.00     43.33%
  Latency Distribution
     50%   44.01ms
     75%   45.61ms
     90%   47.99ms
     99%   52.00ms
  102 requests in 3.00s, 11.61KB read
  Socket errors: connect 0, read 0, write 0, timeout 1
  Non-2xx or 3xx responses: 15
Requests/sec:     33.98
Transfer/sec:      3.87KB
"""

WITHOUT_LATENCY_FLAG = """\
Running 2s test @ http://127.0.0.1:35631/data
  1 threads and 1 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   814.93us    1.17ms   8.75ms   84.31%
    Req/Sec     3.09k     2.08k    7.59k    80.00%
  6175 requests in 2.02s, 638.20KB read
Requests/sec:   3054.61
Transfer/sec:    315.70KB
"""


def test_parse_clean_run_figures() -> None:
    result = run.parse_wrk_output(DIRECT_MS)

    assert result.requests == 21662
    assert result.duration_s == pytest.approx(3.07)
    assert result.requests_per_second == pytest.approx(7047.72)
    assert result.p50_ms == pytest.approx(3.85)
    assert result.p99_ms == pytest.approx(19.17)
    assert result.latency_ms[75.0] == pytest.approx(5.79)
    assert result.latency_ms[90.0] == pytest.approx(8.97)


def test_parse_clean_run_no_problems() -> None:
    result = run.parse_wrk_output(DIRECT_MS)

    assert result.error_responses == 0
    assert result.socket_errors == {"connect": 0, "read": 0, "write": 0, "timeout": 0}
    assert result.problems() == []


def test_parse_microseconds_to_ms() -> None:
    result = run.parse_wrk_output(DIRECT_US)

    assert result.p50_ms == pytest.approx(0.171)
    assert result.latency_ms[75.0] == pytest.approx(1.17)
    assert result.p99_ms == pytest.approx(5.09)


def test_parse_seconds_to_ms() -> None:
    result = run.parse_wrk_output(SLOW_SECONDS)

    assert result.p50_ms == pytest.approx(44.03)
    assert result.p99_ms == pytest.approx(1280.0)
    assert result.requests == 124
    assert result.duration_s == pytest.approx(4.02)


def test_parse_error_responses_counted() -> None:
    result = run.parse_wrk_output(SLOW_SECONDS)

    assert result.error_responses == 18
    assert result.requests_per_second == pytest.approx(30.86)


def test_error_responses_fail_run() -> None:
    result = run.parse_wrk_output(ALL_405)

    assert result.error_responses == 6993
    assert result.problems() == ["6993 of 6993 responses had a status of 400 or above"]


def test_parse_socket_errors_line() -> None:
    result = run.parse_wrk_output(SOCKET_TIMEOUT)

    assert result.socket_errors == {"connect": 0, "read": 0, "write": 0, "timeout": 1}
    assert result.error_responses == 15


def test_socket_errors_fail_run() -> None:
    problems = run.parse_wrk_output(SOCKET_TIMEOUT).problems()

    assert len(problems) == 2
    assert problems[0] == "15 of 102 responses had a status of 400 or above"
    assert problems[1] == "socket errors: timeout 1"


def test_zero_requests_fail_run() -> None:
    empty = DIRECT_MS.replace("21662 requests in", "0 requests in")

    problems = run.parse_wrk_output(empty).problems()

    assert problems == ["wrk completed no requests"]


def test_parse_without_latency_flag_raises() -> None:
    with pytest.raises(run.WrkOutputError, match="--latency"):
        run.parse_wrk_output(WITHOUT_LATENCY_FLAG)


def test_parse_without_rate_raises() -> None:
    truncated = DIRECT_MS.replace("Requests/sec:   7047.72\n", "")

    with pytest.raises(run.WrkOutputError, match="Requests/sec"):
        run.parse_wrk_output(truncated)


def test_parse_without_request_count_raises() -> None:
    truncated = DIRECT_MS.replace("  21662 requests in 3.07s, 2.20MB read\n", "")

    with pytest.raises(run.WrkOutputError, match="requests in"):
        run.parse_wrk_output(truncated)


@pytest.mark.parametrize(
    ("number", "unit", "expected_ms"),
    [
        ("171.00", "us", 0.171),
        ("3.85", "ms", 3.85),
        ("1.28", "s", 1280.0),
        ("2.00", "m", 120_000.0),
        ("1.00", "h", 3_600_000.0),
    ],
)
def test_time_units_to_ms(number: str, unit: str, expected_ms: float) -> None:
    assert run.parse_time_ms(number, unit) == pytest.approx(expected_ms)


def test_time_unknown_unit_raises() -> None:
    with pytest.raises(run.WrkOutputError, match="'ns'"):
        run.parse_time_ms("5", "ns")


def test_select_scenarios_adds_baseline() -> None:
    names = [scenario.name for scenario in run.select_scenarios(["execute-memory"])]

    assert names == ["direct", "execute-memory"]


def test_select_scenarios_default_all() -> None:
    names = [scenario.name for scenario in run.select_scenarios(None)]

    assert names == list(run.SCENARIOS)


def test_select_scenarios_unknown_raises() -> None:
    with pytest.raises(run.BenchmarkError, match="unknown scenario nope"):
        run.select_scenarios(["nope"])


def test_rotate_starts_each_round_elsewhere() -> None:
    assert run.rotate(["a", "b", "c"], 0) == ["a", "b", "c"]
    assert run.rotate(["a", "b", "c"], 1) == ["b", "c", "a"]
    assert run.rotate(["a", "b", "c"], 4) == ["b", "c", "a"]


def test_memory_scenario_sets_backend() -> None:
    scenario = run.SCENARIOS["execute-memory"]

    assert scenario.env == {"FAULTGUARD_STORAGE__BACKEND": "memory"}
    assert scenario.through_faultguard


def test_process_cpu_seconds_grows() -> None:
    before = run.process_cpu_seconds(os.getpid())
    start = time.process_time()
    while time.process_time() - start < 0.1:
        pass

    after = run.process_cpu_seconds(os.getpid())

    assert after - before >= 0.05


# Prometheus text of a faultguard that made three clean calls, in the format
# prometheus_client writes (histogram buckets left out).
CLEAN_METRICS = """\
# HELP circuit_breaker_failures_total Failed upstream attempts.
# TYPE circuit_breaker_failures_total counter
circuit_breaker_failures_total{service="127.0.0.1:33217"} 0.0
# HELP circuit_breaker_retries_total Retry attempts sent upstream.
# TYPE circuit_breaker_retries_total counter
circuit_breaker_retries_total{service="127.0.0.1:33217"} 0.0
# HELP circuit_breaker_fallback_success_total Calls answered from the fallback store.
# TYPE circuit_breaker_fallback_success_total counter
circuit_breaker_fallback_success_total{service="127.0.0.1:33217"} 0.0
# HELP circuit_breaker_calls_total Guarded calls by outcome and by the source.
# TYPE circuit_breaker_calls_total counter
""" + (
    'circuit_breaker_calls_total{outcome="success",service="127.0.0.1:33217",'
    'source="upstream"} 3.0\n'
)

FALLBACK_METRICS = (
    CLEAN_METRICS.replace(
        'circuit_breaker_retries_total{service="127.0.0.1:33217"} 0.0',
        'circuit_breaker_retries_total{service="127.0.0.1:33217"} 3.0',
    )
    .replace(
        'circuit_breaker_fallback_success_total{service="127.0.0.1:33217"} 0.0',
        'circuit_breaker_fallback_success_total{service="127.0.0.1:33217"} 1.0',
    )
    .rstrip("\n")
    + '\ncircuit_breaker_calls_total{outcome="fallback",service="127.0.0.1:33217",'
    'source="store"} 1.0\n'
)


CANCELLED_METRICS = CLEAN_METRICS + (
    'circuit_breaker_calls_total{outcome="cancelled",service="127.0.0.1:33217",'
    'source="none"} 24.0\n'
)


def test_metrics_clean_calls_pass() -> None:
    assert run.unexpected_outcomes(CLEAN_METRICS, max_cancelled=0) == []


def test_metrics_cancelled_within_limit_pass() -> None:
    assert run.unexpected_outcomes(CANCELLED_METRICS, max_cancelled=32) == []


def test_metrics_cancelled_over_limit_fail() -> None:
    found = run.unexpected_outcomes(CANCELLED_METRICS, max_cancelled=20)

    assert found == [
        "24 cancelled calls, more than the 20 that ending wrk runs can explain"
    ]


def test_metrics_fallback_and_retries_fail() -> None:
    found = run.unexpected_outcomes(FALLBACK_METRICS, max_cancelled=0)

    assert len(found) == 3
    assert found[0].startswith("circuit_breaker_retries_total")
    assert found[1].startswith("circuit_breaker_fallback_success_total")
    assert "'source': 'store'" in found[2]


def test_metrics_without_calls_fail() -> None:
    without_calls = CLEAN_METRICS.split("# HELP circuit_breaker_calls_total")[0]

    found = run.unexpected_outcomes(without_calls, max_cancelled=0)

    assert found == [
        "no circuit_breaker_calls_total sample with a successful upstream call"
    ]


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"FAULTGUARD_METRICS__PORT": "9191"}, "http://127.0.0.1:9191/metrics"),
        ({"FAULTGUARD_METRICS__PORT": "0"}, None),
        (
            {
                "FAULTGUARD_METRICS__PORT": "9191",
                "FAULTGUARD_METRICS__EXPORTERS": "otel",
            },
            None,
        ),
    ],
)
def test_prometheus_url_from_env(env: dict[str, str], expected: str | None) -> None:
    assert run.prometheus_url(env) == expected
