"""The plugin manager and the typed facade over its hooks.

This is the only module that calls hooks. Everything else asks a `PluginHost`
for a named strategy, backend, exporter or transport, or calls its typed
`emit_*` methods for events.
"""

from __future__ import annotations

import importlib.metadata
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from types import ModuleType
from typing import Any, Generic, TypeVar

import pluggy

from faultguard_core import hookspecs
from faultguard_core.errors import ConfigError, PluginError
from faultguard_core.settings import Settings

logger = logging.getLogger("faultguard")

ENTRY_POINT_GROUP = "faultguard"

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class PluginInfo:
    """A loaded plugin and where it came from."""

    name: str
    distribution: str
    version: str
    builtin: bool


class Registry(Generic[T]):
    """Named factories of one kind, remembering which plugin supplied each."""

    def __init__(self, kind: str, setting: str) -> None:
        self.kind = kind
        self.setting = setting
        self._entries: dict[str, tuple[T, str]] = {}

    def add(self, name: str, factory: T, plugin: str) -> None:
        if not isinstance(name, str) or not name:
            raise PluginError(
                f"plugin {plugin!r} registered a {self.kind} with an invalid"
                f" name {name!r}; names are non-empty strings"
            )
        if name in self._entries:
            other = self._entries[name][1]
            raise PluginError(
                f"{self.kind} {name!r} is registered by both plugin {other!r}"
                f" and plugin {plugin!r}; uninstall one or block it with"
                " plugins.block"
            )
        self._entries[name] = (factory, plugin)

    def get(self, name: str) -> T:
        try:
            return self._entries[name][0]
        except KeyError:
            known = ", ".join(sorted(self._entries)) or "none"
            raise ConfigError(
                f"{self.setting} = {name!r}: no {self.kind} of that name is"
                f" registered (registered: {known}); install the plugin that"
                " provides it or fix the setting"
            ) from None

    def names(self) -> dict[str, str]:
        """Return each registered name with the plugin that supplied it."""
        return {name: plugin for name, (_, plugin) in sorted(self._entries.items())}


def _builtin_plugins() -> list[tuple[str, ModuleType]]:
    # Imported here so that importing faultguard_core builds nothing.
    from faultguard_core.backoff import strategies
    from faultguard_core.exporters import prometheus
    from faultguard_core.storage import memory, sqlite
    from faultguard_core.transport import httpx_transport

    return [
        ("faultguard.backoff", strategies),
        ("faultguard.storage.memory", memory),
        ("faultguard.storage.sqlite", sqlite),
        ("faultguard.exporter.prometheus", prometheus),
        ("faultguard.transport.httpx", httpx_transport),
    ]


class PluginHost:
    """A pluggy manager for one app, with the registries its hooks filled."""

    def __init__(self, manager: pluggy.PluginManager, plugins: list[PluginInfo]):
        self._pm = manager
        self.plugins = plugins
        self.backoff_strategies: Registry[Any] = Registry(
            "backoff strategy", "retry.backoff"
        )
        self.storage_backends: Registry[Any] = Registry(
            "storage backend", "storage.backend"
        )
        self.breaker_state_stores: Registry[Any] = Registry(
            "breaker state store", "storage.breaker_state"
        )
        self.metric_exporters: Registry[Any] = Registry(
            "metric exporter", "metrics.exporters"
        )
        self.transports: Registry[Any] = Registry("transport", "transport.name")
        self._collect("faultguard_register_backoff_strategies", self.backoff_strategies)
        self._collect("faultguard_register_storage_backends", self.storage_backends)
        self._collect(
            "faultguard_register_breaker_state_stores", self.breaker_state_stores
        )
        self._collect("faultguard_register_metric_exporters", self.metric_exporters)
        self._collect("faultguard_register_transports", self.transports)

    def _collect(self, hook_name: str, registry: Registry[Any]) -> None:
        caller = getattr(self._pm.hook, hook_name)
        # pluggy calls the newest registration first; walk the list in
        # registration order so built-ins come before third-party plugins.
        for impl in caller.get_hookimpls():
            plugin = impl.plugin_name

            def register(name: str, factory: Any, _plugin: str = plugin) -> None:
                registry.add(name, factory, _plugin)

            if "register" in impl.argnames:
                impl.function(register=register)

    def _emit(self, hook_name: str, **kwargs: Any) -> None:
        caller = getattr(self._pm.hook, hook_name)
        for impl in caller.get_hookimpls():
            # pluggy lets an implementation declare a subset of the arguments.
            arguments = {name: kwargs[name] for name in impl.argnames}
            try:
                impl.function(**arguments)
            except Exception:
                logger.exception(
                    "plugin_hook_failed",
                    extra={"plugin": impl.plugin_name, "hook": hook_name},
                )

    def has_event_listeners(self) -> bool:
        """Return True if any plugin implements an event hook."""
        return any(
            getattr(self._pm.hook, name).get_hookimpls() for name in _EVENT_HOOKS
        )

    def emit_state_change(self, change: Any) -> None:
        self._emit("faultguard_handle_state_change", change=change)

    def emit_call_rejected(self, event: Any) -> None:
        self._emit("faultguard_handle_call_rejected", event=event)

    def emit_call_recorded(self, event: Any) -> None:
        self._emit("faultguard_handle_call_recorded", event=event)

    def emit_retry_scheduled(self, event: Any) -> None:
        self._emit("faultguard_handle_retry_scheduled", event=event)

    def emit_fallback_served(self, event: Any) -> None:
        self._emit("faultguard_handle_fallback_served", event=event)

    def emit_call_finished(self, event: Any) -> None:
        self._emit("faultguard_handle_call_finished", event=event)


