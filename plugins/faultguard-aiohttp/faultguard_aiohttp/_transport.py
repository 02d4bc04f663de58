"""The aiohttp transport."""

from __future__ import annotations

import aiohttp
import anyio

from faultguard_core.bulkhead import Bulkhead
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

_CHUNK_BYTES = 65_536


class AiohttpTransport(Transport):
    """Sends requests through one pooled `aiohttp.ClientSession`.

    The session is created on the first request, inside the running event
    loop, as aiohttp requires. At most `max_connections` requests run at
    once; later ones wait in a FIFO and raise `PoolTimeoutError` when no slot
    frees up within their timeout.
    """

    def __init__(
        self,
        *,
        max_connections: int = 100,
        keepalive_expiry: float = 5.0,
        max_response_bytes: int = 10_485_760,
        follow_redirects: bool = False,
    ) -> None:
        self._max_connections = max_connections
        self._keepalive_expiry = keepalive_expiry
        self._max_response_bytes = max_response_bytes
        self._follow_redirects = follow_redirects
        self._slots = Bulkhead(max_connections)
        self._session: aiohttp.ClientSession | None = None

    def _session_for_loop(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(
                limit=self._max_connections,
                limit_per_host=0,
                keepalive_timeout=self._keepalive_expiry,
            )
            self._session = aiohttp.ClientSession(
                connector=connector,
                # The attempt timeout is enforced around the whole exchange.
                timeout=aiohttp.ClientTimeout(total=None),
                # Environment proxies would send upstream calls elsewhere.
                trust_env=False,
                auto_decompress=True,
                # The session is shared by every caller, so cookies one caller
                # received must never be sent on another caller's request.
                cookie_jar=aiohttp.DummyCookieJar(),
                skip_auto_headers=("User-Agent",),
            )
            # aiohttp resends an idempotent request once when the connection
            # breaks before a response, even on a fresh connection, so one
            # attempt could reach the upstream twice without the guard knowing.
            # NOTE: aiohttp has no public switch for this; `_retry_connection`
            # is private, and the transport contract test counts upstream
            # hits so a rename in a newer aiohttp fails loudly.
            self._session._retry_connection = False
        return self._session

    async def send(self, request: UpstreamRequest, timeout: float) -> UpstreamResponse:
        started = anyio.current_time()
        if not await self._slots.acquire(timeout):
            raise PoolTimeoutError(
                f"no upstream connection free within {timeout:.3f}s"
                f" (transport.max_connections = {self._slots.limit})"
            )
        try:
            remaining = timeout - (anyio.current_time() - started)
            with anyio.fail_after(max(remaining, 0.0)):
                return await self._exchange(request)
        except TimeoutError as exc:
            raise UpstreamTimeoutError(
                f"no complete response within {timeout:.3f}s"
            ) from exc
        except aiohttp.ClientConnectorError as exc:
            raise UpstreamConnectError(f"connection failed: {exc}") from exc
        except (aiohttp.ClientPayloadError, aiohttp.ServerDisconnectedError) as exc:
            raise UpstreamProtocolError(f"connection broke: {exc!r}") from exc
        except (aiohttp.ClientError, OSError) as exc:
            raise UpstreamProtocolError(f"transport failed: {exc!r}") from exc
        finally:
            self._slots.release()

    async def _exchange(self, request: UpstreamRequest) -> UpstreamResponse:
        session = self._session_for_loop()
        async with session.request(
            request.method,
            request.url,
            headers=list(request.headers),
            data=request.body,
            allow_redirects=self._follow_redirects,
        ) as response:
            body = await read_body(
                response.content.iter_chunked(_CHUNK_BYTES),
                self._max_response_bytes,
                response.content_length,
            )
            return UpstreamResponse(
                status_code=response.status,
                headers=tuple(response.headers.items()),
                body=body,
            )

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
