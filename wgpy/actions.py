"""What the engine asks its caller to do: the actions ``Device`` returns.

Contract: plain immutable values, no behaviour.  ``SendDatagram`` sends one
UDP datagram to an endpoint; ``WriteTun`` writes one decrypted IP packet to
the TUN device (or the embedding caller); ``Unreachable`` is the ICMP /
ICMPv6 error for a TUN packet no peer's allowed IPs cover, ready to write
back into the TUN (wireguard.md §8) -- the caller rate-limits it and may
drop it (an embedding caller without a TUN usually does).  ``Action`` is the
one alias for all of them.
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


class Unreachable(NamedTuple):
    """Write ``packet``, an ICMP host / ICMPv6 address unreachable, to the TUN (rate limited)."""

    packet: bytes


Action = SendDatagram | WriteTun | Unreachable
