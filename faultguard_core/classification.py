"""Outcome classification: which statuses and errors count as failure, success or
excluded for a breaker.

Defaults: connect errors, timeouts, broken connections, oversized responses,
every 5xx, 408 and 429 are failures. Every other status is a success, because
the upstream responded. Client cancellation and `PoolTimeoutError` (faultguard's
own connection pool was full, so nothing reached the upstream) are always
excluded.

Status rules are written as an exact code (`"503"`), a class (`"5xx"`) or an
inclusive range (`"500-504"`). When rules of several lists match a status, the
narrowest rule wins, so `"501"` in `success_statuses` beats `"5xx"` in
`failure_statuses`. Two lists that name a status with rules of the same width
are rejected as ambiguous. A status that no rule matches is a success, and a
status outside 100-599 is a failure.
"""

from __future__ import annotations

import enum
import functools
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

from faultguard_core.transport.base import (
    PoolTimeoutError,
    ResponseTooLargeError,
    TransportError,
    UpstreamConnectError,
    UpstreamProtocolError,
    UpstreamTimeoutError,
)

if TYPE_CHECKING:
    from faultguard_core.settings import BreakerSettings


class Outcome(enum.Enum):
    """How a finished call counts for the breaker.

    `EXCLUDED` calls (cancelled by the caller, for example) count neither as a
    success nor as a failure; in half-open they give their probe slot back.
    """

    SUCCESS = "success"
    FAILURE = "failure"
    EXCLUDED = "excluded"


ERROR_KINDS: dict[str, type[TransportError]] = {
    "connect": UpstreamConnectError,
    "timeout": UpstreamTimeoutError,
    "protocol": UpstreamProtocolError,
    "response_too_large": ResponseTooLargeError,
}
"""Transport error kinds by the name the `*_errors` settings use."""

MIN_STATUS = 100
MAX_STATUS = 599


def parse_status_rule(rule: str) -> tuple[int, int]:
    """Return the inclusive (low, high) status range of one rule.

    Raises ValueError naming the rule unless it is a code, `Nxx` or `low-high`
    within 100-599.
    """
    text = rule.strip().lower()
    if len(text) == 3 and text.endswith("xx") and text[0].isdigit():
        low = int(text[0]) * 100
        bounds = (low, low + 99)
    elif "-" in text:
        first, _, last = text.partition("-")
        if not (first.strip().isdigit() and last.strip().isdigit()):
            raise ValueError(_rule_message(rule))
        bounds = (int(first), int(last))
    elif text.isdigit():
        bounds = (int(text), int(text))
    else:
        raise ValueError(_rule_message(rule))

    low, high = bounds
    if not MIN_STATUS <= low <= high <= MAX_STATUS:
        raise ValueError(_rule_message(rule))
    return bounds


def _rule_message(rule: str) -> str:
    return (
        f"invalid status rule {rule!r}: write a code (503), a class (5xx) or a"
        " range (500-504) within 100-599"
    )


def check_error_kinds(names: Iterable[str]) -> None:
    """Raise ValueError for a name that is not a transport error kind."""
    for name in names:
        if name not in ERROR_KINDS:
            known = ", ".join(ERROR_KINDS)
            raise ValueError(f"unknown error kind {name!r} (known kinds: {known})")


