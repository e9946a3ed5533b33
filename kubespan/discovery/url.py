"""Discovery service addresses: the one parser for ``scheme://host[:port]/`` URLs and ``host:port`` targets.

Contract (kubespan.md §3.4): ``parse_url`` accepts ``http://`` (plaintext h2c, default port 80),
``https://`` and ``grpc://`` (TLS, default port 443), case-insensitive schemes, an optional userinfo
(dropped), an optional query or fragment (ignored) and IPv6 hosts in brackets; the port, when given, is
1-65535.  ``parse_host_port`` reads the bare ``host:port`` form a Hello redirect carries (IPv6 in
brackets, port required).  Both raise ``ValueError`` with a short reason and never look the host up.
Pure: the config reader (``kubespan.config``) and the discovery client (``ServiceEndpoint.parse``) both
use it, so a URL one accepts the other accepts too.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

SCHEME_PORTS = {"http": 80, "https": 443, "grpc": 443}
_PORT_RE = re.compile(r"[0-9]{1,5}\Z")

SCHEME_REASON = "scheme must be http://, https:// or grpc://"
HOST_PORT_REASON = "endpoint host is required and the port must be 1-65535"


@dataclass(frozen=True, slots=True)
class ServiceURL:
    """A parsed discovery service URL."""

    host: str
    port: int
    insecure: bool
    """True only for ``http://``."""
    path: str
    """The path without query and fragment (``""`` or ``/`` for a plain service URL)."""


def parse_url(url: str) -> ServiceURL:
    """``scheme://[user@]host[:port][/path][?query][#fragment]``."""
    scheme, sep, rest = url.partition("://")
    scheme = scheme.lower()
    if not sep or scheme not in SCHEME_PORTS:
        raise ValueError(SCHEME_REASON)
    authority, slash, tail = rest.partition("/")
    for cut in "?#":
        authority, _, _ = authority.partition(cut)
    path = (slash + tail).split("?", 1)[0].split("#", 1)[0]
    host, port = split_host_port(authority.rpartition("@")[2], SCHEME_PORTS[scheme])
    return ServiceURL(host, port, scheme == "http", path)


def parse_host_port(text: str) -> tuple[str, int]:
    """``host:port`` or ``[v6]:port`` (the port is required)."""
    return split_host_port(text, None)


def split_host_port(authority: str, default_port: int | None) -> tuple[str, int]:
    """Host and port of ``authority``; ``default_port`` when it has none (None: a port is required)."""
    if authority.startswith("["):
        end = authority.find("]")
        if end < 0:
            raise ValueError(HOST_PORT_REASON)
        host, rest = authority[1:end], authority[end + 1:]
        if rest and not rest.startswith(":"):
            raise ValueError(HOST_PORT_REASON)
        port_text = rest[1:] if rest else ""
    else:
        host, _, port_text = authority.partition(":")
        if ":" in port_text:
            raise ValueError(HOST_PORT_REASON)
    if not host or any(c.isspace() for c in host):
        raise ValueError(HOST_PORT_REASON)
    if not port_text and default_port is not None:
        return host, default_port
    if not _PORT_RE.match(port_text) or not 0 < int(port_text) <= 65535:
        raise ValueError(HOST_PORT_REASON)
    return host, int(port_text)
