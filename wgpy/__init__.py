"""wgpy: a userspace WireGuard for Linux.

The public API is re-exported here; every other module is an implementation
detail unless its docstring says otherwise.
"""

from __future__ import annotations

__version__ = "0.1.0"

from .errors import ConfigError, HandshakeError, MessageError, NativeError, StateError, UapiError, WgpyError
from .keys import PresharedKey, PrivateKey, PublicKey

__all__ = [
    "__version__",
    "WgpyError", "ConfigError", "UapiError", "MessageError", "HandshakeError", "StateError", "NativeError",
    "PrivateKey", "PublicKey", "PresharedKey",
]
