"""Outbound URLs (send-time content): one parse that both the allowlist check and the
connection use, so that what is checked is what is reached.

A URL is refused unless it is plain: http or https, no userinfo, no backslash, no control
or non-ASCII character, and a host in canonical form (a lower-case DNS name, a dotted-quad
IPv4 address, or a bracketed IPv6 address written as Python writes it). The name is
resolved here and the connection goes to the address found (pinned); an address on the
loopback, private, link-local, multicast or reserved ranges is refused unless that exact
`host:port` is in the allowlist.
"""
from __future__ import annotations

import ipaddress
import re
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

import urllib3.util

_DNS_NAME = re.compile(r"^(?=.{1,253}$)[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?"
                       r"(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$")
_NUMERIC_LABEL = re.compile(r"^(0x[0-9a-f]*|[0-9]+)$")
_DEFAULT_PORTS = {"http": 80, "https": 443}


class UnsafeURL(ValueError):
    """Why a URL may not be fetched."""


@dataclass(frozen=True)
class Target:
    """A checked URL: where to connect and what to ask for."""

    scheme: str
    host: str
    port: int
    target: str  # path and query, as sent on the request line

    @property
    def host_header(self) -> str:
        """The Host header (the port only when it is not the scheme's default)."""
        name = f"[{self.host}]" if ":" in self.host else self.host
        return name if self.port == _DEFAULT_PORTS[self.scheme] else f"{name}:{self.port}"


def _canonical_host(host: str) -> str:
    if host.startswith("[") and host.endswith("]"):
        try:
            address = ipaddress.IPv6Address(host[1:-1])
        except ValueError:
            raise UnsafeURL(f"{host} is not an IPv6 address") from None
        if str(address) != host[1:-1]:
            raise UnsafeURL(f"write the IPv6 address as [{address}]")
        return str(address)
    labels = host.split(".")
    # A numeric last label (no top-level domain is numeric) or hex labels: resolvers read
    # these as IPv4 in shorthand (127.1, 2130706433, 0x7f.0.0.1): only dotted quads pass.
    if (labels[-1].isascii() and labels[-1].isdigit()) or all(
            _NUMERIC_LABEL.match(x) for x in labels):
        try:
            quad = ipaddress.IPv4Address(host)
        except ValueError:
            raise UnsafeURL(f"{host} is not a dotted-quad IPv4 address") from None
        if str(quad) != host:
            raise UnsafeURL(f"write the address as {quad}")
        return host
    if not _DNS_NAME.match(host):
        raise UnsafeURL(f"{host!r} is not a host name")
    return host


def parse(url: str) -> Target:
    """The URL as a Target, or UnsafeURL saying what is wrong with it."""
    if not url.isascii() or any(c in url for c in "\\ \t\r\n") or not url.isprintable():
        raise UnsafeURL("the URL has a backslash, a space, a control or a non-ASCII character")
    parts = urlsplit(url)
    if parts.scheme not in _DEFAULT_PORTS:
        raise UnsafeURL("only http and https URLs may be fetched")
    netloc = parts.netloc
    if not netloc or "@" in netloc:
        raise UnsafeURL("the URL must name a host, without user:password@")
    host_part, _, port_text = netloc.rpartition(":") if not netloc.endswith("]") else (
        netloc, "", "")
    if not host_part:  # no colon: the whole netloc is the host
        host_part, port_text = netloc, ""
    if port_text and not (port_text.isascii() and port_text.isdigit()):
        raise UnsafeURL("the port must be a number")
    port = int(port_text) if port_text else _DEFAULT_PORTS[parts.scheme]
    if not 0 < port < 65536:
        raise UnsafeURL("the port must be between 1 and 65535")
    if host_part != host_part.lower():
        raise UnsafeURL("write the host in lower case")
    host = _canonical_host(host_part)
    # What urllib3 would make of the same text must agree (it is not what connects, but a
    # second reading that disagrees means the URL is ambiguous).
    other = urllib3.util.parse_url(url)
    if (other.host or "").strip("[]") != host or (other.port or port) != port:
        raise UnsafeURL("the URL reads differently to different parsers")
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return Target(parts.scheme, host, port, target)


def listed(target: Target, allowed: tuple[str, ...]) -> bool:
    """Whether the allowlist names the host (any port) or exactly host:port."""
    return target.host in allowed or f"{target.host}:{target.port}" in allowed


def _internal(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    mapped = getattr(address, "ipv4_mapped", None)
    if mapped is not None:
        address = mapped
    return (address.is_loopback or address.is_private or address.is_link_local
            or address.is_multicast or address.is_reserved or address.is_unspecified)


def resolve(target: Target, allowed: tuple[str, ...]) -> str:
    """The address to connect to (the first one the name resolves to); UnsafeURL when the
    host is not allowed or resolves to an internal address that is not listed exactly."""
    if not listed(target, allowed):
        raise UnsafeURL(f"host {target.host} is not allowed")
    try:
        infos = socket.getaddrinfo(target.host, target.port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise UnsafeURL(f"{target.host} does not resolve ({exc})") from None
    exact = f"{target.host}:{target.port}" in allowed
    addresses = [ipaddress.ip_address(str(info[4][0]).split("%", 1)[0]) for info in infos]
    for address in addresses:
        if _internal(address) and not exact:
            raise UnsafeURL(f"{target.host} resolves to {address}, an internal address; "
                            f"list {target.host}:{target.port} exactly to allow it")
    return str(addresses[0])
