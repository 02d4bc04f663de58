"""Header rules shared by the guard and the server."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    }
)
"""Headers that belong to one connection and are never forwarded (RFC 9110 7.6.1)."""

# `Expect: 100-continue` belongs to faultguard's own connection handling.
_NOT_FORWARDED = HOP_BY_HOP | {"host", "content-length", "expect"}

_NOT_STORED = HOP_BY_HOP | {
    "content-length",
    "content-encoding",
    "set-cookie",
    "set-cookie2",
    "www-authenticate",
    "authorization",
    "proxy-authorization",
}
"""Headers never kept in a fallback entry: connection framing, encodings that
no longer apply to the decoded body, and anything that carries credentials."""

CREDENTIAL_HEADERS = ("authorization", "cookie", "x-api-key")

IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE", "TRACE"})


def forwardable(headers: Iterable[tuple[str, str]]) -> tuple[tuple[str, str], ...]:
    """Drop hop-by-hop headers, `Host`, `Content-Length` and `Expect`.

    Headers that the `Connection` header names are hop-by-hop too
    (RFC 9110 7.6.1), so they are dropped as well.
    """
    pairs = list(headers)
    nominated = {
        token.strip().lower()
        for name, value in pairs
        if name.lower() == "connection"
        for token in value.split(",")
    }
    dropped = _NOT_FORWARDED | nominated
    return tuple((name, value) for name, value in pairs if name.lower() not in dropped)


def storable(headers: Iterable[tuple[str, str]]) -> tuple[tuple[str, str], ...]:
    """Keep only the response headers that are safe to replay from fallback."""
    return tuple(
        (name, value) for name, value in headers if name.lower() not in _NOT_STORED
    )


def has_header(headers: Iterable[tuple[str, str]], name: str) -> bool:
    wanted = name.lower()
    return any(key.lower() == wanted for key, _ in headers)


def credentials_hash(headers: Iterable[tuple[str, str]], caller: str = "") -> str:
    """Hash the credential headers and the caller's identity.

    Returns "" for an anonymous request, so anonymous entries share one
    namespace; any credential gives a different, non-reversible id.
    """
    material = [
        f"{name.lower()}={value}"
        for name, value in headers
        if name.lower() in CREDENTIAL_HEADERS
    ]
    if caller:
        material.append(f"caller={caller}")
    if not material:
        return ""
    return hashlib.sha256("\n".join(sorted(material)).encode()).hexdigest()
