"""The app factory of each worker process of `faultguard serve --workers N`.

uvicorn starts every worker as a fresh (spawned) process and calls
`create_worker_app` in it. The parent passes its configuration sources in
`SERVE_ARGS_ENV_VAR`, so each worker, and each replacement that uvicorn
starts on SIGHUP, loads the settings itself.
"""

from __future__ import annotations

import json
import os
from typing import Any

from litestar import Litestar

from faultguard_core.errors import ConfigError
from faultguard_core.logs import configure_logging
from faultguard_core.reload import Reloader
from faultguard_core.server.app import create_app
from faultguard_core.settings import load_settings

SERVE_ARGS_ENV_VAR = "_FAULTGUARD_SERVE_ARGS"
"""JSON `{"config_file": str | null, "overrides": {...}}` set by the parent.

The name does not start with `FAULTGUARD_`, because the settings loader
rejects such variables that name no settings section.
"""


def encode_serve_args(config_file: str | None, overrides: dict[str, Any]) -> str:
    """Return the `SERVE_ARGS_ENV_VAR` value for these configuration sources."""
    return json.dumps({"config_file": config_file, "overrides": overrides})


def create_worker_app() -> Litestar:
    """Load the settings the parent names and build the app of one worker.

    Raises `ConfigError` when the variable is missing or the configuration
    became invalid since the parent checked it. SIGHUP is left to uvicorn's
    supervisor, which replaces every worker, so the app does not handle it.
    """
    encoded = os.environ.get(SERVE_ARGS_ENV_VAR)
    if encoded is None:
        raise ConfigError(
            f"{SERVE_ARGS_ENV_VAR} is not set: start workers with"
            " `faultguard serve --workers N`"
        )
    serve_args = json.loads(encoded)
    config_file = serve_args["config_file"]
    overrides = serve_args["overrides"]

    settings = load_settings(config_file, overrides)
    configure_logging(settings.server.log_level)
    return create_app(settings, reloader=Reloader(config_file, overrides))