class Classifier:
    """A precomputed status table and error rules; lookups are O(1).

    Raises ValueError from the constructor for an invalid rule, an ambiguous
    status, or an error kind listed twice.
    """

    def __init__(
        self,
        failure_statuses: Sequence[str] = ("5xx", "408", "429"),
        success_statuses: Sequence[str] = (),
        excluded_statuses: Sequence[str] = (),
        success_errors: Sequence[str] = (),
        excluded_errors: Sequence[str] = (),
    ) -> None:
        lists = {
            Outcome.FAILURE: [
                (rule, parse_status_rule(rule)) for rule in failure_statuses
            ],
            Outcome.SUCCESS: [
                (rule, parse_status_rule(rule)) for rule in success_statuses
            ],
            Outcome.EXCLUDED: [
                (rule, parse_status_rule(rule)) for rule in excluded_statuses
            ],
        }
        self._table = tuple(
            _status_outcome(code, lists) for code in range(MAX_STATUS + 1)
        )

        check_error_kinds(success_errors)
        check_error_kinds(excluded_errors)
        twice = set(success_errors) & set(excluded_errors)
        if twice:
            raise ValueError(
                f"error kind {sorted(twice)[0]!r} is in both success_errors and"
                " excluded_errors; keep it in one list"
            )
        self._errors: list[tuple[type[TransportError], Outcome]] = [
            (ERROR_KINDS[name], Outcome.SUCCESS) for name in success_errors
        ]
        self._errors += [
            (ERROR_KINDS[name], Outcome.EXCLUDED) for name in excluded_errors
        ]

    @classmethod
    def from_settings(cls, settings: BreakerSettings) -> Classifier:
        """Return the (cached) classifier of a breaker's settings."""
        return _cached_classifier(
            tuple(settings.failure_statuses),
            tuple(settings.success_statuses),
            tuple(settings.excluded_statuses),
            tuple(settings.success_errors),
            tuple(settings.excluded_errors),
        )

    def status(self, status_code: int) -> Outcome:
        """Classify a response status; codes outside 100-599 are failures."""
        if MIN_STATUS <= status_code <= MAX_STATUS:
            return self._table[status_code]
        return Outcome.FAILURE

    def error(self, error: BaseException) -> Outcome:
        """Classify an exception raised in place of a response.

        A `TransportError` of a kind listed in `success_errors` or
        `excluded_errors` gets that outcome, and `PoolTimeoutError` is always
        excluded. Every other `Exception` is a failure. Anything else
        (cancellation, `KeyboardInterrupt`) is excluded.
        """
        if isinstance(error, PoolTimeoutError):
            return Outcome.EXCLUDED
        if isinstance(error, TransportError):
            for kind, outcome in self._errors:
                if isinstance(error, kind):
                    return outcome
            return Outcome.FAILURE
        if isinstance(error, Exception):
            return Outcome.FAILURE
        return Outcome.EXCLUDED


def _status_outcome(
    code: int, lists: dict[Outcome, list[tuple[str, tuple[int, int]]]]
) -> Outcome:
    if not MIN_STATUS <= code <= MAX_STATUS:
        return Outcome.FAILURE

    best: dict[Outcome, tuple[int, str]] = {}
    for outcome, rules in lists.items():
        for rule, (low, high) in rules:
            width = high - low
            if low <= code <= high and (
                outcome not in best or width < best[outcome][0]
            ):
                best[outcome] = (width, rule)
    if not best:
        return Outcome.SUCCESS

    narrowest = min(width for width, _ in best.values())
    winners = [outcome for outcome, (width, _) in best.items() if width == narrowest]
    if len(winners) > 1:
        named = " and ".join(
            f"{outcome.value}_statuses ({best[outcome][1]!r})" for outcome in winners
        )
        raise ValueError(
            f"status {code} is matched by {named} with rules of the same width;"
            " name it with a narrower rule in the list that should win"
        )
    return winners[0]


@functools.lru_cache(maxsize=256)
def _cached_classifier(
    failure_statuses: tuple[str, ...],
    success_statuses: tuple[str, ...],
    excluded_statuses: tuple[str, ...],
    success_errors: tuple[str, ...],
    excluded_errors: tuple[str, ...],
) -> Classifier:
    return Classifier(
        failure_statuses,
        success_statuses,
        excluded_statuses,
        success_errors,
        excluded_errors,
    )


def classify(
    settings: BreakerSettings,
    *,
    status_code: int | None = None,
    error: BaseException | None = None,
) -> Outcome:
    """Classify one attempt's response status or error under `settings`.

    Pass exactly one of `status_code` and `error`.
    """
    if (status_code is None) == (error is None):
        raise TypeError("classify() takes exactly one of status_code and error")

    classifier = Classifier.from_settings(settings)
    if error is not None:
        return classifier.error(error)
    assert status_code is not None
    return classifier.status(status_code)
