"""Target checks: which URLs faultguard may call.

Only absolute `http` and `https` URLs are accepted. Hosts in a blocked network
(link-local 169.254.0.0/16 and the cloud metadata address fd00:ec2::254 by
default) are rejected, whether the URL names the address directly, in an
unusual numeric form, or through a hostname that resolves to it.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

import anyio
import httpx

from faultguard_core.errors import FaultguardError, TargetForbiddenError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
Resolver = Callable[[str, int], Awaitable[list[str]]]
"""Returns the addresses a host name resolves to."""


class InvalidTargetError(FaultguardError):
    """The URL is not an absolute http or https URL with a host."""


@dataclass(frozen=True, slots=True)
class Target:
    """A parsed, accepted upstream URL."""

    scheme: str
    host: str
    port: int


async def system_resolver(host: str, port: int) -> list[str]:
    """Resolve with the operating system's resolver, off the event loop."""
    infos = await anyio.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


def parse_networks(values: Iterable[str]) -> tuple[IPNetwork, ...]:
    """Parse CIDR strings; raises ValueError naming the invalid one."""
    networks = []
    for value in values:
        try:
            networks.append(ipaddress.ip_network(value, strict=False))
        except ValueError as exc:
            raise ValueError(f"invalid network {value!r}: {exc}") from None
    return tuple(networks)


def parse_target(url: str) -> Target:
    """Return the scheme, host and port of `url`, or raise InvalidTargetError.

    Messages never repeat the URL, which may carry credentials or tokens.
    """
    try:
        parts = urlsplit(url)
    except ValueError as exc:
        raise InvalidTargetError(f"invalid url: {exc}") from None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        shown = f"{scheme!r}" if scheme else "none"
        raise InvalidTargetError(
            f"invalid url scheme {shown}: only absolute http and https URLs are allowed"
        )
    if not parts.hostname:
        raise InvalidTargetError("invalid url: the URL has no host")
    if parts.username is not None or parts.password is not None:
        raise InvalidTargetError(
            "invalid url: credentials in the URL are not allowed; send them"
            f" in an Authorization header (host {parts.hostname!r})"
        )
    try:
        port = parts.port
    except ValueError as exc:
        raise InvalidTargetError(
            f"invalid url port for host {parts.hostname!r}: {exc}"
        ) from None
    if port == 0:
        raise InvalidTargetError(
            f"invalid url port 0 for host {parts.hostname!r}: use 1-65535"
        )
    # The transport parses the URL again with httpx, which rejects more:
    # control characters, invalid IDNA labels and octal IPv4. Rejecting those
    # here makes them invalid input instead of an upstream failure.
    try:
        parsed = httpx.URL(url)
        # `host` decodes IDNA labels, which the constructor leaves for later.
        parsed.host  # noqa: B018
    except (httpx.InvalidURL, UnicodeError, ValueError) as exc:
        raise InvalidTargetError(
            f"invalid url for host {parts.hostname!r}: {_without_url(exc, url)}"
        ) from None
    ascii_host = parsed.raw_host.decode("ascii", errors="replace")
    if _as_address(parts.hostname) is None and not _valid_host_name(ascii_host):
        raise InvalidTargetError(
            f"invalid host name {parts.hostname!r}: use letters, digits, '-' and"
            " '_' in dot-separated labels of 1-63 characters"
        )
    default_port = 443 if scheme == "https" else 80
    return Target(scheme, parts.hostname, port or default_port)


_LABEL = re.compile(r"^[A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?$")


def _valid_host_name(host: str) -> bool:
    """Return True for a DNS name of valid labels (RFC 1123, plus `_`).

    Underscores are accepted because internal names (container and service
    discovery names) use them, although RFC 1123 host names do not.
    """
    name = host[:-1] if host.endswith(".") else host
    if not name or len(name) > 253:
        return False
    return all(_LABEL.match(label) for label in name.split("."))


def _without_url(exc: Exception, url: str) -> str:
    """Return the error message with the URL, which may carry secrets, removed."""
    return str(exc).replace(url, "<url>")


def _as_address(text: str) -> IPAddress | None:
    try:
        address = ipaddress.ip_address(text.split("%", 1)[0])
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        return address.ipv4_mapped
    return address


def _blocked(address: IPAddress, networks: tuple[IPNetwork, ...]) -> bool:
    return any(address in network for network in networks)


async def check_target(
    url: str,
    networks: tuple[IPNetwork, ...],
    resolver: Resolver = system_resolver,
) -> Target:
    """Raise InvalidTargetError or TargetForbiddenError unless `url` may be called.

    A hostname is resolved and every address it resolves to is checked. A
    name that does not resolve passes, and the transport reports the failure.
    """
    # NOTE: the transport resolves the name again, so a DNS server that
    # answers differently the second time (DNS rebinding) is not caught here.
    target = parse_target(url)
    literal = _as_address(target.host)
    if literal is not None:
        addresses = [literal]
    else:
        try:
            resolved = await resolver(target.host, target.port)
        except OSError:
            return target
        addresses = [a for a in map(_as_address, resolved) if a is not None]
    for address in addresses:
        if _blocked(address, networks):
            raise TargetForbiddenError(
                f"target host {target.host!r} resolves to {address}, which is in a"
                " blocked network (security.blocked_networks)"
            )
    return target
