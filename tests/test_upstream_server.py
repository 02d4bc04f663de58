"""Tests of the scripted upstream server that faultguard's other tests rely on."""

from __future__ import annotations

import json
import select
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from upstream import (
    RecordedRequest,
    ScriptedUpstream,
    chunked,
    close_before_response,
    delay,
    hang,
    ok,
    redirect,
    reset,
    retry_after,
    slow_drip,
    status,
)

UPSTREAM_SCRIPT = Path(__file__).with_name("upstream.py")


@pytest.fixture
def upstream() -> Iterator[ScriptedUpstream]:
    with ScriptedUpstream() as server:
        yield server


def make_client() -> httpx.Client:
    # verify=False skips loading the CA bundle, which costs tens of milliseconds
    # per client. Every URL in this file is plain http on 127.0.0.1.
    return httpx.Client(timeout=2.0, trust_env=False, verify=False)


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with make_client() as http_client:
        yield http_client


def open_socket(server: ScriptedUpstream) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=2.0)
    return sock


def receive_until_closed(sock: socket.socket) -> bytes:
    chunks: list[bytes] = []
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            return b"".join(chunks)

        chunks.append(chunk)


# ---- default response and scripts ----------------------------------------


def test_default_response_counts_hits(
    upstream: ScriptedUpstream, client: httpx.Client
) -> None:
    first = client.get(upstream.url_for("/a"))
    second = client.get(upstream.url_for("/a"))

    assert first.status_code == 200
    assert first.json() == {"ok": True, "path": "/a", "n": 1}
    assert second.json() == {"ok": True, "path": "/a", "n": 2}
    assert first.headers["content-type"] == "application/json"


def test_script_consumed_then_last_repeats(
    upstream: ScriptedUpstream, client: httpx.Client
) -> None:
    upstream.script("/s", status(500), status(503), ok(body={"v": 1}))

    codes = [client.get(upstream.url_for("/s")).status_code for _ in range(5)]

    assert codes == [500, 503, 200, 200, 200]
    assert client.get(upstream.url_for("/s")).json() == {"v": 1}


def test_script_only_affects_its_path(
    upstream: ScriptedUpstream, client: httpx.Client
) -> None:
    upstream.script("/broken", status(500))

    assert client.get(upstream.url_for("/broken")).status_code == 500
    assert client.get(upstream.url_for("/fine")).status_code == 200


def test_script_ignores_query_string(
    upstream: ScriptedUpstream, client: httpx.Client
) -> None:
    upstream.script("/q", status(418))

    response = client.get(upstream.url_for("/q?x=1&y=2"))

    assert response.status_code == 418
    assert upstream.requests[0].path == "/q"
    assert upstream.requests[0].query == "x=1&y=2"
    assert upstream.requests[0].target == "/q?x=1&y=2"


def test_rescript_restarts_at_first_step(
    upstream: ScriptedUpstream, client: httpx.Client
) -> None:
    upstream.script("/r", status(500), ok())
    client.get(upstream.url_for("/r"))
    client.get(upstream.url_for("/r"))

    upstream.script("/r", status(502), ok())

    assert client.get(upstream.url_for("/r")).status_code == 502


def test_empty_script_restores_default(
    upstream: ScriptedUpstream, client: httpx.Client
) -> None:
    upstream.script("/d", status(500))
    upstream.script("/d")

    response = client.get(upstream.url_for("/d"))

    assert response.status_code == 200
    assert response.json() == {"ok": True, "path": "/d", "n": 1}


def test_wildcard_script_covers_unscripted_paths(
    upstream: ScriptedUpstream, client: httpx.Client
) -> None:
    upstream.script("*", status(503))
    upstream.script("/own", ok())

    assert client.get(upstream.url_for("/any")).status_code == 503
    assert client.get(upstream.url_for("/own")).status_code == 200


def test_script_rejects_non_step(upstream: ScriptedUpstream) -> None:
    with pytest.raises(TypeError, match="Step instances"):
        upstream.script("/x", 500)  # type: ignore[arg-type]


def test_custom_default_step() -> None:
    with (
        ScriptedUpstream(default=status(204)) as server,
        make_client() as http_client,
    ):
        response = http_client.get(server.url_for("/anything"))

    assert response.status_code == 204
    assert response.content == b""


