"""The built-in transport: one httpx `AsyncClient` with a shared connection pool."""

from __future__ import annotations

import http.cookiejar
from collections.abc import Callable
from typing import Any

import anyio
import httpx

from faultguard_core._markers import hookimpl
from faultguard_core.bulkhead import Bulkhead
from faultguard_core.settings import Settings
from faultguard_core.transport.base import (
    PoolTimeoutError,
    Transport,
    UpstreamConnectError,
    UpstreamProtocolError,
    UpstreamRequest,
    UpstreamResponse,
    UpstreamTimeoutError,
    read_body,
)


def _no_cookies() -> http.cookiejar.CookieJar:
    """Return a cookie jar that stores nothing.

    The client is shared by every caller, so a cookie one upstream set for
    one caller would otherwise be sent on other callers' requests.
    """
    return http.cookiejar.CookieJar(
        policy=http.cookiejar.DefaultCookiePolicy(allowed_domains=[])
    )


class HttpxTransport(Transport):
    """Sends requests through one pooled `httpx.AsyncClient`.

    The attempt timeout covers the wait for a pooled connection, connecting,
    sending, the headers and the whole body: a server that drips its body
    byte by byte is cut off when the timeout ends, not when one read stalls.
    Redirects are returned as they are unless `follow_redirects` is set, so a
    redirect cannot lead the call to a target that the security policy never
    checked.

    At most `max_connections` requests run at once. Later ones queue in a
    FIFO in front of the pool, and one that gets no slot within its timeout
    raises `PoolTimeoutError`, so a saturated pool is told apart from a slow
    upstream.

    A replay-safe request that fails on a reused keep-alive connection before
    any response byte arrived (the upstream closed the idle connection just
    as it was reused) is sent once more on a new connection, within the same
    timeout. The caller sees one attempt.
    """

    def __init__(
        self,
        *,
        max_connections: int = 100,
        max_keepalive_connections: int = 20,
        keepalive_expiry: float = 5.0,
        max_response_bytes: int = 10_485_760,
        follow_redirects: bool = False,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        self._max_response_bytes = max_response_bytes
        self._slots = Bulkhead(max_connections)
        self._client = client or httpx.AsyncClient(
            limits=httpx.Limits(
                max_connections=max_connections,
                max_keepalive_connections=max_keepalive_connections,
                keepalive_expiry=keepalive_expiry,
            ),
            follow_redirects=follow_redirects,
            # Environment proxies would send upstream calls elsewhere.
            trust_env=False,
            cookies=_no_cookies(),
        )
        # Replays need a connection that is new for certain, so they use a
        # client that keeps no idle connections. They still hold a slot of
        # `_slots`, so both clients together stay within `max_connections`.
        self._fresh_client = httpx.AsyncClient(
            limits=httpx.Limits(
                max_connections=max_connections, max_keepalive_connections=0
            ),
            follow_redirects=follow_redirects,
            trust_env=False,
            cookies=_no_cookies(),
        )
        self.replays = 0
        """Requests resent on a new connection after a stale keep-alive one."""

    async def send(self, request: UpstreamRequest, timeout: float) -> UpstreamResponse:
        started = anyio.current_time()
        if not await self._slots.acquire(timeout):
            raise PoolTimeoutError(
                f"no upstream connection free within {timeout:.3f}s"
                f" (transport.max_connections = {self._slots.limit})"
            )

        try:
            remaining = timeout - (anyio.current_time() - started)
            if remaining <= 0:
                raise PoolTimeoutError(
                    f"no upstream connection free within {timeout:.3f}s"
                )
            return await self._send_translated(request, remaining)
        finally:
            self._slots.release()

    async def _send_translated(
        self, request: UpstreamRequest, timeout: float
    ) -> UpstreamResponse:
        try:
            with anyio.fail_after(timeout):
                return await self._send_or_replay(request, timeout)
        except TimeoutError as exc:
            raise UpstreamTimeoutError(
                f"no complete response within {timeout:.3f}s"
            ) from exc
        except httpx.PoolTimeout as exc:
            raise PoolTimeoutError(
                f"no pooled connection free within {timeout:.3f}s"
            ) from exc
        except httpx.ConnectTimeout as exc:
            error = UpstreamTimeoutError(f"connect timed out after {timeout:.3f}s")
            error.request_sent = False
            raise error from exc
        except httpx.TimeoutException as exc:
            raise UpstreamTimeoutError(f"timed out: {exc}") from exc
        except httpx.ConnectError as exc:
            raise UpstreamConnectError(f"connection failed: {exc}") from exc
        except (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError) as exc:
            raise UpstreamProtocolError(f"connection broke: {exc!r}") from exc
        except httpx.TransportError as exc:
            raise UpstreamProtocolError(f"transport failed: {exc!r}") from exc
        except httpx.DecodingError as exc:
            raise UpstreamProtocolError(
                f"response body does not match its Content-Encoding: {exc}"
            ) from exc
        except httpx.RequestError as exc:
            raise UpstreamProtocolError(f"request failed: {exc!r}") from exc

    async def _send_or_replay(
        self, request: UpstreamRequest, timeout: float
    ) -> UpstreamResponse:
        trace = _ConnectionTrace()
        try:
            return await self._send(self._client, request, timeout, trace)
        except (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError):
            if not (trace.is_stale_reuse() and request.is_replay_safe()):
                raise

        self.replays += 1
        return await self._send(self._fresh_client, request, timeout, None)

    async def _send(
        self,
        client: httpx.AsyncClient,
        request: UpstreamRequest,
        timeout: float,
        trace: _ConnectionTrace | None,
    ) -> UpstreamResponse:
        extensions = {"trace": trace} if trace is not None else None
        async with client.stream(
            request.method,
            request.url,
            headers=list(request.headers),
            content=request.body,
            timeout=httpx.Timeout(timeout),
            extensions=extensions,
        ) as response:
            declared = response.headers.get("content-length", "")
            body = await read_body(
                response.aiter_bytes(),
                self._max_response_bytes,
                int(declared) if declared.isdigit() else None,
            )
            return UpstreamResponse(
                status_code=response.status_code,
                headers=tuple(response.headers.multi_items()),
                body=body,
            )

    async def aclose(self) -> None:
        await self._client.aclose()
        await self._fresh_client.aclose()


class _ConnectionTrace:
    """An httpcore `trace` extension that notes whether a request opened a
    new connection and whether the response head arrived.

    httpcore emits `connection.connect_tcp.started` only when it opens a new
    connection, so its absence means the request went out on a reused one.
    """

    __slots__ = ("connected", "response_started")

    def __init__(self) -> None:
        self.connected = False
        self.response_started = False

    async def __call__(self, event: str, info: dict[str, Any]) -> None:
        if event == "connection.connect_tcp.started":
            self.connected = True
        elif event.endswith(".receive_response_headers.complete"):
            self.response_started = True

    def is_stale_reuse(self) -> bool:
        """Return True if a reused connection failed before any response head."""
        return not self.connected and not self.response_started


def _build(settings: Settings) -> Transport:
    return HttpxTransport(
        max_connections=settings.transport.max_connections,
        max_keepalive_connections=settings.transport.max_keepalive_connections,
        keepalive_expiry=settings.transport.keepalive_expiry,
        max_response_bytes=settings.request.max_response_bytes,
        follow_redirects=settings.request.follow_redirects,
    )


@hookimpl
def faultguard_register_transports(
    register: Callable[[str, Callable[[Settings], Transport]], None],
) -> None:
    register("httpx", _build)
