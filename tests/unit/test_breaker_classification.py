"""Outcome classification of statuses and transport errors."""

from __future__ import annotations

import asyncio

import pytest

from faultguard_core.classification import Classifier, Outcome, classify
from faultguard_core.settings import BreakerSettings
from faultguard_core.transport.base import (
    PoolTimeoutError,
    ResponseTooLargeError,
    UpstreamConnectError,
    UpstreamProtocolError,
    UpstreamTimeoutError,
)

SUCCESS = Outcome.SUCCESS
FAILURE = Outcome.FAILURE
EXCLUDED = Outcome.EXCLUDED


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (200, SUCCESS),
        (204, SUCCESS),
        (301, SUCCESS),
        (400, SUCCESS),
        (404, SUCCESS),
        (408, FAILURE),
        (429, FAILURE),
        (499, SUCCESS),
        (500, FAILURE),
        (503, FAILURE),
        (599, FAILURE),
        (99, FAILURE),
        (600, FAILURE),
    ],
)
def test_default_status_classes(status: int, expected: Outcome) -> None:
    assert Classifier().status(status) is expected


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (UpstreamConnectError("refused"), FAILURE),
        (UpstreamTimeoutError("slow"), FAILURE),
        (UpstreamProtocolError("reset"), FAILURE),
        (ResponseTooLargeError("big"), FAILURE),
        (PoolTimeoutError("pool full"), EXCLUDED),
        (ValueError("bug"), FAILURE),
        (asyncio.CancelledError(), EXCLUDED),
        (KeyboardInterrupt(), EXCLUDED),
    ],
)
def test_default_error_classes(error: BaseException, expected: Outcome) -> None:
    assert Classifier().error(error) is expected


def test_narrowest_rule_wins() -> None:
    classifier = Classifier(
        failure_statuses=["5xx", "404"],
        success_statuses=["501"],
        excluded_statuses=["502-504"],
    )

    assert classifier.status(500) is FAILURE
    assert classifier.status(501) is SUCCESS
    assert classifier.status(503) is EXCLUDED
    assert classifier.status(404) is FAILURE
    assert classifier.status(418) is SUCCESS


def test_same_width_rules_are_ambiguous() -> None:
    with pytest.raises(ValueError, match="status 500 is matched by"):
        Classifier(failure_statuses=["5xx"], success_statuses=["500-599"])


@pytest.mark.parametrize("rule", ["abc", "5x", "6xx", "099", "600", "510-500", "1-2-3"])
def test_invalid_rule_rejected(rule: str) -> None:
    with pytest.raises(ValueError, match="invalid status rule"):
        Classifier(failure_statuses=[rule])


def test_error_kind_lists() -> None:
    classifier = Classifier(success_errors=["protocol"], excluded_errors=["timeout"])

    assert classifier.error(UpstreamProtocolError("x")) is SUCCESS
    assert classifier.error(UpstreamTimeoutError("x")) is EXCLUDED
    assert classifier.error(UpstreamConnectError("x")) is FAILURE


def test_error_kind_in_two_lists() -> None:
    with pytest.raises(ValueError, match="both success_errors and excluded_errors"):
        Classifier(success_errors=["timeout"], excluded_errors=["timeout"])


def test_settings_accept_ints_and_text() -> None:
    settings = BreakerSettings.model_validate(
        {"failure_statuses": [500, "502-504"], "excluded_statuses": "404,410"}
    )

    assert settings.failure_statuses == ["500", "502-504"]
    assert classify(settings, status_code=404) is EXCLUDED
    assert classify(settings, status_code=501) is SUCCESS
    assert classify(settings, error=UpstreamConnectError("x")) is FAILURE


def test_classify_needs_one_argument() -> None:
    with pytest.raises(TypeError, match="exactly one"):
        classify(BreakerSettings())