# ---- response steps ------------------------------------------------------


def test_status_default_body_reports_failure(
    upstream: ScriptedUpstream, client: httpx.Client
) -> None:
    upstream.script("/e", status(500))

    response = client.get(upstream.url_for("/e"))

    assert response.json() == {"ok": False, "path": "/e", "n": 1, "status": 500}


def test_status_sends_body_and_headers(
    upstream: ScriptedUpstream, client: httpx.Client
) -> None:
    upstream.script("/h", status(429, body="slow down", headers={"X-Limit": "10"}))

    response = client.get(upstream.url_for("/h"))

    assert response.status_code == 429
    assert response.text == "slow down"
    assert response.headers["x-limit"] == "10"
    assert response.headers["content-type"] == "text/plain; charset=utf-8"


def test_ok_body_kinds_encoded(
    upstream: ScriptedUpstream, client: httpx.Client
) -> None:
    upstream.script("/bytes", ok(body=b"\x00\x01"))
    upstream.script("/list", ok(body=[1, 2]))

    raw = client.get(upstream.url_for("/bytes"))
    listed = client.get(upstream.url_for("/list"))

    assert raw.content == b"\x00\x01"
    assert raw.headers["content-type"] == "application/octet-stream"
    assert listed.json() == [1, 2]


def test_callable_body_sees_request(
    upstream: ScriptedUpstream, client: httpx.Client
) -> None:
    def echo(request: RecordedRequest) -> dict[str, str]:
        return {"method": request.method, "token": request.headers["x-token"]}

    upstream.script("/echo", ok(body=echo))

    response = client.post(upstream.url_for("/echo"), headers={"X-Token": "t1"})

    assert response.json() == {"method": "POST", "token": "t1"}


def test_retry_after_delta_seconds(
    upstream: ScriptedUpstream, client: httpx.Client
) -> None:
    upstream.script("/ra", retry_after(503, 7))

    response = client.get(upstream.url_for("/ra"))

    assert response.status_code == 503
    assert response.headers["retry-after"] == "7"


def test_retry_after_http_date_verbatim(
    upstream: ScriptedUpstream, client: httpx.Client
) -> None:
    date = "Wed, 21 Oct 2015 07:28:00 GMT"
    upstream.script("/ra", retry_after(429, date))

    response = client.get(upstream.url_for("/ra"))

    assert response.status_code == 429
    assert response.headers["retry-after"] == date


def test_redirect_not_followed_by_default(
    upstream: ScriptedUpstream, client: httpx.Client
) -> None:
    upstream.script("/old", redirect("/new"))

    response = client.get(upstream.url_for("/old"))

    assert response.status_code == 302
    assert response.headers["location"] == "/new"
    assert upstream.hits["/new"] == 0


def test_redirect_followed_reaches_target(
    upstream: ScriptedUpstream, client: httpx.Client
) -> None:
    upstream.script("/old", redirect("/new", code=307))

    response = client.get(upstream.url_for("/old"), follow_redirects=True)

    assert response.json() == {"ok": True, "path": "/new", "n": 1}


def test_redirect_rejects_non_redirect_code() -> None:
    with pytest.raises(ValueError, match="redirect code"):
        redirect("/x", code=200)


def test_chunked_response_body(
    upstream: ScriptedUpstream, client: httpx.Client
) -> None:
    upstream.script("/c", chunked([b"ab", "", "cd", b"e"]))

    response = client.get(upstream.url_for("/c"))

    assert response.headers["transfer-encoding"] == "chunked"
    assert "content-length" not in response.headers
    assert response.content == b"abcde"


def test_head_response_has_no_body(
    upstream: ScriptedUpstream, client: httpx.Client
) -> None:
    response = client.head(upstream.url_for("/head"))
    follow_up = client.get(upstream.url_for("/head"))

    assert response.status_code == 200
    assert response.content == b""
    assert int(response.headers["content-length"]) > 0
    assert follow_up.json()["n"] == 2


def test_declared_length_truncates_body(
    upstream: ScriptedUpstream, client: httpx.Client
) -> None:
    upstream.script("/t", ok(body=b"abc", headers={"Content-Length": "10"}))

    with pytest.raises(httpx.RemoteProtocolError):
        client.get(upstream.url_for("/t"))


