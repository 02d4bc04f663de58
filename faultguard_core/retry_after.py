"""Parsing of the `Retry-After` response header (RFC 9110, section 10.2.3).

The header contains either delta-seconds (`120`) or an HTTP-date
(`Wed, 21 Oct 2015 07:28:00 GMT`). `parse_retry_after` never raises: any value
it cannot trust returns None, so the caller falls back to its normal backoff.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

RETRY_AFTER_LIMIT = 86_400.0 * 365
"""Seconds above which a `Retry-After` value is treated as invalid (one year).

A server that requests a longer wait is misconfigured or hostile, so its value
is ignored instead of parking or ending calls on it.
"""

_MAX_DIGITS = 12
"""Delta-seconds longer than this are invalid without converting them.

Python refuses to convert integer strings of more than 4300 digits, and any
value of 12 digits is already far above `RETRY_AFTER_LIMIT`.
"""


def parse_retry_after(value: str | None, now: float) -> float | None:
    """Return the wait in seconds that `value` requests, or None if invalid.

    `now` is the current Unix time, used for the HTTP-date form. A date in the
    past returns 0.0 (retry at once is allowed). Returns None for a missing or
    empty value, a negative or fractional number, a non-numeric value, an
    unparseable date, and any wait above `RETRY_AFTER_LIMIT`.
    """
    if value is None:
        return None

    text = value.strip()
    if not text:
        return None

    if text.isascii() and text.isdigit():
        return _parse_delta_seconds(text)

    return _parse_http_date(text, now)


def _parse_delta_seconds(text: str) -> float | None:
    if len(text) > _MAX_DIGITS:
        return None

    seconds = float(int(text))
    if seconds > RETRY_AFTER_LIMIT:
        return None
    return seconds


def _parse_http_date(text: str, now: float) -> float | None:
    # An HTTP-date always names a weekday or a month, so anything with a sign
    # or a decimal point in front ("-5", "1.5", "+3") is no date.
    if not text[0].isalpha():
        return None

    try:
        moment = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None

    # RFC 9110 dates are always GMT. A date without a zone counts as UTC.
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)

    try:
        wait = moment.timestamp() - now
    except (OverflowError, OSError, ValueError):
        return None
    if not math.isfinite(wait) or wait > RETRY_AFTER_LIMIT:
        return None
    return max(0.0, wait)


def format_http_date(unix_time: float) -> str:
    """Format `unix_time` as an IMF-fixdate, the preferred HTTP-date form."""
    moment = datetime.fromtimestamp(unix_time, UTC)
    return moment.strftime("%a, %d %b %Y %H:%M:%S GMT")
