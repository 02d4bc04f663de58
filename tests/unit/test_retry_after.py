"""Unit tests of `Retry-After` parsing: both forms and every invalid form."""

from __future__ import annotations

import pytest

from faultguard_core.retry_after import (
    RETRY_AFTER_LIMIT,
    format_http_date,
    parse_retry_after,
)

NOW = 1_700_000_000.0
"""Tue, 14 Nov 2023 22:13:20 GMT."""

VALID = [
    ("0", 0.0),
    ("3", 3.0),
    ("120", 120.0),
    ("  7  ", 7.0),
    ("007", 7.0),
    (str(int(RETRY_AFTER_LIMIT)), RETRY_AFTER_LIMIT),
    ("Tue, 14 Nov 2023 22:13:50 GMT", 30.0),
    ("Tue, 14 Nov 2023 23:13:20 GMT", 3600.0),
    # A date in the past allows an immediate retry.
    ("Tue, 14 Nov 2023 22:00:00 GMT", 0.0),
    ("Sun, 06 Nov 1994 08:49:37 GMT", 0.0),
    # The obsolete RFC 850 and asctime forms that RFC 9110 still accepts.
    ("Tuesday, 14-Nov-23 22:13:50 GMT", 30.0),
    ("Tue Nov 14 22:13:50 2023", 30.0),
]

INVALID = [
    (None, "missing"),
    ("", "empty"),
    ("   ", "blank"),
    ("-5", "negative"),
    ("-0", "negative zero"),
    ("+5", "signed"),
    ("1.5", "fractional"),
    ("1e3", "exponent"),
    ("inf", "infinity"),
    ("nan", "not a number"),
    ("soon", "word"),
    ("5 s", "unit"),
    ("\u0663", "non-ASCII digit"),
    (str(int(RETRY_AFTER_LIMIT) + 1), "above the limit"),
    ("99999999999999999999", "huge"),
    ("9" * 5000, "longer than int conversion allows"),
    ("Wed, 21 Oct 9999 07:28:00 GMT", "date far in the future"),
    ("Fri, 31 Dec 99999 23:59:59 GMT", "five-digit year"),
    ("Wed, 32 Oct 2015 07:28:00 GMT", "day out of range"),
    ("Wed, 21 Oct 2015 25:28:00 GMT", "hour out of range"),
    ("Wed, 21 Foo 2015 07:28:00 GMT", "unknown month"),
    ("Wed, 21 Oct", "truncated date"),
]


@pytest.mark.parametrize(("value", "expected"), VALID)
def test_retry_after_valid_value(value: str, expected: float) -> None:
    assert parse_retry_after(value, NOW) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("value", "reason"), INVALID, ids=[reason for _, reason in INVALID]
)
def test_retry_after_invalid_value(value: str | None, reason: str) -> None:
    assert parse_retry_after(value, NOW) is None


def test_retry_after_date_roundtrip() -> None:
    value = format_http_date(NOW + 42)

    assert value == "Tue, 14 Nov 2023 22:14:02 GMT"
    assert parse_retry_after(value, NOW) == pytest.approx(42.0)


def test_retry_after_date_without_zone() -> None:
    assert parse_retry_after("Tue, 14 Nov 2023 22:13:50 -0000", NOW) == 30.0
