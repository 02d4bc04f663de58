"""The plugin host: registration through hooks, discovery, blocking and errors.

Every build passes `entry_points=` so that plugins installed in the developer's
environment never leak into these tests. Entry points come from a fake
`importlib.metadata.Distribution`, so each one carries a distribution name and
version like a real installed one.
"""

from __future__ import annotations

import importlib.metadata
import inspect
import logging
import os
import sys
import types
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import pytest

from faultguard_core import hookimpl, hookspecs
from faultguard_core.breaker import BreakerState, StateChange
from faultguard_core.errors import PluginError
from faultguard_core.events import CallFinished, FallbackServed, RetryScheduled
from faultguard_core.plugin_host import (
    ENTRY_POINT_GROUP,
    PluginHost,
    PluginInfo,
    build_plugin_host,
)
from faultguard_core.settings import PluginSettings, Settings

BUILTIN_PLUGINS = [
    "faultguard.backoff",
    "faultguard.storage.memory",
    "faultguard.storage.sqlite",
    "faultguard.exporter.prometheus",
    "faultguard.transport.httpx",
]


class _FakeDistribution(importlib.metadata.Distribution):
    """An installed distribution that exists only in memory.

    `entry_points` maps entry-point names to values (`module` or
    `module:attribute`) in the `faultguard` group.
    """

    def __init__(self, name: str, version: str, entry_points: dict[str, str]):
        self._metadata = f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"
        lines = [f"[{ENTRY_POINT_GROUP}]"]
        lines.extend(f"{key} = {value}" for key, value in entry_points.items())
        self._entry_points = "\n".join(lines) + "\n"

    def read_text(self, filename: str) -> str | None:
        if filename == "METADATA":
            return self._metadata
        if filename == "entry_points.txt":
            return self._entry_points
        return None

    def locate_file(self, path: str | os.PathLike[str]) -> Path:
        raise FileNotFoundError(path)


def _entry_points(
    *distributions: _FakeDistribution,
) -> Callable[[], list[importlib.metadata.EntryPoint]]:
    def found() -> list[importlib.metadata.EntryPoint]:
        return [ep for dist in distributions for ep in dist.entry_points]

    return found


def _no_entry_points() -> list[importlib.metadata.EntryPoint]:
    return []


def _build(
    settings: Settings | None = None,
    extra_plugins: Iterable[tuple[str, object]] = (),
    entry_points: Callable[[], Iterable[importlib.metadata.EntryPoint]] = (
        _no_entry_points
    ),
) -> PluginHost:
    return build_plugin_host(
        settings or Settings(),
        extra_plugins=extra_plugins,
        entry_points=entry_points,
    )


def _blocking(*names: str) -> Settings:
    return Settings(plugins=PluginSettings(block=list(names)))


def _install_module(
    monkeypatch: pytest.MonkeyPatch, name: str, **attributes: Any
) -> types.ModuleType:
    """Make `import name` return a new module with `attributes`, for this test."""
    module = types.ModuleType(name)
    for key, value in attributes.items():
        setattr(module, key, value)
    monkeypatch.setitem(sys.modules, name, module)
    return module


def _storage_plugin(*names: str) -> object:
    """Return a plugin object that registers storage backends under `names`."""

    class StoragePlugin:
        @hookimpl
        def faultguard_register_storage_backends(
            self, register: Callable[[str, Any], None]
        ) -> None:
            for name in names:
                register(name, object)

    return StoragePlugin()


def _call_finished() -> CallFinished:
    return CallFinished(
        service="billing",
        key="invoice-7",
        source="upstream",
        outcome="success",
        status_code=200,
        attempts=1,
        duration=0.25,
    )


# Built-in and Python-supplied plugins.


def test_builtins_register_through_hooks() -> None:
    host = _build()

    assert host.backoff_strategies.names() == {
        "constant": "faultguard.backoff",
        "exponential": "faultguard.backoff",
        "linear": "faultguard.backoff",
    }
    assert host.storage_backends.names() == {
        "memory": "faultguard.storage.memory",
        "sqlite": "faultguard.storage.sqlite",
    }
    assert host.metric_exporters.names() == {
        "prometheus": "faultguard.exporter.prometheus"
    }
    assert host.transports.names() == {"httpx": "faultguard.transport.httpx"}


def test_builtins_listed_as_plugin_infos() -> None:
    version = importlib.metadata.version("faultguard")

    host = _build()

    assert host.plugins == [
        PluginInfo(name, "faultguard", version, True) for name in BUILTIN_PLUGINS
    ]


