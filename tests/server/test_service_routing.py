"""Named services: base URL, host allowlist and unknown names, through the API."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from litestar.testing import TestClient
from upstream import ScriptedUpstream, ok

from faultguard_core import load_settings
from faultguard_core.server import create_app


@pytest.fixture
def upstream() -> Iterator[ScriptedUpstream]:
    with ScriptedUpstream() as server:
        yield server


@pytest.fixture
def client(upstream: ScriptedUpstream) -> Iterator[TestClient]:
    settings = load_settings(
        overrides={
            "metrics": {"port": 0},
            "storage": {"backend": "memory"},
            "plugins": {"autoload": False},
            "services": {
                "users": {"url": f"{upstream.url}/api"},
                "open": {},
            },
        }
    )
    with TestClient(create_app(settings)) as test_client:
        yield test_client


def test_path_joined_to_service_url(
    client: TestClient, upstream: ScriptedUpstream
) -> None:
    upstream.script("/api/users/7", ok(body={"id": 7}))

    response = client.post(
        "/execute", json={"key": "u7", "url": "/users/7", "service": "users"}
    )

    assert response.status_code == 200
    assert response.json()["service"] == "users"
    assert upstream.hits["/api/users/7"] == 1


def test_other_host_rejected_for_service(
    client: TestClient, upstream: ScriptedUpstream
) -> None:
    url = f"http://localhost:{upstream.port}/api/users/7"

    response = client.post(
        "/execute", json={"key": "u7", "url": url, "service": "users"}
    )

    assert response.status_code == 403
    assert "not allowed for service 'users'" in response.json()["detail"]
    assert upstream.hits.total == 0


def test_path_without_service_url_rejected(
    client: TestClient, upstream: ScriptedUpstream
) -> None:
    response = client.post(
        "/execute", json={"key": "k", "url": "/users/7", "service": "open"}
    )

    assert response.status_code == 400
    assert upstream.hits.total == 0


def test_unknown_service_rejected(
    client: TestClient, upstream: ScriptedUpstream
) -> None:
    response = client.post(
        "/execute", json={"key": "k", "url": upstream.url, "service": "nope"}
    )

    assert response.status_code == 400
    assert "unknown service 'nope'" in response.json()["detail"]
    assert upstream.hits.total == 0
