"""Run `faultguard serve` as several uvicorn worker processes.

The parent process checks the configuration, the storage and both ports,
serves the Prometheus metrics that the workers write to a shared directory,
and lets uvicorn's supervisor start, watch and restart the workers.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from faultguard_core.exporters.prometheus import MULTIPROCESS_ENV_VAR
from faultguard_core.logs import configure_logging
from faultguard_core.server.worker import SERVE_ARGS_ENV_VAR, encode_serve_args
from faultguard_core.settings import Settings

logger = logging.getLogger("faultguard")

WORKER_APP = "faultguard_core.server.worker:create_worker_app"
"""The import path of the app factory that each worker calls."""


def serve_workers(
    settings: Settings, config_file: Path | None, overrides: dict[str, Any]
) -> None:
    """Serve with `server.workers` processes until SIGINT or SIGTERM.

    Raises `ConfigError` or `StorageError` before any worker starts when the
    storage does not open or a port cannot be bound. The metrics directory
    is created fresh and removed on return, so counters start at 0 on every
    start. SIGHUP makes uvicorn replace every worker, and each replacement
    loads the configuration again.
    """
    import anyio
    import uvicorn

    from faultguard_core.cli import check_listeners
    from faultguard_core.guard import Guard
    from faultguard_core.storage.wiring import check_storage_opens

    configure_logging(settings.server.log_level)
    guard = Guard.from_settings(settings)
    anyio.run(check_storage_opens, guard.store, guard.shared_breakers)
    check_listeners(settings)

    metrics_dir = tempfile.mkdtemp(prefix="faultguard-metrics-")
    # Spawned workers inherit the environment. prometheus_client chooses its
    # file-backed values at import, which happens in each worker after this.
    os.environ[MULTIPROCESS_ENV_VAR] = metrics_dir
    config_name = str(config_file) if config_file is not None else None
    os.environ[SERVE_ARGS_ENV_VAR] = encode_serve_args(config_name, overrides)
    server = None
    try:
        server = _start_metrics_server(settings)
        logger.info(
            "workers_starting",
            extra={"workers": settings.server.workers, "metrics_dir": metrics_dir},
        )
        uvicorn.run(
            WORKER_APP,
            factory=True,
            workers=settings.server.workers,
            host=settings.server.host,
            port=settings.server.port,
            log_level=settings.server.log_level,
            access_log=False,
            server_header=False,
        )
    finally:
        if server is not None:
            server.shutdown()
            server.server_close()
        os.environ.pop(MULTIPROCESS_ENV_VAR, None)
        os.environ.pop(SERVE_ARGS_ENV_VAR, None)
        shutil.rmtree(metrics_dir, ignore_errors=True)


def _start_metrics_server(settings: Settings) -> Any:
    """Serve the sum of the workers' metric files, or return None when off."""
    from prometheus_client import CollectorRegistry, start_http_server
    from prometheus_client.multiprocess import MultiProcessCollector

    if settings.metrics.port == 0 or "prometheus" not in settings.metrics.exporters:
        return None
    registry = CollectorRegistry()
    MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    server, _ = start_http_server(
        settings.metrics.port, addr=settings.metrics.host, registry=registry
    )
    return server
