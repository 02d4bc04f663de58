"""The faultguard plugin contract.

A plugin is a module or object with functions marked `@faultguard_core.hookimpl`
whose names match the specs below. Third-party plugins are found through the
`faultguard` entry-point group; built-ins register through the same hooks.

Registration hooks run once when an app is built. Each receives a `register`
callback; registering a name that another plugin already registered raises
`PluginError` naming both plugins.

Event hooks run after the fact, outside the breaker's lock. An exception in an
event hook is logged with the plugin's name and never changes a call's result
or a breaker's state. None of the hooks is `firstresult` or `historic`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    from faultguard_core.backoff.base import BackoffFactory
    from faultguard_core.breaker import StateChange
    from faultguard_core.events import CallFinished, FallbackServed, RetryScheduled
    from faultguard_core.exporters.base import ExporterContext, MetricsExporter
    from faultguard_core.settings import Settings
    from faultguard_core.storage.base import FallbackStore
    from faultguard_core.transport.base import Transport

PROJECT_NAME = "faultguard"

hookspec = pluggy.HookspecMarker(PROJECT_NAME)

StorageFactory = Callable[["Settings"], "FallbackStore"]
"""Builds a fallback store from the settings; must not do I/O (see `open`)."""

ExporterFactory = Callable[["Settings", "ExporterContext"], "MetricsExporter"]
"""Builds a metric exporter; it starts serving only in `start()`."""

TransportFactory = Callable[["Settings"], "Transport"]
"""Builds a transport with its connection pool."""


# Registration: called once per app, in plugin registration order.


@hookspec
def faultguard_register_backoff_strategies(
    register: Callable[[str, BackoffFactory], None],
) -> None:
    """Register backoff strategies by name, for the `retry.backoff` setting.

    Call `register(name, factory)` once per strategy. The factory gets the
    effective `RetrySettings` and a `random.Random` and returns a fresh
    `BackoffStrategy` for one call.
    """


@hookspec
def faultguard_register_storage_backends(
    register: Callable[[str, StorageFactory], None],
) -> None:
    """Register fallback store backends by name, for `storage.backend`.

    Call `register(name, factory)`; the factory gets the whole `Settings` so
    a backend can read its own keys under `[storage]`.
    """


@hookspec
def faultguard_register_metric_exporters(
    register: Callable[[str, ExporterFactory], None],
) -> None:
    """Register metric exporters by name, for the `metrics.exporters` list."""


@hookspec
def faultguard_register_transports(
    register: Callable[[str, TransportFactory], None],
) -> None:
    """Register transports by name, for the `transport.name` setting."""


# Events: called after the fact, outside the breaker's lock.


@hookspec
def faultguard_handle_state_change(change: StateChange) -> None:
    """Called once per breaker transition (closed, open, half-open)."""


@hookspec
def faultguard_handle_retry_scheduled(event: RetryScheduled) -> None:
    """Called when a failed attempt will be retried, before the backoff sleep."""


@hookspec
def faultguard_handle_fallback_served(event: FallbackServed) -> None:
    """Called when a call is answered from the fallback store."""


@hookspec
def faultguard_handle_call_finished(event: CallFinished) -> None:
    """Called once per guarded call, after its result is known."""
