"""faultguard: a fault-tolerance layer for calls to unreliable HTTP services.

Python applications use `Guard` directly; plugin authors mark their hook
implementations with `hookimpl`. Nothing is built at import time.
"""

from faultguard_core._markers import hookimpl
from faultguard_core.breaker import (
    BreakerEvent,
    BreakerSnapshot,
    BreakerState,
    CallRecorded,
    CallRejected,
    CircuitBreaker,
    Outcome,
    Permit,
    StateChange,
)
from faultguard_core.circuit import Circuit, CircuitCall, circuit
from faultguard_core.classification import Classifier, classify
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
from faultguard_core.reload import Reloader
from faultguard_core.settings import Settings, load_settings

__all__ = [
    "BreakerEvent",
    "BreakerSnapshot",
    "BreakerState",
    "Call",
    "CallFailedError",
    "CallRecorded",
    "CallRejected",
    "CallResult",
    "Circuit",
    "CircuitBreaker",
    "CircuitCall",
    "CircuitOpenError",
    "CircuitRejectedError",
    "Classifier",
    "Clock",
    "ConfigError",
    "DeadlineExceededError",
    "FakeClock",
    "FaultguardError",
    "Guard",
    "Outcome",
    "Permit",
    "PluginError",
    "Reloader",
    "Settings",
    "StateChange",
    "StorageError",
    "SystemClock",
    "TargetForbiddenError",
    "UpstreamFailedError",
    "circuit",
    "classify",
    "hookimpl",
    "load_settings",
]
