"""wgpy: a userspace WireGuard for Linux.

The public API is re-exported here; every other module is an implementation
detail unless its docstring says otherwise.  The asyncio shell's names --
``Interface``, ``PacketInterface``, ``PeerStats``, the UAPI socket
(``open_uapi_socket``, ``UapiInUse``) and the owner-only unix socket helper
(``listen_private``, ``SocketInUse``), systemd readiness (``notify_ready``), the Prometheus endpoint (``MetricsServer``,
``parse_metrics_addr``) -- are imported lazily, so that
``import wgpy`` for the sans-IO engine does not pull in asyncio or sockets.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._version import __version__
from .actions import Action, SendDatagram, Unreachable, WriteTun
from .config import DeviceUpdate, PeerUpdate
from .device import Device
from .errors import (
    ConfigError, DropReason, HandshakeError, MessageError, NativeError, StateError, UapiError, WgpyError,
)
from .keys import PresharedKey, PrivateKey, PublicKey

if TYPE_CHECKING:
    from .interface import Interface, PacketInterface, PeerStats
    from .io.uapi_server import UapiInUse, open_uapi_socket
    from .io.unixsock import SocketInUse, listen_private
    from .io.sdnotify import ready as notify_ready
    from .io.metrics_http import MetricsServer
    from .io.metrics_http import parse_addr as parse_metrics_addr

__all__ = [
    "__version__",
    "WgpyError", "ConfigError", "UapiError", "MessageError", "HandshakeError", "StateError", "NativeError",
    "DropReason", "PrivateKey", "PublicKey", "PresharedKey", "DeviceUpdate", "PeerUpdate",
    "Device", "Action", "SendDatagram", "WriteTun", "Unreachable", "Interface", "PacketInterface", "PeerStats",
    "UapiInUse", "open_uapi_socket", "SocketInUse", "listen_private", "notify_ready",
    "MetricsServer", "parse_metrics_addr",
]


def __getattr__(name: str) -> object:
    if name in ("Interface", "PacketInterface", "PeerStats"):
        from . import interface

        return getattr(interface, name)
    if name in ("UapiInUse", "open_uapi_socket"):
        from .io import uapi_server

        return getattr(uapi_server, name)
    if name in ("SocketInUse", "listen_private"):
        from .io import unixsock

        return getattr(unixsock, name)
    if name in ("MetricsServer", "parse_metrics_addr"):
        from .io import metrics_http

        return metrics_http.MetricsServer if name == "MetricsServer" else metrics_http.parse_addr
    if name == "notify_ready":
        from .io import sdnotify

        return sdnotify.ready
    raise AttributeError(f"module 'wgpy' has no attribute {name!r}")
