"""Configuration reload: re-read the sources the server started from.

`Reloader` keeps the config file path and the command-line overrides that
`faultguard serve` started with, so a reload (SIGHUP or `POST /admin/reload`)
calls `load_settings` with the same sources. Applying new settings keeps every
breaker's state, counts and open period; only their settings change.

Reloaded at once: `[breaker]` (a lower `max_breakers` evicts idle breakers
at once, and busy ones as they become idle), `[retry]`, `[request]`,
`[services]`, `security.admin_token` and `security.blocked_networks`, and any
other setting the guard reads per call. Settings that belong to listeners,
pools and plugins (`[server]`, `[metrics]`, `[storage]`, `[transport]`,
`[plugins]`) need a restart. A reload that changes them still applies the
rest and lists them in `restart_required`.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from faultguard_core.settings import BreakerSettings, Settings, load_settings

if TYPE_CHECKING:
    from faultguard_core.guard import Guard

logger = logging.getLogger("faultguard")

RESTART_SECTIONS = ("server", "metrics", "storage", "transport", "plugins")
"""Sections that a reload reads but cannot apply to a running server."""


@dataclass(frozen=True, slots=True)
class ReloadResult:
    """What a successful reload changed.

    `changed` lists the top-level sections whose values differ, and
    `restart_required` the dotted keys that only take effect after a restart.
    """

    changed: list[str] = field(default_factory=list)
    restart_required: list[str] = field(default_factory=list)


class Reloader:
    """Re-reads the configuration from the sources of the first load.

    `config_file` None means what it meant at start-up: the file that
    `FAULTGUARD_CONFIG` names, if any. Reloads are serialized.
    """

    def __init__(
        self,
        config_file: str | Path | None = None,
        overrides: Mapping[str, Any] | None = None,
    ) -> None:
        self.config_file = config_file
        self.overrides = dict(overrides or {})
        self._lock = threading.Lock()

    def load(self) -> Settings:
        """Load the settings again; raises `ConfigError` when they are invalid."""
        return load_settings(self.config_file, self.overrides)

    def reload(self, guard: Guard) -> tuple[Settings, ReloadResult]:
        """Load and apply new settings to `guard`.

        Raises `ConfigError` naming the problem when the new configuration is
        invalid; the guard then keeps the settings it had.
        """
        with self._lock:
            settings = self.load()
            result = apply_settings(guard, settings)
        logger.info(
            "config_reloaded",
            extra={
                "changed": ",".join(result.changed),
                "restart_required": ",".join(result.restart_required),
            },
        )
        return settings, result


def _changed_keys(old: Settings, new: Settings, section: str) -> list[str]:
    before = getattr(old, section).model_dump()
    after = getattr(new, section).model_dump()
    keys = sorted(set(before) | set(after))
    return [f"{section}.{key}" for key in keys if before.get(key) != after.get(key)]


def apply_settings(guard: Guard, settings: Settings) -> ReloadResult:
    """Switch `guard` to `settings`, keeping every breaker's state and counts.

    Validates first: an unknown `retry.backoff` name raises `ConfigError` and
    changes nothing. Calls in flight finish under the policy they started
    with.
    """
    # Raises ConfigError before anything changes.
    guard._check_backoff(settings.default_policy())
    for name in settings.services:
        guard._check_backoff(settings.policy_for(name))

    old = guard.settings
    changed = [
        section
        for section in Settings.model_fields
        if getattr(old, section) != getattr(settings, section)
    ]
    restart_required = [
        key
        for section in RESTART_SECTIONS
        for key in _changed_keys(old, settings, section)
    ]

    def breaker_settings(name: str, is_service: bool) -> BreakerSettings:
        if is_service and name in settings.services:
            return settings.policy_for(name).breaker
        return settings.breaker

    guard.settings = settings
    guard.breakers.reconfigure(breaker_settings, settings.breaker.max_breakers)
    return ReloadResult(changed=changed, restart_required=restart_required)
