"""Every transport against the scripted upstream: one contract, each fault."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator

import anyio
import pytest
from upstream import (
    ScriptedUpstream,
    close_before_response,
    hang,
    ok,
    redirect,
    reset,
    slow_drip,
    status,
)

from faultguard_core.transport.base import (
    ResponseTooLargeError,
    Transport,
    UpstreamConnectError,
    UpstreamProtocolError,
    UpstreamRequest,
    UpstreamTimeoutError,
)
from faultguard_core.transport.httpx_transport import HttpxTransport

pytestmark = pytest.mark.anyio

MAX_BODY = 64 * 1024


def make_httpx(max_connections: int = 100) -> Transport:
    return HttpxTransport(max_response_bytes=MAX_BODY, max_connections=max_connections)


def make_aiohttp(max_connections: int = 100) -> Transport:
    plugin = pytest.importorskip("faultguard_aiohttp")
    transport: Transport = plugin.AiohttpTransport(
        max_response_bytes=MAX_BODY, max_connections=max_connections
    )
    return transport


@pytest.fixture(params=[make_httpx, make_aiohttp], ids=["httpx", "aiohttp"])
async def transport(request: pytest.FixtureRequest) -> AsyncIterator[Transport]:
    instance: Transport = request.param()
    yield instance
    await instance.aclose()


@pytest.fixture
def upstream() -> Iterator[ScriptedUpstream]:
    with ScriptedUpstream() as server:
        yield server


def get(upstream: ScriptedUpstream, path: str) -> UpstreamRequest:
    return UpstreamRequest("GET", upstream.url_for(path))


async def test_body_and_status_returned(
    transport: Transport, upstream: ScriptedUpstream
) -> None:
    upstream.script("/a", ok(body=b"hello", headers={"X-Upstream": "1"}))

    response = await transport.send(get(upstream, "/a"), timeout=5)

    assert response.status_code == 200
    assert response.body == b"hello"
    assert response.header("x-upstream") == "1"


async def test_error_status_is_a_response(
    transport: Transport, upstream: ScriptedUpstream
) -> None:
    upstream.script("/a", status(503, body=b"busy"))

    response = await transport.send(get(upstream, "/a"), timeout=5)

    assert response.status_code == 503
    assert response.body == b"busy"


async def test_method_headers_body_sent(
    transport: Transport, upstream: ScriptedUpstream
) -> None:
    request = UpstreamRequest(
        "POST",
        upstream.url_for("/a"),
        headers=(("X-Trace", "t1"), ("Content-Type", "application/json")),
        body=b'{"n": 1}',
    )

    await transport.send(request, timeout=5)

    seen = upstream.requests_for("/a")[0]
    assert seen.method == "POST"
    assert seen.headers["x-trace"] == "t1"
    assert seen.body == b'{"n": 1}'


async def test_refused_connection_sent_nothing(transport: Transport) -> None:
    closed_port = ScriptedUpstream().start()
    url = closed_port.url_for("/a")
    closed_port.stop()

    with pytest.raises(UpstreamConnectError) as caught:
        await transport.send(UpstreamRequest("GET", url), timeout=5)

    assert caught.value.request_sent is False


async def test_reset_is_protocol_error(
    transport: Transport, upstream: ScriptedUpstream
) -> None:
    upstream.script("/a", reset())

    with pytest.raises(UpstreamProtocolError) as caught:
        await transport.send(get(upstream, "/a"), timeout=5)

    assert caught.value.request_sent is True
    # A fresh connection that breaks is one attempt: the request is not resent.
    assert upstream.hits["/a"] == 1


async def test_close_before_response_is_error(
    transport: Transport, upstream: ScriptedUpstream
) -> None:
    upstream.script("/a", close_before_response())

    with pytest.raises(UpstreamProtocolError):
        await transport.send(get(upstream, "/a"), timeout=5)


async def test_hang_times_out(transport: Transport, upstream: ScriptedUpstream) -> None:
    upstream.script("/a", hang())
    started = time.monotonic()

    with pytest.raises(UpstreamTimeoutError):
        await transport.send(get(upstream, "/a"), timeout=0.3)

    assert time.monotonic() - started < 2.0


async def test_timeout_covers_whole_body(
    transport: Transport, upstream: ScriptedUpstream
) -> None:
    # 40 bytes at 50 ms each take 2 s; every single read is fast.
    upstream.script("/a", slow_drip(b"x" * 40, interval=0.05))
    started = time.monotonic()

    with pytest.raises(UpstreamTimeoutError):
        await transport.send(get(upstream, "/a"), timeout=0.4)

    assert time.monotonic() - started < 1.5


async def test_redirect_returned_not_followed(
    transport: Transport, upstream: ScriptedUpstream
) -> None:
    upstream.script("/a", redirect(upstream.url_for("/b")))

    response = await transport.send(get(upstream, "/a"), timeout=5)

    assert response.status_code == 302
    assert upstream.hits["/b"] == 0


async def test_large_body_rejected(
    transport: Transport, upstream: ScriptedUpstream
) -> None:
    upstream.script("/a", ok(body=b"x" * (MAX_BODY + 1)))

    with pytest.raises(ResponseTooLargeError):
        await transport.send(get(upstream, "/a"), timeout=5)


async def test_keep_alive_reuses_connection(
    transport: Transport, upstream: ScriptedUpstream
) -> None:
    for _ in range(5):
        await transport.send(get(upstream, "/a"), timeout=5)

    assert upstream.hits["/a"] == 5
    assert upstream.connections == 1


async def test_cancelled_sends_leave_pool_usable(upstream: ScriptedUpstream) -> None:
    # 20 cancelled sends through a pool of 5 would exhaust it if any leaked.
    for make in (make_httpx, make_aiohttp):
        transport = make(max_connections=5)
        upstream.script("/slow", hang())
        async with anyio.create_task_group() as group:
            for _ in range(20):
                group.start_soon(transport.send, get(upstream, "/slow"), 30)
            await anyio.sleep(0.2)
            group.cancel_scope.cancel()

        response = await transport.send(get(upstream, "/a"), timeout=5)

        assert response.status_code == 200
        await transport.aclose()


async def test_cookies_never_stored(
    transport: Transport, upstream: ScriptedUpstream
) -> None:
    # The transport is shared by every caller: a cookie set for one caller
    # must not be sent on the next request.
    upstream.script("/login", ok(headers={"Set-Cookie": "session=ALICE; Path=/"}))

    await transport.send(get(upstream, "/login"), timeout=5)
    await transport.send(get(upstream, "/other"), timeout=5)

    assert "cookie" not in upstream.requests_for("/other")[0].headers


async def test_bad_content_encoding_is_protocol_error(
    transport: Transport, upstream: ScriptedUpstream
) -> None:
    upstream.script("/a", ok(body=b"not gzip", headers={"Content-Encoding": "gzip"}))

    with pytest.raises(UpstreamProtocolError):
        await transport.send(get(upstream, "/a"), timeout=5)