# ---- fault steps ---------------------------------------------------------


def test_reset_raises_in_httpx(
    upstream: ScriptedUpstream, client: httpx.Client
) -> None:
    upstream.script("/reset", reset())

    with pytest.raises((httpx.ReadError, httpx.RemoteProtocolError)):
        client.get(upstream.url_for("/reset"))

    assert upstream.hits["/reset"] == 1


def test_reset_sends_tcp_rst(upstream: ScriptedUpstream) -> None:
    upstream.script("/reset", reset())

    with open_socket(upstream) as sock:
        sock.sendall(b"GET /reset HTTP/1.1\r\nHost: x\r\n\r\n")

        with pytest.raises(ConnectionResetError):
            receive_until_closed(sock)


def test_close_before_response_sends_fin(upstream: ScriptedUpstream) -> None:
    upstream.script("/close", close_before_response())

    with open_socket(upstream) as sock:
        sock.sendall(b"GET /close HTTP/1.1\r\nHost: x\r\n\r\n")

        assert receive_until_closed(sock) == b""


def test_close_before_response_in_httpx(
    upstream: ScriptedUpstream, client: httpx.Client
) -> None:
    upstream.script("/close", close_before_response())

    with pytest.raises(httpx.RemoteProtocolError):
        client.get(upstream.url_for("/close"))

    assert upstream.hits["/close"] == 1


def test_hang_causes_read_timeout(
    upstream: ScriptedUpstream, client: httpx.Client
) -> None:
    upstream.script("/hang", hang())

    started = time.monotonic()
    with pytest.raises(httpx.ReadTimeout):
        client.get(upstream.url_for("/hang"), timeout=0.3)

    assert time.monotonic() - started < 1.5
    assert upstream.hits["/hang"] == 1


def test_slow_drip_takes_n_intervals(
    upstream: ScriptedUpstream, client: httpx.Client
) -> None:
    upstream.script("/drip", slow_drip(b"abcde", interval=0.05))

    started = time.monotonic()
    response = client.get(upstream.url_for("/drip"))
    elapsed = time.monotonic() - started

    assert response.content == b"abcde"
    assert response.headers["content-length"] == "5"
    assert elapsed >= 5 * 0.05


def test_slow_drip_trips_read_timeout(
    upstream: ScriptedUpstream, client: httpx.Client
) -> None:
    upstream.script("/drip", slow_drip(b"abc", interval=0.5))

    with pytest.raises(httpx.ReadTimeout):
        client.get(upstream.url_for("/drip"), timeout=0.2)


def test_delay_then_answers(upstream: ScriptedUpstream, client: httpx.Client) -> None:
    upstream.script("/slow", delay(0.2, then=status(201)))

    started = time.monotonic()
    response = client.get(upstream.url_for("/slow"))
    elapsed = time.monotonic() - started

    assert response.status_code == 201
    assert elapsed >= 0.2


def test_delay_defaults_to_ok(upstream: ScriptedUpstream, client: httpx.Client) -> None:
    upstream.script("/slow", delay(0.01))

    response = client.get(upstream.url_for("/slow"))

    assert response.json() == {"ok": True, "path": "/slow", "n": 1}


def test_negative_durations_rejected() -> None:
    with pytest.raises(ValueError, match="delay"):
        delay(-1)

    with pytest.raises(ValueError, match="interval"):
        slow_drip(b"x", interval=-0.1)


# ---- recorded requests ---------------------------------------------------


def test_hits_record_method_headers_body(
    upstream: ScriptedUpstream, client: httpx.Client
) -> None:
    client.post(upstream.url_for("/p"), json={"a": 1}, headers={"X-Trace": "abc"})

    hits = upstream.hits
    request = hits.requests[0]

    assert hits["/p"] == 1
    assert hits.total == 1
    assert request.method == "POST"
    assert request.headers["x-trace"] == "abc"
    assert request.headers["X-TRACE"] == "abc"
    assert request.headers["content-type"] == "application/json"
    assert request.json() == {"a": 1}
    assert request.n == 1


