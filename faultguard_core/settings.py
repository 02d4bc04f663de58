"""One `Settings` class and its loader.

Sources, lowest precedence first: defaults, the TOML file, `FAULTGUARD_*`
environment variables (`__` between levels), then explicit arguments (the
command line). A config file that is named but missing is an error.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from faultguard_core.durations import Duration
from faultguard_core.errors import ConfigError

CONFIG_ENV_VAR = "FAULTGUARD_CONFIG"
ENV_PREFIX = "FAULTGUARD_"


def _split_names(value: Any) -> Any:
    """Accept `a,b` or a JSON list from the environment for a list of names."""
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            import json

            return json.loads(text)
        return [part.strip() for part in text.split(",") if part.strip()]
    return value


NameList = Annotated[list[str], NoDecode, BeforeValidator(_split_names)]

ErrorKind = Literal["connect", "timeout", "protocol", "response_too_large"]
"""A kind of failed attempt without a response, as `retry.on_errors` names it."""

ErrorKindList = Annotated[list[ErrorKind], NoDecode, BeforeValidator(_split_names)]

StatusList = Annotated[
    list[Annotated[int, Field(ge=100, le=599)]],
    NoDecode,
    BeforeValidator(_split_names),
]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_default=True)


class ServerSettings(_Section):
    """The REST listener."""

    host: str = "127.0.0.1"
    port: int = Field(8080, ge=0, le=65535)
    max_body_bytes: int = Field(1_048_576, gt=0)
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    workers: int = Field(1, ge=1, le=64)


class MetricsSettings(_Section):
    """Metric exporters and the Prometheus listener."""

    host: str = "127.0.0.1"
    port: int = Field(9090, ge=0, le=65535)
    exporters: NameList = ["prometheus"]
    max_services: int = Field(100, ge=1)


class StorageSettings(_Section):
    """The fallback store backend and its limits.

    Extra keys are allowed so that a storage plugin can read its own settings
    (for example `storage.redis.url`) from this section.
    """

    model_config = ConfigDict(extra="allow", validate_default=True)

    backend: str = "sqlite"
    path: Path = Path("./fallback.db")
    busy_timeout: Duration = 5.0
    max_entry_bytes: int = Field(1_048_576, gt=0)
    max_entries: int = Field(100_000, ge=1)
    max_bytes: int = Field(268_435_456, ge=1)
    durability: Literal["sync", "batched"] = "sync"
    synchronous: Literal["normal", "full"] = "normal"
    batch_interval: Duration = 0.05
    batch_max_pending: int = Field(10_000, ge=1)
    breaker_state: str = "local"

    @field_validator("batch_interval")
    @classmethod
    def _positive_batch_interval(cls, value: float) -> float:
        if value <= 0:
            raise ValueError(
                "storage.batch_interval must be above 0s, because batched"
                " writes are committed once per interval"
            )
        return value


class FallbackSettings(_Section):
    """Limits on the stored responses that may be served as a fallback."""

    max_age: Duration = 86_400.0


def _split_status_rules(value: Any) -> Any:
    """Accept status rules as ints or strings, in a list or as `a,b` text."""
    value = _split_names(value)
    if isinstance(value, list):
        return [str(item) if isinstance(item, int) else item for item in value]
    return value


StatusRuleList = Annotated[list[str], NoDecode, BeforeValidator(_split_status_rules)]

TripPolicy = Literal["consecutive", "failure_rate", "slow_call_rate"]

TripPolicyList = Annotated[list[TripPolicy], NoDecode, BeforeValidator(_split_names)]


class BreakerSettings(_Section):
    """The circuit breaker of each service or origin.

    docs/breaker.md describes every rule; the validators reject combinations
    under which a configured trip rule could never fire.
    """

    trip_policies: TripPolicyList = ["consecutive"]
    max_failures: int = Field(5, ge=1)
    window_type: Literal["count", "time"] = "count"
    window_size: int = Field(100, ge=1, le=100_000)
    window_duration: Duration = 60.0
    window_buckets: int = Field(10, ge=1, le=1000)
    min_calls: int = Field(10, ge=1)
    failure_rate_threshold: float = Field(0.5, gt=0.0, le=1.0)
    slow_call_duration: Duration = 1.0
    slow_call_rate_threshold: float = Field(1.0, gt=0.0, le=1.0)
    open_duration: Duration = 30.0
    open_duration_multiplier: float = Field(2.0, ge=1.0, le=100.0)
    max_open_duration: Duration = 300.0
    jitter: float = Field(0.0, ge=0.0, le=1.0)
    half_open_max_calls: int = Field(1, ge=1)
    half_open_success_threshold: int | None = Field(None, ge=1)
    half_open_timeout: Duration = 60.0
    failure_statuses: StatusRuleList = ["5xx", "408", "429"]
    success_statuses: StatusRuleList = []
    excluded_statuses: StatusRuleList = []
    success_errors: ErrorKindList = []
    excluded_errors: ErrorKindList = []
    max_breakers: int = Field(1000, ge=1)
    persist_state: bool = False

    @model_validator(mode="after")
    def _consistent(self) -> BreakerSettings:
        from faultguard_core.classification import Classifier

        if not self.trip_policies:
            raise ValueError(
                "breaker.trip_policies is empty, so the breaker could never open;"
                " name at least one of consecutive, failure_rate, slow_call_rate"
            )
        rate_rules = {"failure_rate", "slow_call_rate"} & set(self.trip_policies)
        count_window = self.window_type == "count"
        if rate_rules and count_window and self.min_calls > self.window_size:
            raise ValueError(
                f"breaker.min_calls ({self.min_calls}) is above"
                f" breaker.window_size ({self.window_size}), so a count window"
                " never holds enough calls to open; lower min_calls"
            )
        if self.window_duration <= 0:
            raise ValueError("breaker.window_duration must be above 0s")
        if self.max_open_duration < self.open_duration:
            raise ValueError(
                f"breaker.max_open_duration ({self.max_open_duration}s) is below"
                f" breaker.open_duration ({self.open_duration}s); raise"
                " max_open_duration"
            )
        # Builds the status table once, so an invalid or ambiguous rule fails
        # at load time with the rule in the message.
        Classifier.from_settings(self)
        return self

    @property
    def success_threshold(self) -> int:
        """Half-open successes that close the breaker."""
        if self.half_open_success_threshold is None:
            return self.half_open_max_calls
        return self.half_open_success_threshold


class RetrySettings(_Section):
    """Retries of failed attempts."""

    max_retries: int = Field(3, ge=0, le=100)
    backoff: str = "exponential"
    base_delay: Duration = 0.1
    max_delay: Duration = 10.0
    multiplier: float = Field(2.0, ge=1.0)
    jitter: Literal["none", "full", "equal", "decorrelated"] = "full"
    on_status: StatusList = [429, 502, 503, 504]
    on_errors: ErrorKindList = ["connect", "timeout"]
    retry_non_idempotent: bool = False
    max_retry_after: Duration = 30.0
    budget_ratio: float = Field(0.2, ge=0.0, le=10.0)
    budget_min_per_second: float = Field(1.0, ge=0.0)
    budget_window: Duration = 10.0

    @model_validator(mode="after")
    def _cap_not_below_base(self) -> RetrySettings:
        if self.max_delay < self.base_delay:
            raise ValueError(
                f"retry.max_delay ({self.max_delay}s) is below retry.base_delay"
                f" ({self.base_delay}s); raise max_delay or lower base_delay"
            )
        if self.budget_window <= 0:
            raise ValueError(
                "retry.budget_window must be above 0s, because the retry budget"
                " counts calls and retries over that window"
            )
        return self


class RequestSettings(_Section):
    """Timeouts and limits of upstream requests."""

    timeout: Duration = 2.0
    deadline: Duration = 10.0
    max_response_bytes: int = Field(10_485_760, gt=0)
    follow_redirects: bool = False
    min_attempt_time: Duration = 0.05
    max_concurrency: int = Field(256, ge=1)
    queue_timeout: Duration = 0.0

    @model_validator(mode="after")
    def _min_attempt_fits(self) -> RequestSettings:
        limit = min(self.timeout, self.deadline)
        if self.min_attempt_time > limit:
            raise ValueError(
                f"request.min_attempt_time ({self.min_attempt_time}s) is above"
                f" request.timeout or request.deadline ({limit}s), so no attempt"
                " could ever start; lower min_attempt_time"
            )
        return self


class TransportSettings(_Section):
    """The HTTP client that sends upstream requests."""

    name: str = "httpx"
    max_connections: int = Field(100, ge=1)
    max_keepalive_connections: int = Field(20, ge=0)
    keepalive_expiry: Duration = 5.0


class SecuritySettings(_Section):
    """Protection of the API and of the targets it may call."""

    admin_token: str | None = Field(None, min_length=1)
    blocked_networks: NameList = ["169.254.0.0/16", "fe80::/10", "fd00:ec2::254/128"]

    @field_validator("blocked_networks")
    @classmethod
    def _valid_networks(cls, value: list[str]) -> list[str]:
        from faultguard_core.security import parse_networks

        parse_networks(value)
        return value


class PluginSettings(_Section):
    """Plugin loading."""

    autoload: bool = True
    block: NameList = []


class ServiceSettings(_Section):
    """A named upstream service: its own URL policy and overrides of the globals.

    The `breaker`, `retry` and `request` tables hold only the keys that differ
    from the global sections; `Settings` merges and validates them at load time.
    """

    url: str | None = None
    allowed_hosts: NameList = []
    breaker: dict[str, Any] = {}
    retry: dict[str, Any] = {}
    request: dict[str, Any] = {}

    @field_validator("url")
    @classmethod
    def _absolute_url(cls, value: str | None) -> str | None:
        if value is not None:
            from faultguard_core.security import InvalidTargetError, parse_target

            try:
                parse_target(value)
            except InvalidTargetError as exc:
                raise ValueError(str(exc)) from None
        return value

    @field_validator("request")
    @classmethod
    def _no_transport_keys(cls, value: dict[str, Any]) -> dict[str, Any]:
        shared = sorted({"max_response_bytes", "follow_redirects"} & set(value))
        if shared:
            raise ValueError(
                f"request.{shared[0]} applies to the shared HTTP client, so set it"
                " in the global [request] table, not per service"
            )
        return value

    @field_validator("breaker")
    @classmethod
    def _no_registry_keys(cls, value: dict[str, Any]) -> dict[str, Any]:
        if "max_breakers" in value:
            raise ValueError(
                "breaker.max_breakers bounds the whole breaker registry, so set it"
                " in the global [breaker] table, not per service"
            )
        return value


class ServicePolicy(BaseModel):
    """The effective settings of one service after merging its overrides."""

    model_config = ConfigDict(frozen=True)

    breaker: BreakerSettings
    retry: RetrySettings
    request: RequestSettings


class Settings(BaseSettings):
    """Every faultguard setting. Build one with `load_settings`."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter="__",
        case_sensitive=False,
        extra="forbid",
        validate_default=True,
    )

    server: ServerSettings = ServerSettings()
    metrics: MetricsSettings = MetricsSettings()
    storage: StorageSettings = StorageSettings()
    fallback: FallbackSettings = FallbackSettings()
    breaker: BreakerSettings = BreakerSettings()
    retry: RetrySettings = RetrySettings()
    request: RequestSettings = RequestSettings()
    transport: TransportSettings = TransportSettings()
    security: SecuritySettings = SecuritySettings()
    plugins: PluginSettings = PluginSettings()
    services: dict[str, ServiceSettings] = {}

    _policies: dict[str, ServicePolicy] = PrivateAttr(default_factory=dict)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        if settings_cls.model_config.get("toml_file"):
            sources.append(TomlConfigSettingsSource(settings_cls))
        return tuple(sources)

    @model_validator(mode="after")
    def _merge_service_overrides(self) -> Settings:
        policies = {}
        for name, service in self.services.items():
            sections: dict[str, BaseModel] = {}
            for section in ("breaker", "retry", "request"):
                base = getattr(self, section)
                overrides = getattr(service, section)
                try:
                    merged = type(base).model_validate(
                        {**base.model_dump(), **overrides}
                    )
                except ValidationError as exc:
                    raise ValueError(
                        f"services.{name}.{section}: {_describe(exc)}"
                    ) from None
                sections[section] = merged
                # Keep the overrides typed, so `config show` prints 2, not "2".
                setattr(
                    service, section, {key: getattr(merged, key) for key in overrides}
                )
            policies[name] = ServicePolicy.model_validate(sections)
        self._policies = policies
        return self

    def default_policy(self) -> ServicePolicy:
        """Return the policy of calls that name no configured service."""
        return ServicePolicy(
            breaker=self.breaker, retry=self.retry, request=self.request
        )

    def policy_for(self, service: str) -> ServicePolicy:
        """Return the merged policy of a configured service; KeyError if unknown."""
        return self._policies[service]


