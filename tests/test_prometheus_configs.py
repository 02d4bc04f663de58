"""Checks of the Prometheus and Grafana files in configs/.

promtool validates the scrape config and the alerting rules and runs unit
tests of the alerts on synthetic series. Every metric name that the alerts
and the dashboard query must be one that PrometheusExporter registers.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from faultguard_core.exporters.base import ExporterContext
from faultguard_core.exporters.prometheus import PrometheusExporter

CONFIGS = Path(__file__).resolve().parent.parent / "configs"
PROMETHEUS_CONFIG = CONFIGS / "prometheus.yml"
ALERT_RULES = CONFIGS / "alerts.yml"
DASHBOARD = CONFIGS / "grafana-dashboard.json"

PROMTOOL_TIMEOUT = 60.0

# Series names that each metric type exposes in the Prometheus text format.
# PrometheusExporter disables the `_created` series.
_SERIES_SUFFIXES = {
    "counter": ("_total",),
    "histogram": ("_bucket", "_count", "_sum"),
    "summary": ("", "_count", "_sum"),
    "gauge": ("",),
    "unknown": ("",),
}

_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_MATCHERS = re.compile(r"\{[^{}]*\}")
_RANGE = re.compile(r"\[[^\]]*\]")
_GROUPING = re.compile(
    r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)"
)
_GRAFANA_VARIABLE = re.compile(r"\$\{[^}]*\}|\$\w+")
_IDENTIFIER = re.compile(r"(?<![\w.])([a-zA-Z_:][a-zA-Z0-9_:]*)\b(?!\s*\()")
_LABEL_VALUES = re.compile(r"label_values\(\s*([a-zA-Z_:][a-zA-Z0-9_:]*)\s*,")
_KEYWORDS = {
    "and",
    "or",
    "unless",
    "bool",
    "offset",
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "inf",
    "nan",
}


def metric_names(expression: str) -> set[str]:
    """Return the metric names that a PromQL expression selects.

    Strings, label matchers, ranges, grouping clauses and Grafana variables
    are removed first. Identifiers followed by `(` are functions or
    aggregations. NOTE: this is a lexical scan, not a PromQL parser, so
    names written as `{__name__="..."}` are not found.
    """
    text = _STRING.sub('""', expression)
    text = _MATCHERS.sub("", text)
    text = _RANGE.sub("", text)
    text = _GROUPING.sub("", text)
    text = _GRAFANA_VARIABLE.sub("", text)
    names = set(_IDENTIFIER.findall(text))
    return {name for name in names if name.lower() not in _KEYWORDS}


def exported_series() -> set[str]:
    """Return every series name that the exporter's registry can expose."""
    exporter = PrometheusExporter(
        ExporterContext(
            service_name_limit=10, snapshots=lambda: [], host="127.0.0.1", port=0
        )
    )
    names = set()
    for family in exporter.registry.collect():
        for suffix in _SERIES_SUFFIXES[family.type]:
            names.add(family.name + suffix)
    return names


def alert_rules() -> list[dict[str, Any]]:
    document = yaml.safe_load(ALERT_RULES.read_text())
    return [rule for group in document["groups"] for rule in group["rules"]]


def dashboard_queries() -> list[tuple[str, str]]:
    """Return (where, expression) of every panel target in the dashboard."""
    dashboard = json.loads(DASHBOARD.read_text())
    queries = []
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            queries.append((f"panel {panel['title']!r}", target["expr"]))
    return queries


def dashboard_variable_metrics() -> list[tuple[str, str]]:
    dashboard = json.loads(DASHBOARD.read_text())
    metrics = []
    for variable in dashboard["templating"]["list"]:
        if variable["type"] != "query":
            continue
        match = _LABEL_VALUES.search(variable["definition"])
        assert match, f"variable {variable['name']!r}: expected label_values(...)"
        metrics.append((f"variable {variable['name']!r}", match.group(1)))
    return metrics


@pytest.fixture(scope="module")
def series() -> set[str]:
    return exported_series()


@pytest.fixture
def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        pytest.skip(
            "promtool not found on PATH: install it with Debian's `prometheus`"
            " package or from the Prometheus release archive"
        )
    return path


