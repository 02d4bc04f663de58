"""The `hookimpl` marker that plugins put on their hook implementations."""

import pluggy

hookimpl = pluggy.HookimplMarker("faultguard")
