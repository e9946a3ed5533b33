"""wgpy: a userspace WireGuard for Linux.

The public API is re-exported here; every other module is an implementation
detail unless its docstring says otherwise.  ``Interface``, ``PacketInterface``
and ``PeerStats`` (the asyncio shell) are imported lazily so that
``import wgpy`` for the sans-IO engine does not pull in asyncio.
"""

from __future__ import annotations

from ._version import __version__

from .config import DeviceUpdate, PeerUpdate
from .device import Device, SendDatagram, WriteTun
from .errors import (
    ConfigError, DropReason, HandshakeError, MessageError, NativeError, StateError, UapiError, WgpyError,
)
from .keys import PresharedKey, PrivateKey, PublicKey

__all__ = [
    "__version__",
    "WgpyError", "ConfigError", "UapiError", "MessageError", "HandshakeError", "StateError", "NativeError",
    "DropReason", "PrivateKey", "PublicKey", "PresharedKey", "DeviceUpdate", "PeerUpdate",
    "Device", "SendDatagram", "WriteTun", "Interface", "PacketInterface", "PeerStats",
]


def __getattr__(name: str) -> object:
    if name in ("Interface", "PacketInterface", "PeerStats"):
        from . import interface

        return getattr(interface, name)
    raise AttributeError(f"module 'wgpy' has no attribute {name!r}")
