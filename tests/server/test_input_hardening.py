"""Inputs that once reached the transport now get 400, never 500 or a breaker hit."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from litestar.testing import TestClient
from upstream import ScriptedUpstream, status

from faultguard_core import load_settings
from faultguard_core.server import create_app


@pytest.fixture
def upstream() -> Iterator[ScriptedUpstream]:
    with ScriptedUpstream() as server:
        yield server


@pytest.fixture
def client() -> Iterator[TestClient]:
    settings = load_settings(
        overrides={
            "metrics": {"port": 0},
            "storage": {"backend": "memory"},
            "plugins": {"autoload": False},
            "breaker": {"max_failures": 1},
        }
    )
    with TestClient(create_app(settings)) as test_client:
        yield test_client


@pytest.mark.parametrize(
    "value",
    ["a\x0bb", "a\x1bb", "tab\x7f", "caf\u00e9", "\u20ac", "Bearer SECRET\x0b"],
)
def test_header_value_outside_ascii_rejected(
    client: TestClient, upstream: ScriptedUpstream, value: str
) -> None:
    body = {"key": "k", "url": upstream.url_for("/x"), "headers": {"X-A": value}}

    response = client.post("/execute", json=body)

    assert response.status_code == 400
    assert "SECRET" not in response.text
    assert upstream.hits.total == 0


def test_rejected_header_leaves_breaker_closed(
    client: TestClient, upstream: ScriptedUpstream
) -> None:
    bad = {"key": "k", "url": upstream.url_for("/x"), "headers": {"X-A": "a\x0bb"}}
    for _ in range(3):
        client.post("/execute", json=bad)

    good = client.post("/execute", json={"key": "k", "url": upstream.url_for("/x")})

    assert good.status_code == 200
    assert good.json()["state"] == "closed"


@pytest.mark.parametrize(
    "path_or_url",
    [
        "http://0177.0.0.1:{port}/",
        "http://xn--zz/",
        "http://127.0.0.1:{port}/a\x7f",
        "http://127.0.0.1:{port}/a\x00",
        "http://127.0.0.1:0/",
        "http://exa mple/",
        "http://a..b/",
        "http://-x-/",
        "http://a%20b/",
    ],
)
def test_url_the_transport_rejects_gets_400(
    client: TestClient, upstream: ScriptedUpstream, path_or_url: str
) -> None:
    url = path_or_url.format(port=upstream.port)

    response = client.post("/execute", json={"key": "k", "url": url})

    assert response.status_code == 400
    assert response.json()["title"] == "Invalid request"
    assert upstream.hits.total == 0


def test_deeply_nested_body_gets_400(client: TestClient) -> None:
    depth = 100_000
    content = b'{"key": "k", "url": "http://127.0.0.1/", "headers": '
    content += b"[" * depth + b"]" * depth + b"}"

    response = client.post(
        "/execute", content=content, headers={"content-type": "application/json"}
    )

    assert response.status_code == 400
    assert "nested too deeply" in response.json()["detail"]


@pytest.mark.parametrize("code", [204, 304])
def test_bodyless_status_delivered_without_body(
    client: TestClient, upstream: ScriptedUpstream, code: int
) -> None:
    upstream.script("/nc", status(code))

    response = client.post(
        "/execute", json={"key": "k", "url": upstream.url_for("/nc"), "method": "HEAD"}
    )

    assert response.status_code == code
    assert response.content == b""
    assert response.headers["x-faultguard-source"] == "upstream"
    assert response.headers["x-faultguard-attempts"] == "1"


def test_connect_method_rejected(
    client: TestClient, upstream: ScriptedUpstream
) -> None:
    response = client.post(
        "/execute", json={"key": "k", "url": upstream.url, "method": "CONNECT"}
    )

    assert response.status_code == 400
    assert "CONNECT" in response.json()["detail"]
    assert upstream.hits.total == 0
