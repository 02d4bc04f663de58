"""faultguard: a fault-tolerance layer for calls to unreliable HTTP services.

Python applications use `Guard` directly; plugin authors mark their hook
implementations with `hookimpl`. Nothing is built at import time.
"""

from faultguard_core._markers import hookimpl
from faultguard_core.breaker import (
    BreakerSnapshot,
    BreakerState,
    CircuitBreaker,
    Outcome,
    Permit,
    StateChange,
)
from faultguard_core.clock import Clock, FakeClock, SystemClock
from faultguard_core.errors import (
    CallFailedError,
    CircuitOpenError,
    CircuitRejectedError,
    ConfigError,
    DeadlineExceededError,
    FaultguardError,
    PluginError,
    StorageError,
    TargetForbiddenError,
    UpstreamFailedError,
)
from faultguard_core.guard import Call, CallResult, Guard
from faultguard_core.settings import Settings, load_settings

__all__ = [
    "BreakerSnapshot",
    "BreakerState",
    "Call",
    "CallFailedError",
    "CallResult",
    "CircuitBreaker",
    "CircuitOpenError",
    "CircuitRejectedError",
    "Clock",
    "ConfigError",
    "DeadlineExceededError",
    "FakeClock",
    "FaultguardError",
    "Guard",
    "Outcome",
    "Permit",
    "PluginError",
    "Settings",
    "StateChange",
    "StorageError",
    "SystemClock",
    "TargetForbiddenError",
    "UpstreamFailedError",
    "hookimpl",
    "load_settings",
]
