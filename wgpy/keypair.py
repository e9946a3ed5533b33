"""Transport keypairs and the previous/current/next rotation (wireguard.md §3).

Contract: a ``Keypair`` holds one session's two AEAD contexts, the send
counter and the receive replay window.  ``Keypairs`` implements the rotation
of ``BeginSymmetricSession`` and the key-confirmation rule: a keypair we
derived as responder waits in ``next`` and is promoted only when the first
authenticated packet arrives on it; we send on ``current`` only.  Expiry is a
pure function of ``now``.  No I/O, no clock: ``created`` is the ``now`` passed
in.
"""

from __future__ import annotations

from .constants import REJECT_AFTER_MESSAGES, REJECT_AFTER_TIME
from .crypto import Aead, InvalidTag
from .errors import DropReason
from .messages import encode_transport_header, transport_header
from .replay import ReplayWindow



def padded_length(length: int, mtu: int) -> int:
    """Plaintext length after zero padding to 16, capped at the MTU (wireguard-go)."""
    last = length
    if mtu == 0:
        return (last + 15) & ~15
    if last > mtu:
        last %= mtu
    padded = (last + 15) & ~15
    if padded > mtu:
        padded = mtu
    return length + (padded - last)


class Keypair:
    """One session: keys, send counter, replay window, age."""

    __slots__ = (
        "sender", "receiver", "send_key", "receive_key", "local_index", "remote_index",
        "is_initiator", "created", "send_counter", "replay", "peer",
    )

    def __init__(
        self,
        send_key: bytes,
        receive_key: bytes,
        local_index: int,
        remote_index: int,
        is_initiator: bool,
        created: float,
        peer: object = None,
    ) -> None:
        self.send_key = send_key
        self.receive_key = receive_key
        self.sender = Aead(send_key)
        self.receiver = Aead(receive_key)
        self.local_index = local_index
        self.remote_index = remote_index
        self.is_initiator = is_initiator
        self.created = created
        self.send_counter = 0
        self.replay = ReplayWindow()
        self.peer = peer

    def can_send(self, now: float) -> bool:
        """True while this keypair may still seal packets."""
        return self.send_counter < REJECT_AFTER_MESSAGES and now - self.created < REJECT_AFTER_TIME

    def seal(self, packet: bytes, mtu: int) -> bytes:
        """One whole transport message carrying ``packet`` (consumes a counter).

        The caller has checked ``can_send``.
        """
        counter = self.send_counter
        self.send_counter = counter + 1
        pad = padded_length(len(packet), mtu) - len(packet)
        if pad:
            packet = packet + bytes(pad)
        return encode_transport_header(self.remote_index, counter) + self.sender.seal(counter, packet)

    def open(self, message: bytes) -> bytes | DropReason:
        """Authenticate and decrypt a whole transport message, then apply the
        replay window (only after authentication).  Returns the padded
        plaintext or the reason for dropping it."""
        counter = transport_header(message)[1]
        try:
            plaintext = self.receiver.open(counter, message[16:])
        except InvalidTag:
            return DropReason.DECRYPTION_FAILED
        if not self.replay.check(counter):
            return DropReason.REPLAYED_COUNTER
        return plaintext

    def can_receive(self, now: float) -> bool:
        return now - self.created < REJECT_AFTER_TIME

    def expire_sending(self) -> None:
        """Force a rehandshake before the next send (private key changed)."""
        self.send_counter = REJECT_AFTER_MESSAGES

    def zero(self) -> None:
        self.send_key = self.receive_key = b""
        self.send_counter = REJECT_AFTER_MESSAGES

    def __repr__(self) -> str:
        return (
            f"Keypair(local={self.local_index:#010x}, remote={self.remote_index:#010x}, "
            f"initiator={self.is_initiator}, counter={self.send_counter})"
        )


class Keypairs:
    """previous / current / next keypairs of one peer."""

    __slots__ = ("previous", "current", "next")

    def __init__(self) -> None:
        self.previous: Keypair | None = None
        self.current: Keypair | None = None
        self.next: Keypair | None = None

    def install(self, kp: Keypair) -> list[Keypair]:
        """Add a freshly derived keypair; return the keypairs it displaces."""
        dropped: list[Keypair] = []
        if kp.is_initiator:
            if self.previous is not None:
                dropped.append(self.previous)
            if self.next is not None:
                self.previous = self.next
                self.next = None
                if self.current is not None:
                    dropped.append(self.current)
            else:
                self.previous = self.current
            self.current = kp
        else:
            if self.next is not None:
                dropped.append(self.next)
            if self.previous is not None:
                dropped.append(self.previous)
            self.next = kp
            self.previous = None
        return dropped

    def received_with(self, kp: Keypair) -> tuple[bool, list[Keypair]]:
        """Note an authenticated packet on ``kp``.

        Returns (confirmed, dropped): ``confirmed`` is True when ``kp`` was
        ``next`` and has now become ``current`` (the handshake completed on
        the responder side).
        """
        if kp is not self.next:
            return False, []
        dropped = [self.previous] if self.previous is not None else []
        self.previous = self.current
        self.current = kp
        self.next = None
        return True, dropped

    def all(self) -> list[Keypair]:
        return [kp for kp in (self.previous, self.current, self.next) if kp is not None]

    def clear(self) -> list[Keypair]:
        dropped = self.all()
        for kp in dropped:
            kp.zero()
        self.previous = self.current = self.next = None
        return dropped
