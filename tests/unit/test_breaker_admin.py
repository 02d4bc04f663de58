"""Admin endpoints and configuration reload through the REST app."""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path

import pytest
from litestar.testing import TestClient

from faultguard_core import FakeClock, Guard, Reloader, load_settings
from faultguard_core.backoff.strategies import ExponentialBackoff
from faultguard_core.exporters.base import ExporterContext
from faultguard_core.exporters.prometheus import PrometheusExporter
from faultguard_core.server import create_app
from faultguard_core.server.admin import _is_loopback
from faultguard_core.storage.memory import MemoryStore
from faultguard_core.testing.transport import ScriptedTransport, response

TOKEN = "s3cret-admin-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}

CONFIG = """
[metrics]
port = 0
exporters = []

[storage]
backend = "memory"

[plugins]
autoload = false

[security]
admin_token = "{token}"

[breaker]
max_failures = {max_failures}
open_duration = "30s"

[services.payments.breaker]
max_failures = 2
"""


def write_config(path: Path, max_failures: int = 5, token: str = TOKEN) -> None:
    path.write_text(CONFIG.format(max_failures=max_failures, token=token))


@pytest.fixture
def config_path(tmp_path: Path) -> Path:
    path = tmp_path / "faultguard.toml"
    write_config(path)
    return path


@pytest.fixture
def guard(config_path: Path) -> Guard:
    settings = load_settings(config_path)
    return Guard(
        settings,
        store=MemoryStore(),
        transport=ScriptedTransport(response(500)),
        backoff={"exponential": ExponentialBackoff},
        clock=FakeClock(),
        rng=random.Random(5),
    )


@pytest.fixture
def client(guard: Guard, config_path: Path) -> Iterator[TestClient]:
    app = create_app(guard.settings, guard, reloader=Reloader(config_path))
    with TestClient(app) as test_client:
        yield test_client


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Basic {TOKEN}"}],
)
def test_admin_rejects_missing_token(
    client: TestClient, headers: dict[str, str]
) -> None:
    answer = client.post("/breakers/payments/open", headers=headers)

    assert answer.status_code == 401
    assert answer.headers["content-type"].startswith("application/problem+json")
    assert answer.headers["www-authenticate"].startswith("Bearer")
    assert "security.admin_token" in answer.json()["detail"]


def test_reload_rejects_missing_token(client: TestClient) -> None:
    assert client.post("/admin/reload").status_code == 401


def test_admin_without_token_needs_loopback(guard: Guard) -> None:
    settings = guard.settings.model_copy(
        update={
            "security": guard.settings.security.model_copy(update={"admin_token": None})
        }
    )
    guard.settings = settings
    with TestClient(create_app(settings, guard)) as test_client:
        answer = test_client.post("/breakers/payments/open")

    assert answer.status_code == 403
    assert "loopback" in answer.json()["detail"]


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("127.0.0.1", True),
        ("127.8.9.1", True),
        ("::1", True),
        ("10.0.0.1", False),
        ("testclient", False),
        (None, False),
    ],
)
def test_loopback_detection(host: str | None, expected: bool) -> None:
    assert _is_loopback(host) is expected


def test_admin_actions_set_states(client: TestClient) -> None:
    states = []
    for action in ("open", "close", "disable", "metrics-only", "reset"):
        answer = client.post(f"/breakers/payments/{action}", headers=AUTH)
        assert answer.status_code == 200
        states.append((answer.json()["state"], answer.json()["manual"]))

    assert states == [
        ("forced_open", True),
        ("forced_closed", True),
        ("disabled", True),
        ("metrics_only", True),
        ("closed", False),
    ]


def test_admin_unknown_name_is_404(client: TestClient) -> None:
    answer = client.post("/breakers/nope/open", headers=AUTH)

    assert answer.status_code == 404


def test_admin_origin_before_first_call(client: TestClient) -> None:
    opened = client.post("/breakers/127.0.0.1:9/open", headers=AUTH)
    call = client.post("/execute", json={"key": "k", "url": "http://127.0.0.1:9/x"})

    assert opened.status_code == 200
    assert call.status_code == 503
    assert call.json()["state"] == "forced_open"
    assert "retry-after" not in call.headers


def test_forced_state_shows_in_list_and_gauge(client: TestClient, guard: Guard) -> None:
    client.post("/breakers/payments/open", headers=AUTH)
    exporter = PrometheusExporter(
        ExporterContext(
            service_name_limit=10,
            snapshots=guard.breakers.snapshots,
            host="127.0.0.1",
            port=0,
        )
    )

    listed = client.get("/breakers").json()
    gauge = next(
        family
        for family in exporter.registry.collect()
        if family.name == "circuit_breaker_state"
    )

    assert [(view["service"], view["state"]) for view in listed] == [
        ("payments", "forced_open")
    ]
    assert gauge.type == "gauge"
    assert [(s.labels["service"], s.value) for s in gauge.samples] == [
        ("payments", 3.0)
    ]


