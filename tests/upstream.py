"""Scripted HTTP/1.1 upstream server for faultguard's integration tests and benchmarks.

`ScriptedUpstream` listens on 127.0.0.1 and runs its own asyncio event loop in a
background thread, so synchronous tests, async tests and tests that start
faultguard as a subprocess can all point at `upstream.url`. Each path can be
given a script of steps (`ok`, `status`, `retry_after`, `reset`,
`close_before_response`, `hang`, `slow_drip`, `delay`, `redirect`, `chunked`).
One step is consumed per request and the last step repeats. A path without a
script gets the default response: 200 with `{"ok":true,"path":...,"n":...}`,
where `n` is the 1-based hit number of that path.

The server speaks HTTP/1.1 on raw asyncio streams because faults such as a TCP
reset or a byte-by-byte body need control of the socket. It keeps connections
alive, reads pipelined requests in order, and reads request bodies framed by
Content-Length or by chunked transfer coding.

Run as a program for benchmarks (default response only, requests not stored):

    python tests/upstream.py --port 0 --print-port --body-bytes 1024
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import http
import json
import logging
import signal
import socket
import string
import struct
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit

__all__ = [
    "Chunked",
    "CloseBeforeResponse",
    "Delay",
    "Exchange",
    "Hang",
    "Headers",
    "Hits",
    "RecordedRequest",
    "Reset",
    "Respond",
    "ScriptedUpstream",
    "SlowDrip",
    "Step",
    "chunked",
    "close_before_response",
    "delay",
    "hang",
    "ok",
    "padded_json_body",
    "redirect",
    "reset",
    "retry_after",
    "slow_drip",
    "status",
]

logger = logging.getLogger("faultguard.tests.upstream")

LOOPBACK_HOST = "127.0.0.1"

# stop() returns within this many seconds, even with hanging handlers.
STOP_TIMEOUT_SECONDS = 2.0

START_TIMEOUT_SECONDS = 5.0

# Request limits. A request over them gets 431 or 413 and the connection closes.
MAX_HEADER_LINE_BYTES = 64 * 1024
MAX_HEADER_COUNT = 100
MAX_BODY_BYTES = 64 * 1024 * 1024

# Statuses whose responses carry no body and no Content-Length (RFC 9110, 6.4.1).
_BODYLESS_STATUSES = frozenset({204, 304})

_HEX_DIGITS = frozenset(string.hexdigits)

HeaderFields = tuple[tuple[str, str], ...]
HeaderInput = Mapping[str, str] | Iterable[tuple[str, str]] | None


# --------------------------------------------------------------------------
# Recorded requests
# --------------------------------------------------------------------------


class Headers(Mapping[str, str]):
    """Case-insensitive read-only view of header fields, in the order received.

    Looking up a name that occurs more than once returns its values joined by
    ", ". Iteration yields each distinct name once, lowercased. `raw` contains
    the fields exactly as received.
    """

    def __init__(self, fields: Iterable[tuple[str, str]] = ()) -> None:
        self.raw: HeaderFields = tuple(fields)

    def get_list(self, name: str) -> list[str]:
        """Return every value of `name`, in the order received (empty if absent)."""
        lowered = name.lower()
        return [value for key, value in self.raw if key.lower() == lowered]

    def __getitem__(self, name: str) -> str:
        values = self.get_list(name)
        if not values:
            raise KeyError(name)

        return ", ".join(values)

    def __iter__(self) -> Iterator[str]:
        seen: dict[str, None] = {}
        for key, _ in self.raw:
            seen.setdefault(key.lower(), None)

        return iter(seen)

    def __len__(self) -> int:
        return len({key.lower() for key, _ in self.raw})

    def __repr__(self) -> str:
        return f"Headers({list(self.raw)!r})"


@dataclass(frozen=True)
class RecordedRequest:
    """One request as the server received it.

    `path` excludes the query string, which is in `query` (without the "?").
    `target` is the request-target exactly as sent. `n` is the 1-based hit
    number of `path` since start or the last `reset()`. `connection_id` is the
    1-based number of the TCP connection that carried the request, so requests
    with equal ids shared a keep-alive connection.
    """

    method: str
    path: str
    query: str
    target: str
    http_version: str
    headers: Headers
    body: bytes
    connection_id: int
    n: int

    @property
    def text(self) -> str:
        """Body decoded as UTF-8, with invalid bytes replaced."""
        return self.body.decode("utf-8", errors="replace")

    def json(self) -> Any:
        """Parse the body as JSON, raising json.JSONDecodeError if it is not JSON."""
        return json.loads(self.body)


class Hits(dict[str, int]):
    """Snapshot of request counts per path, with the recorded requests.

    A path that received no request maps to 0 through `hits[path]`, but
    `hits.get(path)` returns None as for any dict. `requests` is empty when the
    server was created with `record_requests=False`.
    """

    def __init__(
        self, counts: Mapping[str, int], requests: Iterable[RecordedRequest]
    ) -> None:
        super().__init__(counts)
        self.requests: list[RecordedRequest] = list(requests)

    def __missing__(self, path: str) -> int:
        return 0

    @property
    def total(self) -> int:
        """Number of requests received on all paths."""
        return sum(self.values())


# --------------------------------------------------------------------------
# Steps
# --------------------------------------------------------------------------

Body = bytes | str | dict[str, Any] | list[Any] | None
BodySource = Body | Callable[[RecordedRequest], Body]


class Exchange:
    """Request in progress: the parsed request and the connection's streams.

    A step writes its response through `send_head` and `writer`. It sets
    `keep_alive` to False when the connection must not carry another request,
    and the server then closes the connection after the step returns.
    """

    def __init__(
        self,
        request: RecordedRequest,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        keep_alive: bool,
    ) -> None:
        self.request = request
        self.reader = reader
        self.writer = writer
        self.keep_alive = keep_alive

    @property
    def is_head(self) -> bool:
        """Whether the request method is HEAD, whose response carries no body."""
        return self.request.method == "HEAD"

    def send_head(self, status_code: int, fields: Iterable[tuple[str, str]]) -> None:
        """Write the status line and header fields, adding `Connection` as needed.

        A `Connection: close` field among `fields` turns keep-alive off. When
        keep-alive is off and `fields` has no Connection field, this adds
        `Connection: close`. An HTTP/1.0 client that requested keep-alive gets
        `Connection: keep-alive`.
        """
        header_fields = list(fields)
        connection_values = [
            value.lower()
            for name, value in header_fields
            if name.lower() == "connection"
        ]
        if any("close" in value for value in connection_values):
            self.keep_alive = False

        if not connection_values:
            if not self.keep_alive:
                header_fields.append(("Connection", "close"))
            elif self.request.http_version == "HTTP/1.0":
                header_fields.append(("Connection", "keep-alive"))

        self.writer.write(_encode_head(status_code, header_fields))


class Step:
    """One scripted behaviour of the server for one request."""

    async def perform(self, exchange: Exchange) -> None:
        """Send the response to `exchange.request`, or inject a fault in its place."""
        raise NotImplementedError


@dataclass(frozen=True)
class Respond(Step):
    """Send a complete response with a Content-Length body.

    `body` None sends the default JSON body. A callable receives the request
    and returns the body. A dict or list is sent as JSON, a str as UTF-8 text.
    A Content-Type or Content-Length in `headers` replaces the computed one.
    A Content-Length from `headers` is sent as given even if it does not match
    the body, so a test can send a truncated body. The connection then closes
    after the response.
    """

    status: int = 200
    body: BodySource = None
    headers: HeaderFields = ()

    async def perform(self, exchange: Exchange) -> None:
        body, content_type = _render_body(self.body, exchange.request, self.status)
        fields = list(self.headers)
        names = {name.lower() for name, _ in fields}
        if content_type is not None and "content-type" not in names:
            fields.append(("Content-Type", content_type))

        if "content-length" in names:
            exchange.keep_alive = False
        elif not _is_bodyless(self.status):
            fields.append(("Content-Length", str(len(body))))

        exchange.send_head(self.status, fields)

        if not exchange.is_head and not _is_bodyless(self.status):
            exchange.writer.write(body)
        await exchange.writer.drain()


@dataclass(frozen=True)
class Reset(Step):
    """Read the request, then abort the TCP connection with RST and no response.

    SO_LINGER with a zero timeout makes close() send RST in place of FIN, so
    the client sees ECONNRESET (httpx raises ReadError or RemoteProtocolError).
    """

    async def perform(self, exchange: Exchange) -> None:
        exchange.keep_alive = False
        sock = exchange.writer.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(
                socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
            )

        exchange.writer.transport.abort()


@dataclass(frozen=True)
class CloseBeforeResponse(Step):
    """Read the request, then close the connection cleanly (FIN) with no response."""

    async def perform(self, exchange: Exchange) -> None:
        exchange.keep_alive = False


@dataclass(frozen=True)
class Hang(Step):
    """Read the request and never send a response.

    The handler waits until the client closes the connection or until
    `ScriptedUpstream.stop()` cancels it.
    """

    async def perform(self, exchange: Exchange) -> None:
        exchange.keep_alive = False
        while await exchange.reader.read(65536):
            pass


@dataclass(frozen=True)
class SlowDrip(Step):
    """Send the head with Content-Length, then the body one byte per `interval`.

    The server sleeps `interval` seconds before each byte, so a body of n bytes
    takes at least n * interval seconds.
    """

    body: BodySource
    interval: float
    status: int = 200
    headers: HeaderFields = ()

    async def perform(self, exchange: Exchange) -> None:
        body, content_type = _render_body(self.body, exchange.request, self.status)
        fields = list(self.headers)
        if content_type is not None and not _has_field(fields, "content-type"):
            fields.append(("Content-Type", content_type))

        fields.append(("Content-Length", str(len(body))))
        exchange.send_head(self.status, fields)
        await exchange.writer.drain()

        if exchange.is_head:
            return

        for index in range(len(body)):
            await asyncio.sleep(self.interval)
            exchange.writer.write(body[index : index + 1])
            await exchange.writer.drain()


@dataclass(frozen=True)
class Delay(Step):
    """Wait `seconds` after reading the request, then perform `then`."""

    seconds: float
    then: Step = field(default_factory=Respond)

    async def perform(self, exchange: Exchange) -> None:
        await asyncio.sleep(self.seconds)
        await self.then.perform(exchange)


@dataclass(frozen=True)
class Chunked(Step):
    """Send the body with `Transfer-Encoding: chunked`, one chunk per part.

    Empty parts are skipped because an empty chunk ends the body. With
    `interval` > 0 the server sleeps that many seconds before each chunk.
    """

    parts: tuple[bytes, ...]
    status: int = 200
    headers: HeaderFields = ()
    interval: float = 0.0

    async def perform(self, exchange: Exchange) -> None:
        fields = list(self.headers)
        fields.append(("Transfer-Encoding", "chunked"))
        exchange.send_head(self.status, fields)
        await exchange.writer.drain()

        if exchange.is_head:
            return

        for part in self.parts:
            if not part:
                continue

            if self.interval > 0:
                await asyncio.sleep(self.interval)
            exchange.writer.write(b"%x\r\n%s\r\n" % (len(part), part))
            await exchange.writer.drain()

        exchange.writer.write(b"0\r\n\r\n")
        await exchange.writer.drain()


def ok(
    body: BodySource = None, status: int = 200, headers: HeaderInput = None
) -> Respond:
    """Build a 2xx response. With `body` None it sends the default JSON body."""
    return Respond(status=status, body=body, headers=_normalize_headers(headers))


def status(code: int, body: BodySource = None, headers: HeaderInput = None) -> Respond:
    """Build a response with status `code`.

    `body` None sends `{"ok":false,"path":...,"n":...,"status":code}` for codes
    outside 2xx and the default JSON body for 2xx codes.
    """
    return Respond(status=code, body=body, headers=_normalize_headers(headers))


def retry_after(
    code: int, value: int | float | str, body: BodySource = None
) -> Respond:
    """Build a response with status `code` and `Retry-After: value`.

    `value` is sent verbatim through str(), so it may be delta-seconds, an
    HTTP-date or a deliberately invalid value.
    """
    return Respond(status=code, body=body, headers=(("Retry-After", str(value)),))


def reset() -> Reset:
    """Build a step that reads the request, then aborts with a TCP RST."""
    return Reset()


def close_before_response() -> CloseBeforeResponse:
    """Build a step that closes the connection cleanly without a response."""
    return CloseBeforeResponse()


def hang() -> Hang:
    """Build a step that reads the request and never sends a response."""
    return Hang()


def slow_drip(
    body: BodySource,
    interval: float,
    status: int = 200,
    headers: HeaderInput = None,
) -> SlowDrip:
    """Build a step that sends the body one byte per `interval` seconds."""
    if interval < 0:
        raise ValueError(f"slow_drip interval must be >= 0 seconds, got {interval!r}")

    return SlowDrip(
        body=body,
        interval=interval,
        status=status,
        headers=_normalize_headers(headers),
    )


def delay(seconds: float, then: Step | None = None) -> Delay:
    """Build a step that waits `seconds`, then performs `then` (default: `ok()`)."""
    if seconds < 0:
        raise ValueError(f"delay must be >= 0 seconds, got {seconds!r}")

    return Delay(seconds=seconds, then=then if then is not None else Respond())


def redirect(location: str, code: int = 302, headers: HeaderInput = None) -> Respond:
    """Build a redirect with an empty body and `Location: location`."""
    if code not in (301, 302, 303, 307, 308):
        raise ValueError(f"redirect code must be 301, 302, 303, 307 or 308, got {code}")

    fields = (("Location", location), *_normalize_headers(headers))
    return Respond(status=code, body=b"", headers=fields)


def chunked(
    parts: Iterable[bytes | str],
    status: int = 200,
    headers: HeaderInput = None,
    interval: float = 0.0,
) -> Chunked:
    """Build a step that sends `parts` as chunks of a chunked response body."""
    encoded = tuple(
        part.encode("utf-8") if isinstance(part, str) else bytes(part) for part in parts
    )
    return Chunked(
        parts=encoded,
        status=status,
        headers=_normalize_headers(headers),
        interval=interval,
    )


def padded_json_body(size: int) -> Callable[[RecordedRequest], dict[str, Any]]:
    """Return a body source whose JSON is `size` bytes long.

    The JSON is the default body plus a "pad" string that fills it up to
    `size` bytes. A `size` below the length of the unpadded JSON gives the
    shortest body, with an empty pad.
    """

    def render(request: RecordedRequest) -> dict[str, Any]:
        document: dict[str, Any] = {
            "ok": True,
            "path": request.path,
            "n": request.n,
            "pad": "",
        }
        missing = size - len(_dump_json(document))
        if missing > 0:
            document["pad"] = "x" * missing

        return document

    return render


def _normalize_headers(headers: HeaderInput) -> HeaderFields:
    if headers is None:
        return ()

    if isinstance(headers, Mapping):
        return tuple((str(name), str(value)) for name, value in headers.items())

    return tuple((str(name), str(value)) for name, value in headers)


def _has_field(fields: Iterable[tuple[str, str]], name: str) -> bool:
    return any(key.lower() == name for key, _ in fields)


def _is_bodyless(status_code: int) -> bool:
    return status_code < 200 or status_code in _BODYLESS_STATUSES


def _dump_json(document: Any) -> bytes:
    # ensure_ascii keeps the byte length equal to the str length.
    return json.dumps(document, separators=(",", ":"), ensure_ascii=True).encode()


def _render_body(
    source: BodySource, request: RecordedRequest, status_code: int
) -> tuple[bytes, str | None]:
    """Encode a body source as bytes and return it with its default Content-Type."""
    body = source(request) if callable(source) else source
    if body is None:
        if _is_bodyless(status_code):
            return b"", None

        document: dict[str, Any] = {"ok": True, "path": request.path, "n": request.n}
        if not 200 <= status_code < 300:
            document = {**document, "ok": False, "status": status_code}

        return _dump_json(document), "application/json"

    if isinstance(body, bytes | bytearray | memoryview):
        return bytes(body), "application/octet-stream"

    if isinstance(body, str):
        return body.encode("utf-8"), "text/plain; charset=utf-8"

    if isinstance(body, dict | list):
        return _dump_json(body), "application/json"

    raise TypeError(
        f"body must be bytes, str, dict, list, None or a callable, got {type(body)!r}"
    )


def _encode_head(status_code: int, fields: Iterable[tuple[str, str]]) -> bytes:
    try:
        reason = http.HTTPStatus(status_code).phrase
    except ValueError:
        reason = "Unknown"

    lines = [f"HTTP/1.1 {status_code} {reason}"]
    lines.extend(f"{name}: {value}" for name, value in fields)
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


# --------------------------------------------------------------------------
# Request parsing
# --------------------------------------------------------------------------


class _BadRequestError(Exception):
    """The client sent a request that the server rejects with `status_code`."""

    def __init__(self, status_code: int, reason: str) -> None:
        super().__init__(reason)
        self.status_code = status_code


class _ConnectionClosedError(Exception):
    """The client closed the connection in the middle of a request."""


@dataclass(frozen=True)
class _RequestHead:
    method: str
    target: str
    http_version: str
    fields: HeaderFields


async def _read_line(reader: asyncio.StreamReader) -> bytes:
    try:
        line = await reader.readuntil(b"\n")
    except asyncio.IncompleteReadError as exc:
        if exc.partial:
            raise _ConnectionClosedError from exc

        return b""
    except asyncio.LimitOverrunError as exc:
        raise _BadRequestError(
            431, f"header line exceeds {MAX_HEADER_LINE_BYTES} bytes"
        ) from exc

    return line


async def _read_request_head(reader: asyncio.StreamReader) -> _RequestHead | None:
    """Read a request line and header fields, or return None on a clean EOF."""
    line = await _read_line(reader)

    # RFC 9112, 2.2: ignore at least one empty line before the request line.
    while line in (b"\r\n", b"\n"):
        line = await _read_line(reader)

    if not line:
        return None

    parts = line.decode("latin-1").rstrip("\r\n").split(" ")
    if len(parts) != 3 or not parts[0] or not parts[1]:
        raise _BadRequestError(400, f"invalid request line {line[:100]!r}")

    method, target, http_version = parts
    if http_version not in ("HTTP/1.0", "HTTP/1.1"):
        raise _BadRequestError(505, f"unsupported HTTP version {http_version!r}")

    fields: list[tuple[str, str]] = []
    while True:
        line = await _read_line(reader)
        if not line:
            raise _ConnectionClosedError

        if line in (b"\r\n", b"\n"):
            break

        name, separator, value = line.decode("latin-1").partition(":")
        if not separator or not name or name != name.strip():
            raise _BadRequestError(400, f"invalid header line {line[:100]!r}")

        fields.append((name, value.strip()))
        if len(fields) > MAX_HEADER_COUNT:
            raise _BadRequestError(431, f"more than {MAX_HEADER_COUNT} header fields")

    return _RequestHead(method, target, http_version, tuple(fields))


async def _read_exactly(reader: asyncio.StreamReader, size: int) -> bytes:
    try:
        return await reader.readexactly(size)
    except asyncio.IncompleteReadError as exc:
        raise _ConnectionClosedError from exc


async def _read_chunked_body(reader: asyncio.StreamReader) -> bytes:
    parts: list[bytes] = []
    total = 0
    while True:
        size_line = await _read_line(reader)
        if not size_line:
            raise _ConnectionClosedError

        size_text = size_line.split(b";", 1)[0].strip().decode("latin-1")
        if not size_text or not set(size_text) <= _HEX_DIGITS:
            raise _BadRequestError(400, f"invalid chunk size {size_line[:100]!r}")

        size = int(size_text, 16)
        if size == 0:
            break

        total += size
        if total > MAX_BODY_BYTES:
            raise _BadRequestError(413, f"request body exceeds {MAX_BODY_BYTES} bytes")

        parts.append(await _read_exactly(reader, size))
        if await _read_line(reader) not in (b"\r\n", b"\n"):
            raise _BadRequestError(400, "chunk data not followed by CRLF")

    # Trailer section, ended by an empty line.
    while True:
        line = await _read_line(reader)
        if not line:
            raise _ConnectionClosedError

        if line in (b"\r\n", b"\n"):
            break

    return b"".join(parts)


async def _read_body(reader: asyncio.StreamReader, headers: Headers) -> bytes:
    transfer_encoding = headers.get("transfer-encoding", "").lower()
    if transfer_encoding:
        codings = [coding.strip() for coding in transfer_encoding.split(",")]
        if codings[-1] != "chunked":
            raise _BadRequestError(400, f"unsupported transfer-encoding {codings!r}")

        return await _read_chunked_body(reader)

    lengths = {value.strip() for value in headers.get_list("content-length")}
    if not lengths:
        return b""

    if len(lengths) != 1:
        raise _BadRequestError(400, f"conflicting content-length values {lengths!r}")

    length_text = lengths.pop()
    if not length_text.isdigit():
        raise _BadRequestError(400, f"invalid content-length {length_text!r}")

    length = int(length_text)
    if length > MAX_BODY_BYTES:
        raise _BadRequestError(413, f"request body exceeds {MAX_BODY_BYTES} bytes")

    return await _read_exactly(reader, length)


def _wants_keep_alive(http_version: str, headers: Headers) -> bool:
    tokens = {
        token.strip() for token in headers.get("connection", "").lower().split(",")
    }
    if http_version == "HTTP/1.0":
        return "keep-alive" in tokens

    return "close" not in tokens


def _split_target(target: str) -> tuple[str, str]:
    """Return (path, query) of an origin-form, absolute-form or asterisk target."""
    if target.startswith("/") or target == "*":
        path, _, query = target.partition("?")
        return path, query

    parts = urlsplit(target)
    return parts.path or "/", parts.query


# --------------------------------------------------------------------------
# Shared state (touched by the test thread and the server thread)
# --------------------------------------------------------------------------


class _Script:
    def __init__(self, steps: tuple[Step, ...]) -> None:
        self.steps = steps
        self.cursor = 0

    def next_step(self) -> Step:
        step = self.steps[min(self.cursor, len(self.steps) - 1)]
        self.cursor += 1
        return step


class _State:
    """Hit counts, recorded requests and scripts, guarded by one lock."""

    def __init__(self, default_step: Step, record_requests: bool) -> None:
        self._condition = threading.Condition()
        self._default_step = default_step
        self._record_requests = record_requests
        self._hits: dict[str, int] = {}
        self._requests: list[RecordedRequest] = []
        self._scripts: dict[str, _Script] = {}
        self._connections = 0

    def open_connection(self) -> int:
        with self._condition:
            self._connections += 1
            return self._connections

    def record(
        self, head: _RequestHead, body: bytes, connection_id: int
    ) -> tuple[RecordedRequest, Step]:
        """Count and store one request, and consume the step that responds to it."""
        path, query = _split_target(head.target)
        with self._condition:
            n = self._hits.get(path, 0) + 1
            self._hits[path] = n
            request = RecordedRequest(
                method=head.method,
                path=path,
                query=query,
                target=head.target,
                http_version=head.http_version,
                headers=Headers(head.fields),
                body=body,
                connection_id=connection_id,
                n=n,
            )
            if self._record_requests:
                self._requests.append(request)

            script = self._scripts.get(path) or self._scripts.get("*")
            step = script.next_step() if script is not None else self._default_step
            self._condition.notify_all()

        return request, step

    def set_script(self, path: str, steps: tuple[Step, ...]) -> None:
        with self._condition:
            if steps:
                self._scripts[path] = _Script(steps)
            else:
                self._scripts.pop(path, None)

    def snapshot(self) -> Hits:
        with self._condition:
            return Hits(self._hits, self._requests)

    def requests(self) -> list[RecordedRequest]:
        with self._condition:
            return list(self._requests)

    def connections(self) -> int:
        with self._condition:
            return self._connections

    def clear(self) -> None:
        with self._condition:
            self._hits.clear()
            self._requests.clear()
            self._scripts.clear()
            self._connections = 0

    def wait_for_hits(self, path: str | None, count: int, timeout: float) -> bool:
        def reached() -> bool:
            if path is None:
                return sum(self._hits.values()) >= count

            return self._hits.get(path, 0) >= count

        with self._condition:
            return self._condition.wait_for(reached, timeout=timeout)


# --------------------------------------------------------------------------
# asyncio server (runs on the server thread's event loop)
# --------------------------------------------------------------------------


class _ServerCore:
    """Asyncio listener that runs one handler task per accepted connection."""

    def __init__(self, state: _State) -> None:
        self._state = state
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()

    async def open(self, port: int) -> int:
        self._server = await asyncio.start_server(
            self._on_connection,
            host=LOOPBACK_HOST,
            port=port,
            limit=MAX_HEADER_LINE_BYTES,
            reuse_address=True,
        )
        return int(self._server.sockets[0].getsockname()[1])

    async def close(self, grace_seconds: float) -> None:
        """Stop listening, abort every open connection and cancel every handler."""
        if self._server is not None:
            self._server.close()

        for writer in list(self._writers):
            writer.transport.abort()

        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()

        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=grace_seconds)
            if pending:
                logger.warning(
                    "upstream_stop_incomplete handlers_still_running=%d", len(pending)
                )

    async def _on_connection(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self._writers.add(writer)
        connection_id = self._state.open_connection()
        try:
            await self._serve(reader, writer, connection_id)
        except asyncio.CancelledError:
            # stop() cancels handlers. Ending quietly keeps asyncio from logging it.
            pass
        except (ConnectionError, _ConnectionClosedError) as exc:
            logger.debug(
                "upstream_connection_lost connection=%d: %r", connection_id, exc
            )
        except Exception:
            logger.exception("upstream_handler_failed connection=%d", connection_id)
        finally:
            self._tasks.discard(task)
            self._writers.discard(writer)
            writer.close()

    async def _serve(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        connection_id: int,
    ) -> None:
        while True:
            try:
                head = await _read_request_head(reader)
                if head is None:
                    return

                headers = Headers(head.fields)
                if headers.get("expect", "").lower() == "100-continue":
                    writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")

                body = await _read_body(reader, headers)
            except _BadRequestError as exc:
                logger.debug(
                    "upstream_bad_request connection=%d status=%d: %s",
                    connection_id,
                    exc.status_code,
                    exc,
                )
                await _send_error(writer, exc.status_code, str(exc))
                return

            request, step = self._state.record(head, body, connection_id)
            exchange = Exchange(
                request,
                reader,
                writer,
                keep_alive=_wants_keep_alive(head.http_version, headers),
            )
            await step.perform(exchange)

            if not exchange.keep_alive or writer.transport.is_closing():
                return


async def _send_error(
    writer: asyncio.StreamWriter, status_code: int, reason: str
) -> None:
    body = reason.encode("utf-8", errors="replace") + b"\n"
    fields = [
        ("Content-Type", "text/plain; charset=utf-8"),
        ("Content-Length", str(len(body))),
        ("Connection", "close"),
    ]
    writer.write(_encode_head(status_code, fields) + body)
    await writer.drain()


# --------------------------------------------------------------------------
# Public server object
# --------------------------------------------------------------------------


class ScriptedUpstream:
    """HTTP/1.1 server on 127.0.0.1 whose responses follow per-path scripts.

    The server runs its own event loop in a daemon thread, so any thread or
    process can send it requests. All methods are thread-safe. `stop()`
    returns within 2 seconds: it aborts open connections and cancels hanging
    handlers.

    Usage:

        with ScriptedUpstream() as upstream:
            upstream.script("/flaky", status(503), reset(), ok())
            httpx.get(upstream.url + "/flaky")  # 503
    """

    def __init__(
        self,
        *,
        port: int = 0,
        default: Step | None = None,
        record_requests: bool = True,
    ) -> None:
        """Configure a server. Nothing listens until `start()`.

        `port` 0 picks a free port. `default` responds to paths without a script
        (default: `ok()`). `record_requests=False` keeps only the counts, so
        long benchmark runs use constant memory.
        """
        self._requested_port = port
        self._state = _State(default or Respond(), record_requests)
        self._core = _ServerCore(self._state)
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._port: int | None = None

    # ---- lifecycle -------------------------------------------------------

    def start(self) -> ScriptedUpstream:
        """Bind the port and start serving, raising OSError if the bind fails."""
        if self._thread is not None:
            raise RuntimeError("ScriptedUpstream is already started")

        ready = threading.Event()
        start_errors: list[Exception] = []
        self._thread = threading.Thread(
            target=self._run_loop,
            args=(ready, start_errors),
            name="scripted-upstream",
            daemon=True,
        )
        self._thread.start()
        if not ready.wait(START_TIMEOUT_SECONDS):
            raise RuntimeError(
                f"ScriptedUpstream did not start within {START_TIMEOUT_SECONDS} s"
            )

        if start_errors:
            self._thread.join(timeout=STOP_TIMEOUT_SECONDS)
            self._thread = None
            raise start_errors[0]

        return self

    def stop(self) -> None:
        """Close the listener and all connections within 2 seconds.

        Calling stop() on a server that is not running does nothing.
        """
        thread, loop = self._thread, self._loop
        if thread is None:
            return

        deadline = time.monotonic() + STOP_TIMEOUT_SECONDS
        if loop is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                future = asyncio.run_coroutine_threadsafe(
                    self._core.close(grace_seconds=STOP_TIMEOUT_SECONDS * 0.6), loop
                )
                try:
                    future.result(timeout=STOP_TIMEOUT_SECONDS * 0.75)
                except TimeoutError:
                    future.cancel()
                    logger.warning("upstream_stop_timed_out port=%s", self._port)

                loop.call_soon_threadsafe(loop.stop)

        thread.join(timeout=max(0.0, deadline - time.monotonic()))
        if thread.is_alive():
            logger.warning("upstream_thread_still_running port=%s", self._port)

        self._thread = None
        self._loop = None
        self._port = None

    def __enter__(self) -> ScriptedUpstream:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def _run_loop(self, ready: threading.Event, start_errors: list[Exception]) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            try:
                self._port = loop.run_until_complete(
                    self._core.open(self._requested_port)
                )
            except Exception as exc:  # re-raised by start() in the calling thread
                start_errors.append(exc)
                return
            finally:
                ready.set()

            loop.run_forever()
        finally:
            _close_loop(loop)

    # ---- addresses -------------------------------------------------------

    @property
    def port(self) -> int:
        """Bound TCP port. Reading it before `start()` raises RuntimeError."""
        if self._port is None:
            raise RuntimeError("ScriptedUpstream is not started")

        return self._port

    @property
    def url(self) -> str:
        """Base URL without a trailing slash, e.g. "http://127.0.0.1:41234"."""
        return f"http://{LOOPBACK_HOST}:{self.port}"

    def url_for(self, path: str) -> str:
        """Absolute URL of `path`, which must start with "/"."""
        if not path.startswith("/"):
            raise ValueError(f"path must start with '/', got {path!r}")

        return self.url + path

    # ---- scripting -------------------------------------------------------

    def script(self, path: str, *steps: Step) -> None:
        """Respond to requests for `path` with `steps`, one per request.

        The last step repeats for every later request. `path` is matched
        exactly against the request path without its query string. The path
        "*" scripts every path that has no script of its own.
        Scripting a path again restarts at the first step. Passing no steps
        removes the script, so the path gets the default response again.
        """
        for step in steps:
            if not isinstance(step, Step):
                raise TypeError(f"script steps must be Step instances, got {step!r}")

        self._state.set_script(path, steps)

    def reset(self) -> None:
        """Clear hits, recorded requests, scripts and the connection count.

        Open keep-alive connections stay open, and hit numbers restart at 1.
        """
        self._state.clear()

    # ---- observations ----------------------------------------------------

    @property
    def hits(self) -> Hits:
        """Snapshot of request counts per path, with the recorded requests."""
        return self._state.snapshot()

    @property
    def requests(self) -> list[RecordedRequest]:
        """Recorded requests on all paths, in the order they were received."""
        return self._state.requests()

    def requests_for(self, path: str) -> list[RecordedRequest]:
        """Recorded requests whose path equals `path`, in the order received."""
        return [request for request in self._state.requests() if request.path == path]

    @property
    def connections(self) -> int:
        """Number of TCP connections accepted since start or the last `reset()`."""
        return self._state.connections()

    def wait_for_hits(
        self, path: str | None = None, count: int = 1, timeout: float = 2.0
    ) -> bool:
        """Block until `path` (or all paths, if None) has `count` hits.

        Returns False if `timeout` seconds pass first.
        """
        return self._state.wait_for_hits(path, count, timeout)


def _close_loop(loop: asyncio.AbstractEventLoop) -> None:
    """Cancel leftover tasks, let aborted transports close, then close the loop."""
    try:
        leftovers = [task for task in asyncio.all_tasks(loop) if not task.done()]
        for task in leftovers:
            task.cancel()

        if leftovers:
            loop.run_until_complete(asyncio.gather(*leftovers, return_exceptions=True))

        # One more pass runs the connection_lost callbacks that abort() scheduled.
        loop.run_until_complete(asyncio.sleep(0))
        loop.run_until_complete(loop.shutdown_asyncgens())
    finally:
        loop.close()


# --------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    """Run the server in the foreground until SIGINT or SIGTERM."""
    parser = argparse.ArgumentParser(
        description=(
            "Serve the default 200 JSON response on 127.0.0.1 for benchmarks. "
            "Requests are counted but not stored."
        )
    )
    parser.add_argument(
        "--port",
        type=int,
        default=0,
        help="TCP port to bind on 127.0.0.1, or 0 for a free port (default: 0)",
    )
    parser.add_argument(
        "--print-port",
        action="store_true",
        help="print the bound port as the first line of stdout",
    )
    parser.add_argument(
        "--body-bytes",
        type=int,
        default=None,
        metavar="N",
        help=(
            "pad the JSON response body to N bytes (default: the unpadded body, "
            "about 30 bytes)"
        ),
    )
    args = parser.parse_args(argv)
    if args.body_bytes is not None and args.body_bytes < 0:
        parser.error(f"--body-bytes must be >= 0, got {args.body_bytes}")

    logging.basicConfig(
        level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(message)s"
    )

    default = (
        ok(padded_json_body(args.body_bytes)) if args.body_bytes is not None else None
    )
    upstream = ScriptedUpstream(port=args.port, default=default, record_requests=False)
    stop_requested = threading.Event()

    def request_stop(signum: int, frame: object) -> None:
        stop_requested.set()

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)

    upstream.start()
    if args.print_port:
        print(upstream.port, flush=True)

    logger.info("upstream_started url=%s", upstream.url)
    try:
        while not stop_requested.wait(0.5):
            pass
    finally:
        hits = upstream.hits.total
        upstream.stop()
        logger.info("upstream_stopped requests=%d", hits)

    return 0


if __name__ == "__main__":
    sys.exit(main())