def test_builtins_have_no_event_listeners() -> None:
    host = _build()

    assert host.has_event_listeners() is False


def test_extra_plugin_is_registered() -> None:
    class Extra:
        @hookimpl
        def faultguard_register_backoff_strategies(
            self, register: Callable[[str, Any], None]
        ) -> None:
            register("extra-backoff", object)

        @hookimpl
        def faultguard_handle_call_finished(self, event: CallFinished) -> None:
            pass

    host = _build(extra_plugins=[("extra", Extra())])

    assert host.backoff_strategies.names()["extra-backoff"] == "extra"
    assert host.plugins[-1] == PluginInfo("extra", "(python)", "", False)
    assert host.has_event_listeners() is True


def test_registries_keep_registration_order() -> None:
    seen: list[str] = []

    class Recorder:
        def __init__(self, label: str) -> None:
            self.label = label

        @hookimpl
        def faultguard_register_transports(
            self, register: Callable[[str, Any], None]
        ) -> None:
            seen.append(self.label)

    _build(extra_plugins=[("first", Recorder("first")), ("second", Recorder("second"))])

    assert seen == ["first", "second"]


# Invalid hook implementations.


class _MisspelledHook:
    @hookimpl
    def faultguard_register_backof_strategies(
        self, register: Callable[[str, Any], None]
    ) -> None:
        register("never", object)


def test_misspelled_hook_names_hook() -> None:
    with pytest.raises(PluginError) as caught:
        _build(extra_plugins=[("typo-plugin", _MisspelledHook())])

    assert "faultguard_register_backof_strategies" in str(caught.value)


def test_misspelled_hook_names_plugin() -> None:
    with pytest.raises(PluginError) as caught:
        _build(extra_plugins=[("typo-plugin", _MisspelledHook())])

    assert "typo-plugin" in str(caught.value)


def test_mismatched_arguments_raise_plugin_error() -> None:
    class WrongArguments:
        @hookimpl
        def faultguard_register_storage_backends(
            self, add: Callable[[str, Any], None]
        ) -> None:
            add("never", object)

    with pytest.raises(PluginError) as caught:
        _build(extra_plugins=[("wrong-arguments", WrongArguments())])

    assert "wrong-arguments" in str(caught.value)
    assert "faultguard_register_storage_backends" in str(caught.value)


# Name clashes.


def test_duplicate_backend_names_both_plugins() -> None:
    plugins = [
        ("first", _storage_plugin("shared")),
        ("second", _storage_plugin("shared")),
    ]

    with pytest.raises(PluginError) as caught:
        _build(extra_plugins=plugins)

    message = str(caught.value)
    assert "'shared'" in message
    assert "'first'" in message
    assert "'second'" in message


def test_backend_clashing_with_builtin() -> None:
    with pytest.raises(PluginError) as caught:
        _build(extra_plugins=[("shadow", _storage_plugin("memory"))])

    message = str(caught.value)
    assert "'faultguard.storage.memory'" in message
    assert "'shadow'" in message


def test_duplicate_plugin_name_with_builtin() -> None:
    with pytest.raises(PluginError) as caught:
        _build(extra_plugins=[("faultguard.backoff", _storage_plugin("extra"))])

    message = str(caught.value)
    assert "'faultguard.backoff'" in message
    assert "faultguard and a Python caller" in message


