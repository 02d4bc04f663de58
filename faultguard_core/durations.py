"""Human durations: `250ms`, `2s`, `1m`, `1h`, or a bare number of seconds."""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import BeforeValidator

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
_PATTERN = re.compile(r"^\s*(\d+(?:\.\d+)?|\.\d+)\s*(ms|s|m|h)?\s*$")


def parse_duration(value: Any) -> float:
    """Convert `value` to seconds.

    Accepts an int or float (seconds) or a string such as `"250ms"`, `"2s"`,
    `"1.5m"` or `"3"`. Raises `ValueError` for anything else, including
    negative values and booleans.
    """
    if isinstance(value, bool):
        raise ValueError(f"expected a duration such as '2s', got {value!r}")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str):
        match = _PATTERN.match(value)
        if match is None:
            raise ValueError(
                f"invalid duration {value!r}: use a number of seconds or a"
                " number with a unit ms, s, m or h, such as '250ms' or '2s'"
            )
        seconds = float(match.group(1)) * _UNITS[match.group(2) or "s"]
    else:
        raise ValueError(f"expected a duration such as '2s', got {value!r}")
    if seconds < 0 or seconds != seconds or seconds == float("inf"):
        raise ValueError(f"a duration must be a finite number >= 0, got {value!r}")
    return seconds


def format_duration(seconds: float) -> str:
    """Format seconds the way the settings accept them (`"250ms"`, `"2s"`)."""
    if seconds and seconds < 1:
        return f"{seconds * 1000:g}ms"
    return f"{seconds:g}s"


Duration = Annotated[float, BeforeValidator(parse_duration)]
"""A settings field type: seconds as a float, parsed from a human duration."""