def run_promtool(promtool: str, *arguments: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [promtool, *arguments],
        capture_output=True,
        text=True,
        timeout=PROMTOOL_TIMEOUT,
        check=False,
    )


# ---- metric name extraction ---------------------------------------------


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("up", {"up"}),
        ('rate(a_total{job="x", le=~"1|2"}[5m])', {"a_total"}),
        (
            "histogram_quantile(0.99,"
            " sum by (service, le) (rate(h_bucket[$__rate_interval])))",
            {"h_bucket"},
        ),
        (
            "sum(rate(a_total[1m])) by (job) / on(job) group_left b > 0.5",
            {"a_total", "b"},
        ),
        (
            "count(x offset 5m) > bool 1e3"
            ' and label_replace(y, "d", "$1", "s", "(.*)")',
            {"x", "y"},
        ),
        ('max by (service) (g{service=~"$service"}) > 0', {"g"}),
    ],
)
def test_metric_names_extraction_cases(expression: str, expected: set[str]) -> None:
    assert metric_names(expression) == expected


def test_exported_series_include_documented() -> None:
    names = exported_series()

    for name in (
        "circuit_breaker_state",
        "circuit_breaker_failures_total",
        "circuit_breaker_retries_total",
        "circuit_breaker_latency_seconds_bucket",
        "circuit_breaker_latency_seconds_count",
        "circuit_breaker_latency_seconds_sum",
        "circuit_breaker_fallback_success_total",
        "circuit_breaker_calls_total",
        "circuit_breaker_state_transitions_total",
        "circuit_breaker_attempt_failures_total",
    ):
        assert name in names


# ---- names used by the alerts and the dashboard -------------------------


def test_alert_rules_use_exported_metrics(series: set[str]) -> None:
    rules = alert_rules()

    assert rules
    for rule in rules:
        used = metric_names(rule["expr"])
        assert used, f"alert {rule['alert']}: no metric found in {rule['expr']!r}"
        assert used <= series, f"alert {rule['alert']}: unknown {used - series}"


def test_dashboard_uses_exported_metrics(series: set[str]) -> None:
    queries = dashboard_queries()

    assert queries
    for where, expression in queries:
        used = metric_names(expression)
        assert used, f"{where}: no metric found in {expression!r}"
        assert used <= series, f"{where}: unknown {used - series}"
    for where, name in dashboard_variable_metrics():
        assert name in series, f"{where}: unknown metric {name!r}"


def test_dashboard_panels_have_unique_ids() -> None:
    panels = json.loads(DASHBOARD.read_text())["panels"]
    ids = [panel["id"] for panel in panels]

    assert len(ids) == len(set(ids))


# ---- scrape config ------------------------------------------------------


def test_scrape_config_targets_metrics_port() -> None:
    config = yaml.safe_load(PROMETHEUS_CONFIG.read_text())
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}

    job = jobs["faultguard"]
    assert job["scrape_interval"] == "5s"
    assert job.get("metrics_path", "/metrics") == "/metrics"
    assert job["static_configs"][0]["targets"] == ["127.0.0.1:9090"]


# ---- promtool -----------------------------------------------------------


def test_promtool_accepts_scrape_config(promtool: str) -> None:
    result = run_promtool(promtool, "check", "config", str(PROMETHEUS_CONFIG))

    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_accepts_alert_rules(promtool: str) -> None:
    result = run_promtool(promtool, "check", "rules", str(ALERT_RULES))

    assert result.returncode == 0, result.stdout + result.stderr


def _counter(name: str, labels: str, per_minute: int) -> dict[str, str]:
    return {"series": f"{name}{{{labels}}}", "values": f"0+{per_minute}x20"}


