"""Logging setup: one `faultguard` logger, one named event per line.

Events are logged as `logger.warning("breaker_state_changed", extra={...})`;
`KeyValueFormatter` appends the extra fields as `key=value` pairs, so every
line carries the event name and the ids involved.
"""

from __future__ import annotations

import logging

# Attributes every LogRecord has; anything else came from `extra=`.
_STANDARD_ATTRIBUTES = frozenset(
    vars(logging.LogRecord("", 0, "", 0, "", None, None)).keys()
) | {"message", "asctime", "taskName"}


class KeyValueFormatter(logging.Formatter):
    """Format `time level logger event key=value ...`."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        fields = [
            f"{key}={value!r}"
            if isinstance(value, str) and " " in value
            else f"{key}={value}"
            for key, value in vars(record).items()
            if key not in _STANDARD_ATTRIBUTES
        ]
        if fields:
            head, newline, rest = line.partition("\n")
            line = f"{head} {' '.join(fields)}{newline}{rest}"
        return line


def configure_logging(level: str) -> None:
    """Send logs to stderr with `KeyValueFormatter` at `level`."""
    handler = logging.StreamHandler()
    handler.setFormatter(KeyValueFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # httpx logs one INFO line per request, which costs measurable CPU under
    # load; keep it off the hot path.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("httpcore").setLevel(logging.WARNING)
