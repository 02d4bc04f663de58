"""The REST server: a Litestar app around one `Guard`."""

from faultguard_core.server.app import create_app

__all__ = ["create_app"]