def _alert_unit_tests() -> dict[str, Any]:
    """Build a promtool rule test file for the alerts in configs/alerts.yml.

    `pay` is unhealthy and must fire every alert. `search` is healthy, because
    its only calls without success are cancelled ones, and must fire none.
    """
    calls = "circuit_breaker_calls_total"
    buckets = "circuit_breaker_latency_seconds_bucket"
    traffic = [
        _counter(calls, 'service="pay",outcome="success",source="upstream"', 60),
        _counter(calls, 'service="pay",outcome="failure",source="fallback"', 60),
        _counter("circuit_breaker_fallback_success_total", 'service="pay"', 60),
        _counter(calls, 'service="search",outcome="success",source="upstream"', 60),
        _counter(calls, 'service="search",outcome="cancelled",source="none"', 60),
        # Every pay call takes between 2.5s and 5s, every search call under 0.1s.
        _counter(buckets, 'service="pay",le="0.1"', 0),
        _counter(buckets, 'service="pay",le="2.5"', 0),
        _counter(buckets, 'service="pay",le="5.0"', 120),
        _counter(buckets, 'service="pay",le="+Inf"', 120),
        _counter(buckets, 'service="search",le="0.1"', 120),
        _counter(buckets, 'service="search",le="2.5"', 120),
        _counter(buckets, 'service="search",le="5.0"', 120),
        _counter(buckets, 'service="search",le="+Inf"', 120),
    ]

    def quiet(alert: str, eval_time: str) -> dict[str, Any]:
        return {"alertname": alert, "eval_time": eval_time, "exp_alerts": []}

    def fires(
        alert: str, severity: str, eval_time: str, summary: str
    ) -> dict[str, Any]:
        expected = {
            "exp_labels": {"service": "pay", "severity": severity},
            "exp_annotations": {"summary": summary},
        }
        return {"alertname": alert, "eval_time": eval_time, "exp_alerts": [expected]}

    return {
        "rule_files": [str(ALERT_RULES)],
        "evaluation_interval": "15s",
        "tests": [
            {
                "name": "breaker not closed for a minute",
                "interval": "15s",
                "input_series": [
                    # Open, then half-open after open_duration, then open again.
                    {
                        "series": 'circuit_breaker_state{service="pay"}',
                        "values": "0 1 1 2 1 2 1 2 1 2 1",
                    },
                    {
                        "series": 'circuit_breaker_state{service="search"}',
                        "values": "0x10",
                    },
                ],
                "alert_rule_test": [
                    quiet("FaultguardCircuitBreakerOpen", "45s"),
                    fires(
                        "FaultguardCircuitBreakerOpen",
                        "critical",
                        "90s",
                        "Circuit breaker of pay not closed for more than 1m",
                    ),
                ],
            },
            {
                "name": "failures, fallbacks and latency",
                "interval": "1m",
                "input_series": traffic,
                "alert_rule_test": [
                    quiet("FaultguardFallbackRateHigh", "3m"),
                    fires(
                        "FaultguardFallbackRateHigh",
                        "warning",
                        "10m",
                        "pay serves 50% of calls from the fallback store",
                    ),
                    quiet("FaultguardFailureRateHigh", "3m"),
                    fires(
                        "FaultguardFailureRateHigh",
                        "warning",
                        "10m",
                        "50% of calls to pay fail",
                    ),
                    quiet("FaultguardLatencyP99High", "3m"),
                    # Linear interpolation in the 2.5s..5s bucket: 2.5 + 2.5 * 0.99.
                    fires(
                        "FaultguardLatencyP99High",
                        "warning",
                        "10m",
                        "p99 latency of pay is 4.975s",
                    ),
                ],
            },
        ],
    }


def _without_descriptions(document: dict[str, Any], tmp_path: Path) -> None:
    """Write a copy of the rules without `description`, so tests check summaries.

    promtool compares all annotations of a firing alert, and the prose of
    the descriptions would make the expected values long and brittle.
    """
    rules = yaml.safe_load(ALERT_RULES.read_text())
    for group in rules["groups"]:
        for rule in group["rules"]:
            rule.get("annotations", {}).pop("description", None)
    path = tmp_path / "alerts.yml"
    path.write_text(yaml.safe_dump(rules))
    document["rule_files"] = [str(path)]


def test_alert_rules_fire_on_series(promtool: str, tmp_path: Path) -> None:
    document = _alert_unit_tests()
    _without_descriptions(document, tmp_path)
    test_file = tmp_path / "alerts_test.yml"
    test_file.write_text(yaml.safe_dump(document, sort_keys=False))

    result = run_promtool(promtool, "test", "rules", str(test_file))

    assert result.returncode == 0, result.stdout + result.stderr
