"""RFC 9457 problem details responses."""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Request, Response
from litestar.exceptions import HTTPException, ValidationException

PROBLEM_MEDIA_TYPE = "application/problem+json"

_TITLES = {
    400: "Invalid request",
    401: "Authentication required",
    403: "Target forbidden",
    404: "Not found",
    405: "Method not allowed",
    413: "Request body too large",
    415: "Unsupported media type",
    500: "Internal error",
    502: "Upstream failed",
    503: "Circuit open",
    504: "Deadline exceeded",
}


def problem(
    status: int,
    detail: str,
    *,
    problem_type: str = "about:blank",
    title: str | None = None,
    headers: dict[str, str] | None = None,
    **extensions: Any,
) -> Response[bytes]:
    """Build an `application/problem+json` response.

    `title` defaults to the standard title of `status`; a problem with its
    own `problem_type` passes its own title.
    """
    body = {
        "type": problem_type,
        "title": title or _TITLES.get(status, "Error"),
        "status": status,
        "detail": detail,
        **extensions,
    }
    return Response(
        content=msgspec.json.encode(body),
        status_code=status,
        media_type=PROBLEM_MEDIA_TYPE,
        headers=headers,
    )


def http_exception_handler(
    request: Request[Any, Any, Any], exc: HTTPException
) -> Response[bytes]:
    """Turn Litestar's own client errors (validation, size, routing) into problems."""
    extensions: dict[str, Any] = {}
    if isinstance(exc, ValidationException) and exc.extra:
        extensions["errors"] = exc.extra
    detail = exc.detail
    if exc.status_code == 413:
        detail = "request body is over server.max_body_bytes"
    headers = dict(exc.headers) if exc.headers else None
    return problem(exc.status_code, detail, headers=headers, **extensions)


def internal_error_handler(
    request: Request[Any, Any, Any], exc: Exception
) -> Response[bytes]:
    """Return a 500 problem that leaks no internals for an unexpected error."""
    import logging

    logging.getLogger("faultguard").exception(
        "request_failed", extra={"path": request.url.path}
    )
    return problem(500, "internal error; the server log has the details")


def nesting_error_handler(
    request: Request[Any, Any, Any], exc: RecursionError
) -> Response[bytes]:
    """Return 400, not 500, for a JSON body nested too deeply to decode."""
    return problem(400, "invalid JSON body: nested too deeply")
