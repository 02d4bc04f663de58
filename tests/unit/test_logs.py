"""KeyValueFormatter: event name first, extra fields as key=value."""

from __future__ import annotations

import logging

from faultguard_core.logs import KeyValueFormatter


def make_record(**extra: object) -> logging.LogRecord:
    record = logging.LogRecord(
        "faultguard", logging.WARNING, __file__, 1, "breaker_state_changed", None, None
    )
    for key, value in extra.items():
        setattr(record, key, value)
    return record


def test_formatter_appends_extra_fields() -> None:
    line = KeyValueFormatter().format(make_record(service="api:80", new_state="open"))

    assert line.endswith("breaker_state_changed service=api:80 new_state=open")


def test_formatter_quotes_values_with_spaces() -> None:
    line = KeyValueFormatter().format(make_record(error="connection refused"))

    assert line.endswith("error='connection refused'")


def test_formatter_without_extra_fields() -> None:
    line = KeyValueFormatter().format(make_record())

    assert line.endswith("WARNING faultguard breaker_state_changed")
