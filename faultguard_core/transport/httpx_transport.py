"""The built-in transport: one httpx `AsyncClient` with a shared connection pool."""

from __future__ import annotations

from collections.abc import Callable

import anyio
import httpx

from faultguard_core._markers import hookimpl
from faultguard_core.settings import Settings
from faultguard_core.transport.base import (
    ResponseTooLargeError,
    Transport,
    UpstreamConnectError,
    UpstreamProtocolError,
    UpstreamRequest,
    UpstreamResponse,
    UpstreamTimeoutError,
)


class HttpxTransport(Transport):
    """Sends requests through one pooled `httpx.AsyncClient`.

    The attempt timeout covers connecting, sending, the headers and the whole
    body: a server that drips its body byte by byte is cut off when the
    timeout ends, not when one read stalls. Redirects are returned as they are
    unless `follow_redirects` is set, so a redirect cannot lead the call to a
    target that the security policy never checked.
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
        self._client = client or httpx.AsyncClient(
            limits=httpx.Limits(
                max_connections=max_connections,
                max_keepalive_connections=max_keepalive_connections,
                keepalive_expiry=keepalive_expiry,
            ),
            follow_redirects=follow_redirects,
            # Environment proxies would send upstream calls elsewhere.
            trust_env=False,
        )

    async def send(self, request: UpstreamRequest, timeout: float) -> UpstreamResponse:
        try:
            with anyio.fail_after(timeout):
                return await self._send(request, timeout)
        except TimeoutError as exc:
            raise UpstreamTimeoutError(
                f"no complete response within {timeout:.3f}s"
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

    async def _send(self, request: UpstreamRequest, timeout: float) -> UpstreamResponse:
        async with self._client.stream(
            request.method,
            request.url,
            headers=list(request.headers),
            content=request.body,
            timeout=httpx.Timeout(timeout),
        ) as response:
            declared = response.headers.get("content-length")
            if (
                declared is not None
                and declared.isdigit()
                and int(declared) > self._max_response_bytes
            ):
                raise ResponseTooLargeError(self._too_large_message())
            chunks = []
            size = 0
            async for chunk in response.aiter_bytes():
                size += len(chunk)
                if size > self._max_response_bytes:
                    raise ResponseTooLargeError(self._too_large_message())
                chunks.append(chunk)
            return UpstreamResponse(
                status_code=response.status_code,
                headers=tuple(response.headers.multi_items()),
                body=b"".join(chunks),
            )

    def _too_large_message(self) -> str:
        return (
            f"response body over request.max_response_bytes"
            f" ({self._max_response_bytes} bytes)"
        )

    async def aclose(self) -> None:
        await self._client.aclose()


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
