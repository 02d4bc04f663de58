"""Docs that can drift: hooks, metrics, endpoints and the public API."""

from __future__ import annotations

import inspect
from pathlib import Path

import faultguard_core
from faultguard_core import hookspecs
from faultguard_core.exporters.base import ExporterContext
from faultguard_core.exporters.prometheus import PrometheusExporter
from faultguard_core.server.app import create_app
from faultguard_core.settings import load_settings

DOCS = Path(__file__).parents[2] / "docs"


def hook_names() -> list[str]:
    return [
        name
        for name, value in inspect.getmembers(hookspecs, inspect.isfunction)
        if name.startswith("faultguard_")
    ]


def test_public_api_sorted_and_importable() -> None:
    names = faultguard_core.__all__

    assert names == sorted(names)
    for name in names:
        assert hasattr(faultguard_core, name), name


def test_every_hook_documented() -> None:
    text = (DOCS / "plugins.md").read_text()

    assert len(hook_names()) >= 8
    for name in hook_names():
        assert f"`{name}`" in text, name


def test_every_metric_documented() -> None:
    exporter = PrometheusExporter(
        ExporterContext(
            service_name_limit=10, snapshots=lambda: [], host="127.0.0.1", port=0
        )
    )
    text = (DOCS / "metrics.md").read_text()
    families = {metric.name for metric in exporter.registry.collect()}

    assert "circuit_breaker_state" in families
    for family in families:
        counter_name = f"{family}_total"
        assert f"`{family}{{" in text or f"`{counter_name}{{" in text, family


def test_every_route_documented(tmp_path: Path) -> None:
    settings = load_settings(
        overrides={
            "metrics": {"port": 0},
            "storage": {"backend": "memory", "path": str(tmp_path / "x.db")},
        }
    )
    app = create_app(settings)
    text = (DOCS / "api.md").read_text()
    paths = {route.path for route in app.routes if not route.path.startswith("/schema")}

    assert "/execute" in paths
    for path in paths:
        documented = path.replace("{service:str}", "{service}")
        assert f"`{documented}`" in text or f" {documented}`" in text, path