_EVENT_HOOKS = (
    "faultguard_handle_state_change",
    "faultguard_handle_call_rejected",
    "faultguard_handle_call_recorded",
    "faultguard_handle_retry_scheduled",
    "faultguard_handle_fallback_served",
    "faultguard_handle_call_finished",
)


def _distribution_of(entry_point: importlib.metadata.EntryPoint) -> tuple[str, str]:
    dist = entry_point.dist
    if dist is None:
        return ("unknown", "unknown")
    return (dist.metadata["Name"], dist.version)


def build_plugin_host(
    settings: Settings,
    extra_plugins: Iterable[tuple[str, object]] = (),
    entry_points: Callable[[], Iterable[importlib.metadata.EntryPoint]] | None = None,
) -> PluginHost:
    """Build a plugin manager for one app and fill its registries.

    Registers the built-ins, then `extra_plugins` (name, plugin object) given
    by Python callers, then, unless `plugins.autoload` is off, every entry
    point of the `faultguard` group. Blocked names are skipped. Raises
    `PluginError` for a duplicate plugin name, a plugin that fails to import,
    or a hook implementation that matches no spec (a misspelled hook).
    """
    manager = pluggy.PluginManager(hookspecs.PROJECT_NAME)
    manager.add_hookspecs(hookspecs)
    blocked = set(settings.plugins.block)
    for name in blocked:
        manager.set_blocked(name)

    infos: list[PluginInfo] = []
    origins: dict[str, str] = {}
    try:
        version = importlib.metadata.version("faultguard")
    except importlib.metadata.PackageNotFoundError:
        version = "unknown"

    def add(name: str, plugin: object, info: PluginInfo, origin: str) -> None:
        if name in blocked:
            logger.info("plugin_blocked", extra={"plugin": name})
            return
        if name in origins:
            raise PluginError(
                f"two plugins are named {name!r}: {origins[name]} and {origin};"
                " uninstall one or block the name with plugins.block"
            )
        try:
            manager.register(plugin, name=name)
        except pluggy.PluginValidationError as exc:
            raise PluginError(
                f"plugin {name!r} from {origin} has an invalid hook"
                f" implementation: {exc}"
            ) from exc
        except ValueError as exc:
            raise PluginError(f"cannot register plugin {name!r}: {exc}") from exc
        origins[name] = origin
        infos.append(info)

    for name, module in _builtin_plugins():
        add(name, module, PluginInfo(name, "faultguard", version, True), "faultguard")
    for name, plugin in extra_plugins:
        add(name, plugin, PluginInfo(name, "(python)", "", False), "a Python caller")

    if settings.plugins.autoload:
        found = (
            entry_points()
            if entry_points is not None
            else importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)
        )
        for entry_point in found:
            if entry_point.name in blocked:
                continue
            dist_name, dist_version = _distribution_of(entry_point)
            origin = f"distribution {dist_name} {dist_version}"
            try:
                plugin = entry_point.load()
            except Exception as exc:
                raise PluginError(
                    f"plugin {entry_point.name!r} from {origin} failed to"
                    f" import ({entry_point.value}): {exc}; reinstall it or"
                    f" block it with plugins.block"
                ) from exc
            info = PluginInfo(entry_point.name, dist_name, dist_version, False)
            add(entry_point.name, plugin, info, origin)

    try:
        manager.check_pending()
    except pluggy.PluginValidationError as exc:
        name = manager.get_name(exc.plugin) or repr(exc.plugin)
        raise PluginError(
            f"plugin {name!r} implements a hook that faultguard does not"
            f" define: {exc}; check the hook's spelling against"
            " faultguard_core.hookspecs"
        ) from exc
    return PluginHost(manager, infos)
