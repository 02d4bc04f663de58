"""The faultguard exception tree, rooted in `FaultguardError`."""

from __future__ import annotations


class FaultguardError(Exception):
    """Base class of every error that faultguard raises on purpose."""


class ConfigError(FaultguardError):
    """A setting is missing, invalid or names something that does not exist."""


class PluginError(FaultguardError):
    """A plugin failed to load, or two plugins register the same name."""


class StorageError(FaultguardError):
    """A storage backend failed to read or write."""


class CircuitOpenError(FaultguardError):
    """The breaker rejected a call because it is open or out of probe slots.

    `retry_after` is the number of seconds until the breaker turns half-open
    and admits a probe, 0.0 when it is half-open and every probe slot is
    taken, or `math.inf` when it is forced open and only a manual action
    admits calls again.
    """

    def __init__(self, name: str, state: str, retry_after: float) -> None:
        self.name = name
        self.state = state
        self.retry_after = retry_after
        if retry_after == float("inf"):
            message = f"circuit {name!r} is {state} until an operator resets it"
        else:
            message = f"circuit {name!r} is {state}; retry in {retry_after:.3f}s"
        super().__init__(message)


class TargetForbiddenError(FaultguardError):
    """The security policy forbids calling this URL."""


class CallFailedError(FaultguardError):
    """A guarded call produced no deliverable response and no fallback existed.

    `attempts` is the number of upstream attempts sent; `state` is the
    breaker state when the call ended.
    """

    def __init__(self, message: str, *, service: str, attempts: int, state: str):
        self.service = service
        self.attempts = attempts
        self.state = state
        super().__init__(message)


class UpstreamFailedError(CallFailedError):
    """Every attempt failed (error status, connection or timeout failure).

    `upstream_status` is the status of the last failed response, or None if
    the last attempt got no response at all.
    """

    def __init__(
        self,
        message: str,
        *,
        service: str,
        attempts: int,
        state: str,
        upstream_status: int | None,
    ):
        self.upstream_status = upstream_status
        super().__init__(message, service=service, attempts=attempts, state=state)


class DeadlineExceededError(CallFailedError):
    """The call's deadline passed before a deliverable response arrived."""


class CircuitRejectedError(CallFailedError):
    """The breaker rejected the call and no fallback existed.

    `retry_after` is the number of seconds until the breaker admits a probe.
    """

    def __init__(
        self,
        message: str,
        *,
        service: str,
        attempts: int,
        state: str,
        retry_after: float,
    ):
        self.retry_after = retry_after
        super().__init__(message, service=service, attempts=attempts, state=state)