_SECRET_NAMES = frozenset({"admin_token", "password"})
"""Setting names whose values never appear in error messages."""


def _describe(exc: ValidationError) -> str:
    parts = []
    for error in exc.errors():
        message = error["msg"].removeprefix("Value error, ")
        where = ".".join(str(part) for part in error["loc"])
        value = error.get("input")
        if _SECRET_NAMES & {str(part) for part in error["loc"]}:
            value = "***"
        if where:
            parts.append(f"{where}={value!r}: {message}")
        else:
            parts.append(message)
    return "; ".join(parts)


def _reject_unknown_env_sections() -> None:
    """Raise ConfigError for a `FAULTGUARD_*` variable that names no section.

    pydantic-settings ignores such variables, so a typo like
    `FAULTGUARD_BRAKER__MAX_FAILURES` would silently change nothing.
    """
    sections = set(Settings.model_fields)
    for name in os.environ:
        if not name.upper().startswith(ENV_PREFIX) or name.upper() == CONFIG_ENV_VAR:
            continue
        section = name[len(ENV_PREFIX) :].split("__", 1)[0].lower()
        if section not in sections:
            known = ", ".join(sorted(sections))
            raise ConfigError(
                f"environment variable {name} names no setting: {section!r} is not"
                f" a settings section (sections: {known})"
            )


