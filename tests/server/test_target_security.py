"""Target checks through the API, with no connection ever attempted.

Every test here uses a transport that fails the test when it is asked to send
and a resolver that answers from a table, so nothing leaves the machine even if
a check is broken.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from litestar.testing import TestClient

from faultguard_core import Guard, load_settings
from faultguard_core.backoff.strategies import ExponentialBackoff
from faultguard_core.server import create_app
from faultguard_core.storage.memory import MemoryStore
from faultguard_core.transport.base import Transport, UpstreamRequest, UpstreamResponse

FAKE_DNS = {
    "metadata.example": ["169.254.169.254"],
    "mapped.example": ["::ffff:169.254.169.254"],
    "mixed.example": ["127.0.0.1", "169.254.10.1"],
    "ec2-v6.example": ["fd00:ec2::254"],
}


class NoConnectionTransport(Transport):
    """Fails the test if the guard ever tries to send a request."""

    def __init__(self) -> None:
        self.attempted: list[str] = []

    async def send(self, request: UpstreamRequest, timeout: float) -> UpstreamResponse:
        self.attempted.append(request.url)
        pytest.fail(f"a connection to {request.url} was attempted")


async def fake_resolver(host: str, port: int) -> list[str]:
    if host not in FAKE_DNS:
        pytest.fail(f"unexpected resolution of {host!r}")
    return FAKE_DNS[host]


@pytest.fixture
def transport() -> NoConnectionTransport:
    return NoConnectionTransport()


@pytest.fixture
def client(transport: NoConnectionTransport) -> Iterator[TestClient]:
    settings = load_settings(
        overrides={"metrics": {"port": 0}, "storage": {"backend": "memory"}}
    )
    guard = Guard(
        settings,
        store=MemoryStore(),
        transport=transport,
        backoff={"exponential": ExponentialBackoff},
    )
    app = create_app(settings, guard=guard, resolver=fake_resolver)
    with TestClient(app) as test_client:
        yield test_client


@pytest.mark.parametrize(
    "url",
    [
        "http://169.254.169.254/latest/meta-data/",
        "http://169.254.0.1:8080/",
        "https://[fd00:ec2::254]/latest",
        "http://[::ffff:169.254.169.254]/",
        "http://metadata.example/latest",
        "http://mapped.example/",
        "http://mixed.example/",
        "http://ec2-v6.example/",
    ],
)
def test_blocked_target_gets_403(
    client: TestClient, transport: NoConnectionTransport, url: str
) -> None:
    response = client.post("/execute", json={"key": "k", "url": url})

    assert response.status_code == 403
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["status"] == 403
    assert transport.attempted == []


@pytest.mark.parametrize(
    "url",
    [
        "ftp://127.0.0.1/file",
        "file:///etc/passwd",
        "gopher://127.0.0.1:70/",
        "http:///no-host",
        "/relative/path",
        "http://user:secret@127.0.0.1/",
        "http://127.0.0.1:99999/",
    ],
)
def test_invalid_target_gets_400(
    client: TestClient, transport: NoConnectionTransport, url: str
) -> None:
    response = client.post("/execute", json={"key": "k", "url": url})

    assert response.status_code == 400
    assert response.json()["title"] == "Invalid request"
    assert transport.attempted == []


def test_credentials_in_url_not_echoed(client: TestClient) -> None:
    response = client.post(
        "/execute", json={"key": "k", "url": "http://user:hunter2@127.0.0.1/"}
    )

    assert "hunter2" not in response.text


@pytest.mark.parametrize(
    "url",
    ["http://user:hunter2@127.0.0.1:99999/", "ftp://user:hunter2@127.0.0.1/"],
)
def test_invalid_url_error_hides_secret(client: TestClient, url: str) -> None:
    response = client.post("/execute", json={"key": "k", "url": url})

    assert response.status_code == 400
    assert "hunter2" not in response.text