def test_duplicate_entry_point_names_both_distributions(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _install_module(monkeypatch, "fg_test_dup_one")
    _install_module(monkeypatch, "fg_test_dup_two")
    found = _entry_points(
        _FakeDistribution("dist-one", "1.0", {"dup": "fg_test_dup_one"}),
        _FakeDistribution("dist-two", "2.0", {"dup": "fg_test_dup_two"}),
    )

    with pytest.raises(PluginError) as caught:
        _build(entry_points=found)

    message = str(caught.value)
    assert "'dup'" in message
    assert "distribution dist-one 1.0" in message
    assert "distribution dist-two 2.0" in message


def test_invalid_registered_name_rejected() -> None:
    with pytest.raises(PluginError) as caught:
        _build(extra_plugins=[("empty-name", _storage_plugin(""))])

    assert "'empty-name'" in str(caught.value)


# Entry points, blocking and autoload.


def test_entry_point_plugin_is_registered(monkeypatch: pytest.MonkeyPatch) -> None:
    @hookimpl
    def faultguard_register_storage_backends(
        register: Callable[[str, Any], None],
    ) -> None:
        register("ep-store", object)

    _install_module(
        monkeypatch,
        "fg_test_ep_plugin",
        faultguard_register_storage_backends=faultguard_register_storage_backends,
    )
    found = _entry_points(
        _FakeDistribution("fg-ep-dist", "4.5.6", {"ep": "fg_test_ep_plugin"})
    )

    host = _build(entry_points=found)

    assert host.storage_backends.names()["ep-store"] == "ep"
    assert host.plugins[-1] == PluginInfo("ep", "fg-ep-dist", "4.5.6", False)


def test_block_skips_builtin_plugin() -> None:
    host = _build(_blocking("faultguard.storage.memory"))

    assert "memory" not in host.storage_backends.names()
    assert "sqlite" in host.storage_backends.names()
    assert "faultguard.storage.memory" not in [info.name for info in host.plugins]


def test_block_skips_extra_plugin() -> None:
    host = _build(
        _blocking("blocked-extra"),
        extra_plugins=[("blocked-extra", _storage_plugin("blocked-store"))],
    )

    assert "blocked-store" not in host.storage_backends.names()
    assert "blocked-extra" not in [info.name for info in host.plugins]


def test_block_skips_entry_point_before_import() -> None:
    # The module does not exist, so the build fails if it tries to import it.
    found = _entry_points(
        _FakeDistribution("fg-blocked", "1.0", {"blocked": "fg_test_no_such_module"})
    )

    host = _build(_blocking("blocked"), entry_points=found)

    assert "blocked" not in [info.name for info in host.plugins]


def test_autoload_off_skips_entry_points() -> None:
    calls: list[str] = []
    broken = _entry_points(
        _FakeDistribution("fg-hidden", "1.0", {"hidden": "fg_test_no_such_module"})
    )

    def found() -> list[importlib.metadata.EntryPoint]:
        calls.append("called")
        return broken()

    host = _build(Settings(plugins=PluginSettings(autoload=False)), entry_points=found)

    assert calls == []
    assert [info.name for info in host.plugins] == BUILTIN_PLUGINS


def test_autoload_off_keeps_extra_plugins() -> None:
    host = _build(
        Settings(plugins=PluginSettings(autoload=False)),
        extra_plugins=[("kept", _storage_plugin("kept-store"))],
    )

    assert host.storage_backends.names()["kept-store"] == "kept"


def test_missing_module_names_plugin_and_distribution() -> None:
    found = _entry_points(
        _FakeDistribution("broken-dist", "9.9", {"broken": "fg_test_no_such_module"})
    )

    with pytest.raises(PluginError) as caught:
        _build(entry_points=found)

    message = str(caught.value)
    assert "'broken'" in message
    assert "broken-dist 9.9" in message
    assert isinstance(caught.value.__cause__, ModuleNotFoundError)


def test_module_raising_on_import_names_plugin(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = tmp_path / "fg_test_raises_on_import.py"
    source.write_text("raise RuntimeError('database driver missing')\n")
    monkeypatch.syspath_prepend(tmp_path)
    monkeypatch.delitem(sys.modules, "fg_test_raises_on_import", raising=False)
    found = _entry_points(
        _FakeDistribution(
            "raising-dist", "0.1", {"raising": "fg_test_raises_on_import"}
        )
    )

    with pytest.raises(PluginError) as caught:
        _build(entry_points=found)

    message = str(caught.value)
    assert "'raising'" in message
    assert "raising-dist 0.1" in message
    assert "database driver missing" in message


def test_missing_attribute_names_plugin(monkeypatch: pytest.MonkeyPatch) -> None:
    _install_module(monkeypatch, "fg_test_no_attribute")
    found = _entry_points(
        _FakeDistribution(
            "attribute-dist", "2.2", {"attribute": "fg_test_no_attribute:Plugin"}
        )
    )

    with pytest.raises(PluginError) as caught:
        _build(entry_points=found)

    message = str(caught.value)
    assert "'attribute'" in message
    assert "attribute-dist 2.2" in message


# Event hooks.


class _EventRecorder:
    """Records every event it receives, from all four event hooks."""

    def __init__(self) -> None:
        self.events: list[object] = []

    @hookimpl
    def faultguard_handle_state_change(self, change: StateChange) -> None:
        self.events.append(change)

    @hookimpl
    def faultguard_handle_retry_scheduled(self, event: RetryScheduled) -> None:
        self.events.append(event)

    @hookimpl
    def faultguard_handle_fallback_served(self, event: FallbackServed) -> None:
        self.events.append(event)

    @hookimpl
    def faultguard_handle_call_finished(self, event: CallFinished) -> None:
        self.events.append(event)


class _FailingListener:
    """Raises from all four event hooks."""

    @hookimpl
    def faultguard_handle_state_change(self, change: StateChange) -> None:
        raise RuntimeError("listener broke")

    @hookimpl
    def faultguard_handle_retry_scheduled(self, event: RetryScheduled) -> None:
        raise RuntimeError("listener broke")

    @hookimpl
    def faultguard_handle_fallback_served(self, event: FallbackServed) -> None:
        raise RuntimeError("listener broke")

    @hookimpl
    def faultguard_handle_call_finished(self, event: CallFinished) -> None:
        raise RuntimeError("listener broke")


EVENT_CASES = [
    pytest.param(
        "emit_state_change",
        "faultguard_handle_state_change",
        StateChange("billing", BreakerState.CLOSED, BreakerState.OPEN, 12.5),
        id="state_change",
    ),
    pytest.param(
        "emit_retry_scheduled",
        "faultguard_handle_retry_scheduled",
        RetryScheduled("billing", "invoice-7", 1, 0.2, "503"),
        id="retry_scheduled",
    ),
    pytest.param(
        "emit_fallback_served",
        "faultguard_handle_fallback_served",
        FallbackServed("billing", "invoice-7", 200, 30.0, "upstream_failed"),
        id="fallback_served",
    ),
    pytest.param(
        "emit_call_finished",
        "faultguard_handle_call_finished",
        _call_finished(),
        id="call_finished",
    ),
]


@pytest.mark.parametrize(("emit", "hook", "event"), EVENT_CASES)
def test_failing_event_hook_is_contained(
    emit: str, hook: str, event: object, caplog: pytest.LogCaptureFixture
) -> None:
    # Hooks run newest registration first, so `after` runs before the failing
    # listener and `before` runs after it.
    before = _EventRecorder()
    after = _EventRecorder()
    host = _build(
        extra_plugins=[
            ("before", before),
            ("failing", _FailingListener()),
            ("after", after),
        ]
    )

    with caplog.at_level(logging.ERROR, logger="faultguard"):
        getattr(host, emit)(event)

    assert before.events == [event]
    assert after.events == [event]
    failures = [r for r in caplog.records if r.getMessage() == "plugin_hook_failed"]
    assert len(failures) == 1
    assert getattr(failures[0], "plugin", None) == "failing"
    assert getattr(failures[0], "hook", None) == hook
    assert failures[0].exc_info is not None


def test_event_hook_without_arguments_runs(
    caplog: pytest.LogCaptureFixture,
) -> None:
    calls: list[str] = []

    class CountsCalls:
        @hookimpl
        def faultguard_handle_call_finished(self) -> None:
            calls.append("called")

    host = _build(extra_plugins=[("counter", CountsCalls())])

    with caplog.at_level(logging.ERROR, logger="faultguard"):
        host.emit_call_finished(_call_finished())

    assert calls == ["called"]


# Isolation between builds.


def test_builds_share_no_registrations() -> None:
    plugin = _storage_plugin("one-off")

    first = _build(extra_plugins=[("one-off-plugin", plugin)])
    second = _build()

    assert first.storage_backends.names()["one-off"] == "one-off-plugin"
    assert "one-off" not in second.storage_backends.names()
    assert "one-off-plugin" not in [info.name for info in second.plugins]


def test_same_plugin_builds_twice() -> None:
    plugin = _storage_plugin("repeat")

    first = _build(extra_plugins=[("repeat-plugin", plugin)])
    second = _build(extra_plugins=[("repeat-plugin", plugin)])

    assert first.storage_backends.names()["repeat"] == "repeat-plugin"
    assert second.storage_backends.names()["repeat"] == "repeat-plugin"


# The hook specifications themselves.


def _hookspec_functions() -> list[tuple[str, Callable[..., object]]]:
    marker = f"{hookspecs.PROJECT_NAME}_spec"
    return [
        (name, value)
        for name, value in vars(hookspecs).items()
        if inspect.isfunction(value) and hasattr(value, marker)
    ]


HOOKSPECS = _hookspec_functions()


def test_hookspecs_are_found() -> None:
    assert len(HOOKSPECS) == 11


@pytest.mark.parametrize(
    ("name", "spec"), HOOKSPECS, ids=[name for name, _ in HOOKSPECS]
)
def test_hookspec_has_docstring(name: str, spec: Callable[..., object]) -> None:
    assert (spec.__doc__ or "").strip(), f"{name} has no docstring"


@pytest.mark.parametrize(
    ("name", "spec"), HOOKSPECS, ids=[name for name, _ in HOOKSPECS]
)
def test_hookspec_name_has_prefix(name: str, spec: Callable[..., object]) -> None:
    assert name.startswith("faultguard_")
