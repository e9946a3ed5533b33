"""What the engine asks its caller to do: the actions ``Device`` returns.

Contract: plain immutable values, no behaviour.  ``SendDatagram`` sends one
UDP datagram to an endpoint; ``WriteTun`` writes one decrypted IP packet to
the TUN device (or the embedding caller).
"""

from __future__ import annotations

from typing import NamedTuple

from .config import Endpoint


class SendDatagram(NamedTuple):
    """Send ``data`` as one UDP datagram to ``endpoint``."""

    data: bytes
    endpoint: Endpoint


class WriteTun(NamedTuple):
    """Write one decrypted IP packet to the TUN device."""

    packet: bytes


Action = SendDatagram | WriteTun
