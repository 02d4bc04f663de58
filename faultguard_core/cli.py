"""The `faultguard` command: serve, list plugins, show the configuration."""

from __future__ import annotations

import argparse
import json
import os
import re
import socket
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from faultguard_core.errors import ConfigError, FaultguardError
from faultguard_core.logs import configure_logging
from faultguard_core.settings import Settings, load_settings

_SECRET_KEYS = frozenset({"admin_token", "password"})
_URL_PASSWORD = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*://[^:/@\s]*:)[^@/\s]+@")


def _add_config_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config",
        metavar="FILE",
        help="TOML configuration file (default: $FAULTGUARD_CONFIG, else none)",
    )


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="faultguard",
        description="Fault-tolerance layer for calls to unreliable HTTP services.",
    )
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run the REST server")
    _add_config_option(serve)
    serve.add_argument("--host", help="REST listener address (server.host)")
    serve.add_argument("--port", type=int, help="REST listener port (server.port)")
    serve.add_argument(
        "--metrics-port",
        type=int,
        help="Prometheus listener port, 0 to disable (metrics.port)",
    )
    serve.add_argument(
        "--storage-backend", help="fallback store backend (storage.backend)"
    )
    serve.add_argument("--storage-path", help="SQLite file (storage.path)")
    serve.add_argument(
        "--workers",
        type=int,
        help="number of server processes sharing the port, 1 to 64 (server.workers)",
    )
    serve.add_argument(
        "--log-level",
        choices=["debug", "info", "warning", "error"],
        help="log level (server.log_level)",
    )

    plugins = commands.add_parser("plugins", help="list loaded plugins")
    _add_config_option(plugins)

    config = commands.add_parser("config", help="configuration commands")
    config_commands = config.add_subparsers(dest="config_command", required=True)
    show = config_commands.add_parser("show", help="print the effective configuration")
    _add_config_option(show)
    show.add_argument(
        "--format", choices=["toml", "json"], default="toml", help="output format"
    )
    return parser


def _serve_overrides(args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    """Map command-line options to nested settings, skipping those not given."""
    mapping = {
        "host": ("server", "host"),
        "port": ("server", "port"),
        "metrics_port": ("metrics", "port"),
        "storage_backend": ("storage", "backend"),
        "storage_path": ("storage", "path"),
        "log_level": ("server", "log_level"),
        "workers": ("server", "workers"),
    }
    overrides: dict[str, dict[str, Any]] = {}
    for option, (section, key) in mapping.items():
        value = getattr(args, option)
        if value is not None:
            overrides.setdefault(section, {})[key] = value
    return overrides


def _serve(
    settings: Settings, config_file: Path | None, overrides: dict[str, Any]
) -> None:
    import anyio
    import uvicorn

    from faultguard_core.reload import Reloader
    from faultguard_core.server import create_app
    from faultguard_core.storage.wiring import check_storage_opens

    if settings.server.workers > 1:
        from faultguard_core.server.supervisor import serve_workers

        serve_workers(settings, config_file, overrides)
        return

    # One process serves its own metrics; a variable left over from a
    # multiprocess setup would make the exporter skip binding the port.
    os.environ.pop("PROMETHEUS_MULTIPROC_DIR", None)
    configure_logging(settings.server.log_level)
    # A reload (SIGHUP or POST /admin/reload) reads the same file and options.
    reloader = Reloader(config_file, overrides)
    app = create_app(settings, reloader=reloader, handle_sighup=True)
    # A storage problem (corrupt file, newer schema, unwritable path) becomes
    # a one-line error and exit status 2 here, not a traceback from uvicorn.
    guard = app.state.guard
    anyio.run(check_storage_opens, guard.store, guard.shared_breakers)
    check_listeners(settings)
    uvicorn.run(
        app,
        host=settings.server.host,
        port=settings.server.port,
        log_level=settings.server.log_level,
        access_log=False,
        server_header=False,
    )


def check_listeners(settings: Settings) -> None:
    """Raise ConfigError when the REST or the metrics port cannot be bound."""
    _check_can_listen("server", settings.server.host, settings.server.port)
    if settings.metrics.port and "prometheus" in settings.metrics.exporters:
        _check_can_listen("metrics", settings.metrics.host, settings.metrics.port)


def _check_can_listen(section: str, host: str, port: int) -> None:
    """Raise ConfigError naming the setting when `host:port` cannot be bound.

    A busy port or an unknown host would otherwise surface as a traceback
    from uvicorn or the metrics thread, with exit status 3.
    """
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise ConfigError(
            f"{section}.host = {host!r}: cannot resolve it ({exc.strerror});"
            " use an IP address or a resolvable name"
        ) from exc
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as exc:
            raise ConfigError(
                f"cannot listen on {host}:{port} ({section}.host, {section}.port):"
                f" {exc.strerror}; stop the other process or choose another port"
            ) from exc


def _print_plugins(settings: Settings) -> None:
    from faultguard_core.plugin_host import build_plugin_host

    host = build_plugin_host(settings)
    print(f"{'plugin':36} {'distribution':22} version")
    for info in host.plugins:
        print(f"{info.name:36} {info.distribution:22} {info.version}")
    print()
    registries = {
        "backoff strategies": host.backoff_strategies,
        "storage backends": host.storage_backends,
        "metric exporters": host.metric_exporters,
        "transports": host.transports,
    }
    for title, registry in registries.items():
        entries = ", ".join(
            f"{name} ({plugin})" for name, plugin in registry.names().items()
        )
        print(f"{title}: {entries or 'none'}")


def _public_dump(settings: Settings) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(settings.model_dump_json())

    def mask(node: Any) -> Any:
        if isinstance(node, dict):
            return {
                key: ("***" if key in _SECRET_KEYS and value else mask(value))
                for key, value in node.items()
            }
        if isinstance(node, str):
            # A password in a URL's user info (redis://:secret@host/0).
            return _URL_PASSWORD.sub(r"\1***@", node)
        return node

    result: dict[str, Any] = mask(data)
    return result


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(item) for item in value) + "]"
    return json.dumps(str(value))


def to_toml(data: dict[str, Any], prefix: str = "") -> str:
    """Render nested dicts of scalars and lists as TOML tables."""
    scalars = []
    tables = []
    for key, value in data.items():
        if isinstance(value, dict):
            name = f"{prefix}.{key}" if prefix else key
            tables.append(f"[{name}]\n" + to_toml(value, name))
        elif value is not None:
            scalars.append(f"{key} = {_toml_value(value)}")
    parts = ["\n".join(scalars)] if scalars else []
    parts.extend(tables)
    return "\n\n".join(part.rstrip("\n") for part in parts if part) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    args = _parser().parse_args(argv)
    overrides = _serve_overrides(args) if args.command == "serve" else {}
    config_file = Path(args.config) if args.config else None
    try:
        settings = load_settings(config_file, overrides)
        if args.command == "serve":
            _serve(settings, config_file, overrides)
        elif args.command == "plugins":
            _print_plugins(settings)
        elif args.format == "json":
            print(json.dumps(_public_dump(settings), indent=2))
        else:
            print(to_toml(_public_dump(settings)), end="")
    except FaultguardError as exc:
        print(f"faultguard: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
