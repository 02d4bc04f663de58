"""The httpx transport against the scripted upstream on 127.0.0.1.

Covers the attempt timeout over a trickling body, the replay of a request
whose reused keep-alive connection was closed, pool waits and cancellation.
"""

from __future__ import annotations

import socket
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import anyio
import pytest

sys.path.insert(0, str(Path(__file__).parents[1]))

from upstream import (
    ScriptedUpstream,
    close_before_response,
    hang,
    ok,
    slow_drip,
)

from faultguard_core.transport.base import (
    PoolTimeoutError,
    UpstreamConnectError,
    UpstreamProtocolError,
    UpstreamRequest,
    UpstreamTimeoutError,
)
from faultguard_core.transport.httpx_transport import HttpxTransport

pytestmark = pytest.mark.anyio


@pytest.fixture
def upstream() -> Iterator[ScriptedUpstream]:
    with ScriptedUpstream() as server:
        yield server


@pytest.fixture
async def transport() -> AsyncIterator[HttpxTransport]:
    client = HttpxTransport(max_connections=2)
    yield client
    await client.aclose()


def get(upstream: ScriptedUpstream, path: str, method: str = "GET") -> UpstreamRequest:
    return UpstreamRequest(method=method, url=upstream.url_for(path))


async def test_transport_trickle_cut_at_timeout(
    upstream: ScriptedUpstream, transport: HttpxTransport
) -> None:
    # 200 bytes at one byte per 50 ms would take 10 s; every read succeeds.
    upstream.script("/drip", slow_drip(b"x" * 200, interval=0.05))
    started = time.monotonic()

    with pytest.raises(UpstreamTimeoutError):
        await transport.send(get(upstream, "/drip"), 0.5)

    assert time.monotonic() - started < 2.0


async def test_transport_replays_stale_keepalive(
    upstream: ScriptedUpstream, transport: HttpxTransport
) -> None:
    upstream.script("/s", ok(), close_before_response(), ok(body="fresh"))
    await transport.send(get(upstream, "/s"), 2.0)

    response = await transport.send(get(upstream, "/s"), 2.0)

    assert response.body == b"fresh"
    assert transport.replays == 1
    assert upstream.hits["/s"] == 3
    assert upstream.connections == 2


async def test_transport_post_not_replayed(
    upstream: ScriptedUpstream, transport: HttpxTransport
) -> None:
    upstream.script("/s", ok(), close_before_response(), ok())
    await transport.send(get(upstream, "/s"), 2.0)

    with pytest.raises(UpstreamProtocolError):
        await transport.send(get(upstream, "/s", method="POST"), 2.0)

    assert transport.replays == 0
    assert upstream.hits["/s"] == 2


async def test_transport_replay_safe_post_replayed(
    upstream: ScriptedUpstream, transport: HttpxTransport
) -> None:
    upstream.script("/s", ok(), close_before_response(), ok())
    await transport.send(get(upstream, "/s"), 2.0)
    request = UpstreamRequest("POST", upstream.url_for("/s"), replay_safe=True)

    response = await transport.send(request, 2.0)

    assert response.status_code == 200
    assert transport.replays == 1


async def test_transport_fresh_connection_close_not_replayed(
    upstream: ScriptedUpstream, transport: HttpxTransport
) -> None:
    upstream.script("/s", close_before_response(), ok())

    with pytest.raises(UpstreamProtocolError):
        await transport.send(get(upstream, "/s"), 2.0)

    assert transport.replays == 0
    assert upstream.hits["/s"] == 1


async def test_transport_pool_wait_times_out(upstream: ScriptedUpstream) -> None:
    upstream.script("/hang", hang())
    transport = HttpxTransport(max_connections=1)

    async with anyio.create_task_group() as group:
        group.start_soon(transport.send, get(upstream, "/hang"), 10.0)
        reached = await anyio.to_thread.run_sync(upstream.wait_for_hits, "/hang", 1)
        assert reached

        with pytest.raises(PoolTimeoutError) as caught:
            await transport.send(get(upstream, "/other"), 0.2)
        group.cancel_scope.cancel()
    await transport.aclose()

    assert caught.value.request_sent is False
    assert upstream.hits["/other"] == 0


async def test_transport_cancelled_sends_free_pool(
    upstream: ScriptedUpstream, transport: HttpxTransport
) -> None:
    upstream.script("/hang", hang())

    for _ in range(5):
        async with anyio.create_task_group() as group:
            for _ in range(4):
                group.start_soon(transport.send, get(upstream, "/hang"), 30.0)
            await anyio.sleep(0.05)
            group.cancel_scope.cancel()

    response = await transport.send(get(upstream, "/ok"), 2.0)

    assert response.status_code == 200
    assert upstream.hits["/hang"] == 10


async def test_transport_refused_marks_unsent() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    transport = HttpxTransport()

    with pytest.raises(UpstreamConnectError) as caught:
        await transport.send(UpstreamRequest("POST", f"http://127.0.0.1:{port}/"), 2.0)
    await transport.aclose()

    assert caught.value.request_sent is False