def test_hits_of_unknown_path_zero(upstream: ScriptedUpstream) -> None:
    assert upstream.hits["/never"] == 0
    assert upstream.hits.total == 0


def test_repeated_header_values_kept(
    upstream: ScriptedUpstream, client: httpx.Client
) -> None:
    client.get(upstream.url_for("/m"), headers=[("X-Tag", "a"), ("X-Tag", "b")])

    headers = upstream.requests_for("/m")[0].headers

    assert headers.get_list("x-tag") == ["a", "b"]
    assert headers["x-tag"] == "a, b"


def test_chunked_request_body_read(
    upstream: ScriptedUpstream, client: httpx.Client
) -> None:
    def parts() -> Iterator[bytes]:
        yield b"hello "
        yield b"chunked "
        yield b"world"

    client.post(upstream.url_for("/up"), content=parts())
    after = client.get(upstream.url_for("/after"))

    request = upstream.requests_for("/up")[0]

    assert request.headers["transfer-encoding"] == "chunked"
    assert request.body == b"hello chunked world"
    assert after.status_code == 200
    assert upstream.connections == 1


def test_expect_continue_gets_interim(upstream: ScriptedUpstream) -> None:
    with open_socket(upstream) as sock:
        sock.sendall(
            b"POST /exp HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n"
            b"Expect: 100-continue\r\nConnection: close\r\n\r\n"
        )
        interim = sock.recv(len(b"HTTP/1.1 100 Continue\r\n\r\n"))
        sock.sendall(b"data")
        final = receive_until_closed(sock)

    assert interim == b"HTTP/1.1 100 Continue\r\n\r\n"
    assert final.startswith(b"HTTP/1.1 200 OK\r\n")
    assert upstream.requests[0].body == b"data"


def test_reset_clears_state(upstream: ScriptedUpstream, client: httpx.Client) -> None:
    upstream.script("/x", status(500))
    client.get(upstream.url_for("/x"))

    upstream.reset()
    response = client.get(upstream.url_for("/x"))

    assert response.status_code == 200
    assert response.json()["n"] == 1
    assert len(upstream.requests) == 1


def test_wait_for_hits_reached_and_timeout(
    upstream: ScriptedUpstream, client: httpx.Client
) -> None:
    client.get(upstream.url_for("/w"))

    assert upstream.wait_for_hits("/w", 1, timeout=0.5)
    assert not upstream.wait_for_hits("/w", 2, timeout=0.05)
    assert upstream.wait_for_hits(None, 1, timeout=0.05)


def test_concurrent_requests_all_counted(upstream: ScriptedUpstream) -> None:
    def fetch_many(_: int) -> list[int]:
        with make_client() as http_client:
            return [
                http_client.get(upstream.url_for("/many")).json()["n"]
                for _ in range(25)
            ]

    with ThreadPoolExecutor(max_workers=8) as pool:
        numbers = [n for batch in pool.map(fetch_many, range(8)) for n in batch]

    assert upstream.hits["/many"] == 200
    assert sorted(numbers) == list(range(1, 201))
    assert upstream.connections == 8


# ---- connections ---------------------------------------------------------


def test_keep_alive_reuses_connection(
    upstream: ScriptedUpstream, client: httpx.Client
) -> None:
    client.get(upstream.url_for("/k1"))
    client.get(upstream.url_for("/k2"))

    first, second = upstream.requests

    assert upstream.connections == 1
    assert first.connection_id == second.connection_id


def test_connection_close_ends_connection(
    upstream: ScriptedUpstream, client: httpx.Client
) -> None:
    response = client.get(upstream.url_for("/c1"), headers={"Connection": "close"})
    client.get(upstream.url_for("/c2"))

    assert response.headers["connection"] == "close"
    assert upstream.connections == 2