def load_settings(
    config_file: str | Path | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Settings:
    """Build `Settings` from defaults, a TOML file, the environment and overrides.

    `config_file` wins over `FAULTGUARD_CONFIG`. `overrides` are nested dicts
    (`{"server": {"port": 9000}}`) with the highest precedence. Raises
    `ConfigError` naming the setting and the value when anything is invalid.
    """
    path = config_file if config_file is not None else os.environ.get(CONFIG_ENV_VAR)
    model_config = dict(Settings.model_config)
    if path:
        path = Path(path)
        if path.is_dir():
            raise ConfigError(
                f"config file {str(path)!r} is a directory: name a TOML file"
            )
        if not path.is_file():
            raise ConfigError(
                f"config file {str(path)!r} not found: create it, or unset"
                f" {CONFIG_ENV_VAR} and --config to run on defaults"
            )
        try:
            with path.open("rb") as handle:
                tomllib.load(handle)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(
                f"config file {str(path)!r} is not valid TOML: {exc}"
            ) from exc
        except UnicodeDecodeError as exc:
            raise ConfigError(
                f"config file {str(path)!r} is not valid TOML: TOML files are"
                f" UTF-8, but byte {exc.start} is not ({exc.reason})"
            ) from exc
        except OSError as exc:
            raise ConfigError(
                f"config file {str(path)!r} cannot be read: {exc.strerror}"
            ) from exc
        model_config["toml_file"] = path
    _reject_unknown_env_sections()
    sourced: type[Settings] = type(
        "Settings", (Settings,), {"model_config": model_config}
    )
    try:
        return sourced(**(overrides or {}))
    except ValidationError as exc:
        raise ConfigError(f"invalid configuration: {_describe(exc)}") from None
