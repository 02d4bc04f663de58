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
    from faultguard_core.breaker import CallRecorded, CallRejected, StateChange
    from faultguard_core.events import CallFinished, FallbackServed, RetryScheduled
    from faultguard_core.exporters.base import ExporterContext, MetricsExporter
    from faultguard_core.settings import Settings
    from faultguard_core.storage.base import BreakerStateStore, FallbackStore
    from faultguard_core.transport.base import Transport

PROJECT_NAME = "faultguard"

hookspec = pluggy.HookspecMarker(PROJECT_NAME)

StorageFactory = Callable[["Settings"], "FallbackStore"]
"""Builds a fallback store from the settings; must not do I/O (see `open`)."""

BreakerStateStoreFactory = Callable[["Settings"], "BreakerStateStore"]
"""Builds a breaker state store from the settings; must not do I/O."""

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
def faultguard_register_breaker_state_stores(
    register: Callable[[str, BreakerStateStoreFactory], None],
) -> None:
    """Register breaker state store backends by name, for `storage.breaker_state`.

    A backend may serve this role, the fallback store role, or both. Call
    `register(name, factory)` under the same name as the fallback store when
    both roles live in one backend, so `breaker.persist_state` finds it.
    The name `local` is reserved for the in-process breakers.
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
    """Called once per breaker transition, in the order the transitions happen.

    `change.reason` names the rule or manual action that caused it.
    """


@hookspec
def faultguard_handle_call_rejected(event: CallRejected) -> None:
    """Called once per call that a breaker rejects (open, forced open, or no
    free half-open probe slot)."""


@hookspec
def faultguard_handle_call_recorded(event: CallRecorded) -> None:
    """Called once per call result that a breaker counts, before any state
    change that the result causes."""


@hookspec
def faultguard_handle_retry_scheduled(event: RetryScheduled) -> None:
    """Called when a failed attempt will be retried, before the backoff sleep."""


@hookspec
def faultguard_handle_fallback_served(event: FallbackServed) -> None:
    """Called when a call is answered from the fallback store."""


@hookspec
def faultguard_handle_call_finished(event: CallFinished) -> None:
    """Called once per guarded call, after its result is known."""