def test_reload_applies_and_keeps_counts(
    client: TestClient, guard: Guard, config_path: Path
) -> None:
    for _ in range(2):
        client.post("/execute", json={"key": "k", "url": "http://127.0.0.1:9/x"})
    client.post("/breakers/payments/close", headers=AUTH)
    write_config(config_path, max_failures=3)

    answer = client.post("/admin/reload", headers=AUTH)
    origin = client.get("/breakers/127.0.0.1:9").json()

    assert answer.status_code == 200
    assert answer.json()["status"] == "reloaded"
    assert "breaker" in answer.json()["changed"]
    assert answer.json()["restart_required"] == []
    assert guard.settings.breaker.max_failures == 3
    assert origin["consecutive_failures"] == 2
    assert origin["state"] == "closed"
    assert client.get("/breakers/payments").json()["state"] == "forced_closed"

    client.post("/execute", json={"key": "k", "url": "http://127.0.0.1:9/x"})
    assert client.get("/breakers/127.0.0.1:9").json()["state"] == "open"


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("[breaker]\nmax_failures = 0\n", "max_failures"),
        ("[breaker\n", "not valid TOML"),
        ("[breaker]\nbogus = 1\n", "bogus"),
        ("[retry]\nbackoff = 'nope'\n", "no backoff strategy"),
    ],
)
def test_reload_invalid_keeps_old(
    client: TestClient, guard: Guard, config_path: Path, text: str, reason: str
) -> None:
    before = guard.settings
    config_path.write_text(
        "[metrics]\nport = 0\nexporters = []\n"
        f'[security]\nadmin_token = "{TOKEN}"\n' + text
    )

    answer = client.post("/admin/reload", headers=AUTH)

    assert answer.status_code == 422
    assert answer.headers["content-type"].startswith("application/problem+json")
    assert reason in answer.json()["detail"]
    assert guard.settings is before


def test_reload_lists_restart_keys(client: TestClient, config_path: Path) -> None:
    config_path.write_text(
        config_path.read_text().replace(
            "[storage]", "[server]\nport = 9999\n\n[storage]"
        )
    )

    answer = client.post("/admin/reload", headers=AUTH)

    assert answer.status_code == 200
    assert answer.json()["restart_required"] == ["server.port"]


def test_reload_new_token_applies(client: TestClient, config_path: Path) -> None:
    write_config(config_path, token="rotated-token")

    client.post("/admin/reload", headers=AUTH)

    assert client.post("/breakers/payments/open", headers=AUTH).status_code == 401
    rotated = {"Authorization": "Bearer rotated-token"}
    assert client.post("/breakers/payments/open", headers=rotated).status_code == 200


def test_reload_without_source_is_409(guard: Guard) -> None:
    with TestClient(create_app(guard.settings, guard)) as test_client:
        answer = test_client.post("/admin/reload", headers=AUTH)

    assert answer.status_code == 409


def test_admin_full_registry_gets_503(tmp_path: Path) -> None:
    path = tmp_path / "full.toml"
    path.write_text(
        CONFIG.format(max_failures=5, token=TOKEN).replace(
            "[breaker]\n", "[breaker]\nmax_breakers = 2\n"
        )
    )
    settings = load_settings(path)
    guard = Guard(
        settings,
        store=MemoryStore(),
        transport=ScriptedTransport(response(200)),
        backoff={"exponential": ExponentialBackoff},
        clock=FakeClock(),
    )
    app = create_app(settings, guard, reloader=Reloader(path))

    with TestClient(app) as client:
        kept = [
            client.post(f"/breakers/h{n}.test:80/open", headers=AUTH).status_code
            for n in range(2)
        ]
        lost = client.post("/breakers/h9.test:80/open", headers=AUTH)

    assert kept == [200, 200]
    assert lost.status_code == 503
    assert "breaker.max_breakers" in lost.json()["detail"]
    assert guard.breakers.find("h9.test:80") is None


@pytest.mark.parametrize("name", ["127.0.0.1:0", "127.0.0.1:99999"])
def test_admin_invalid_origin_port_gets_404(client: TestClient, name: str) -> None:
    response = client.post(f"/breakers/{name}/open", headers=AUTH)

    assert response.status_code == 404
