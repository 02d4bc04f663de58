"""The transport contract and the errors a transport raises."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import AsyncIterable
from dataclasses import dataclass

from faultguard_core._headers import IDEMPOTENT_METHODS
from faultguard_core.errors import FaultguardError


@dataclass(frozen=True, slots=True)
class UpstreamRequest:
    """One request to send upstream; hop-by-hop headers are already removed.

    `replay_safe` states whether the request may reach the
    upstream twice. A transport uses it only to resend a request once on a
    fresh connection when a reused keep-alive connection turns out to be
    closed before any response byte arrived. None means "decide by the
    method": GET, HEAD, OPTIONS, PUT, DELETE and TRACE are replay-safe.
    """

    method: str
    url: str
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes | None = None
    replay_safe: bool | None = None

    def is_replay_safe(self) -> bool:
        """Return `replay_safe`, or whether the method is idempotent if unset."""
        if self.replay_safe is not None:
            return self.replay_safe
        return self.method.upper() in IDEMPOTENT_METHODS


@dataclass(frozen=True, slots=True)
class UpstreamResponse:
    """A complete upstream response: the whole body has been read."""

    status_code: int
    headers: tuple[tuple[str, str], ...]
    body: bytes

    def header(self, name: str) -> str | None:
        """Return the first value of header `name` (case-insensitive), or None."""
        wanted = name.lower()
        for key, value in self.headers:
            if key.lower() == wanted:
                return value
        return None


class TransportError(FaultguardError):
    """An attempt produced no complete response.

    `request_sent` is False only when the transport is certain that no byte of the
    request reached the upstream (a refused connection), which makes even a
    non-idempotent request safe to retry.
    """

    request_sent: bool = True


class UpstreamConnectError(TransportError):
    """The connection could not be established; nothing was sent."""

    request_sent = False


class UpstreamTimeoutError(TransportError):
    """The attempt did not finish (headers and whole body) within its timeout."""


class UpstreamProtocolError(TransportError):
    """The connection broke or the upstream sent something that is not HTTP."""


class PoolTimeoutError(TransportError):
    """No pooled connection was free within the attempt timeout; nothing was sent.

    This is a local condition (faultguard's own pool is saturated), so it is
    never an upstream failure.
    """

    request_sent = False


class ResponseTooLargeError(TransportError):
    """The response body exceeded `request.max_response_bytes`."""


async def read_body(
    chunks: AsyncIterable[bytes], max_bytes: int, declared: int | None = None
) -> bytes:
    """Read a whole response body of at most `max_bytes` bytes.

    Raises `ResponseTooLargeError` as soon as the declared `Content-Length`
    or the bytes read so far exceed the limit, so an oversized body is never
    buffered whole.
    """
    if declared is not None and declared > max_bytes:
        raise ResponseTooLargeError(_too_large(max_bytes))
    parts = []
    size = 0
    async for chunk in chunks:
        size += len(chunk)
        if size > max_bytes:
            raise ResponseTooLargeError(_too_large(max_bytes))
        parts.append(chunk)
    return b"".join(parts)


def _too_large(max_bytes: int) -> str:
    return f"response body over request.max_response_bytes ({max_bytes} bytes)"


class Transport(ABC):
    """Sends one request and returns the complete response.

    Implementations keep a shared connection pool and must be safe to call
    from many tasks at once.
    """

    @abstractmethod
    async def send(self, request: UpstreamRequest, timeout: float) -> UpstreamResponse:
        """Send `request` and read the whole response within `timeout` seconds.

        Raises a `TransportError` subclass for every failure to get a complete
        response; an HTTP error status is a response, not an exception.
        `timeout` covers the wait for a pooled connection too, and a transport
        that runs out of time there raises `PoolTimeoutError`. Cancellation
        propagates unchanged and leaves the pool usable.
        """

    async def aclose(self) -> None:
        """Close pooled connections. Called once at shutdown."""
        return None