def test_pipelined_requests_answered_in_order(upstream: ScriptedUpstream) -> None:
    with open_socket(upstream) as sock:
        sock.sendall(
            b"GET /pipe HTTP/1.1\r\nHost: x\r\n\r\n"
            b"GET /pipe HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        data = receive_until_closed(sock)

    assert data.count(b"HTTP/1.1 200 OK\r\n") == 2
    assert data.index(b'"n":1') < data.index(b'"n":2')
    assert upstream.connections == 1


def test_http10_closes_without_keep_alive(upstream: ScriptedUpstream) -> None:
    with open_socket(upstream) as sock:
        sock.sendall(b"GET /old HTTP/1.0\r\n\r\n")
        data = receive_until_closed(sock)

    assert data.startswith(b"HTTP/1.1 200 OK\r\n")
    assert b"Connection: close\r\n" in data


def test_malformed_request_gets_400(upstream: ScriptedUpstream) -> None:
    with open_socket(upstream) as sock:
        sock.sendall(b"NONSENSE\r\n\r\n")
        data = receive_until_closed(sock)

    assert data.startswith(b"HTTP/1.1 400 Bad Request\r\n")
    assert upstream.hits.total == 0


def test_invalid_content_length_gets_400(upstream: ScriptedUpstream) -> None:
    with open_socket(upstream) as sock:
        sock.sendall(b"POST /x HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n")
        data = receive_until_closed(sock)

    assert data.startswith(b"HTTP/1.1 400 Bad Request\r\n")


# ---- lifecycle -----------------------------------------------------------


def test_stop_cancels_hang_and_drip() -> None:
    server = ScriptedUpstream().start()
    server.script("/hang", hang())
    server.script("/drip", slow_drip(b"x" * 100, interval=1.0))
    hanging = open_socket(server)
    dripping = open_socket(server)
    try:
        hanging.sendall(b"GET /hang HTTP/1.1\r\nHost: x\r\n\r\n")
        dripping.sendall(b"GET /drip HTTP/1.1\r\nHost: x\r\n\r\n")
        assert server.wait_for_hits(None, 2, timeout=2.0)

        started = time.monotonic()
        server.stop()
        elapsed = time.monotonic() - started

        assert elapsed < 2.0
        assert receive_until_closed(hanging) == b""
        assert receive_until_closed(dripping).startswith(b"HTTP/1.1 200 OK\r\n")
    finally:
        hanging.close()
        dripping.close()
        server.stop()


def test_stopped_server_refuses_connections(client: httpx.Client) -> None:
    with ScriptedUpstream() as server:
        url = server.url_for("/x")
        assert client.get(url).status_code == 200

    with pytest.raises(httpx.ConnectError):
        client.get(url)


def test_stop_twice_is_harmless() -> None:
    server = ScriptedUpstream().start()

    server.stop()
    server.stop()

    with pytest.raises(RuntimeError, match="not started"):
        _ = server.url


def test_start_on_busy_port_raises(upstream: ScriptedUpstream) -> None:
    second = ScriptedUpstream(port=upstream.port)

    with pytest.raises(OSError, match="address already in use"):
        second.start()


def test_restart_after_stop_serves_again(client: httpx.Client) -> None:
    server = ScriptedUpstream()
    try:
        server.start()
        server.stop()
        server.start()

        assert client.get(server.url_for("/again")).status_code == 200
    finally:
        server.stop()


def test_url_for_requires_leading_slash(upstream: ScriptedUpstream) -> None:
    assert upstream.url == f"http://127.0.0.1:{upstream.port}"

    with pytest.raises(ValueError, match="must start with"):
        upstream.url_for("x")


# ---- command line --------------------------------------------------------


def test_cli_prints_port_and_pads_body(client: httpx.Client) -> None:
    command = [
        sys.executable,
        str(UPSTREAM_SCRIPT),
        "--port",
        "0",
        "--print-port",
        "--body-bytes",
        "1000",
    ]
    with subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    ) as process:
        try:
            assert process.stdout is not None
            readable, _, _ = select.select([process.stdout], [], [], 10.0)
            assert readable, "upstream CLI printed no port within 10 s"
            port = int(process.stdout.readline())

            response = client.get(f"http://127.0.0.1:{port}/bench")

            process.send_signal(signal.SIGTERM)
            _, stderr_text = process.communicate(timeout=5.0)
        finally:
            if process.poll() is None:
                process.kill()
                process.communicate(timeout=5.0)

    document = json.loads(response.content)

    assert len(response.content) == 1000
    assert document["ok"] is True
    assert document["path"] == "/bench"
    assert process.returncode == 0
    assert "upstream_stopped requests=1" in stderr_text
