"""Keypair rotation (previous/current/next), key confirmation and expiry."""

from __future__ import annotations

from wgpy.constants import REJECT_AFTER_MESSAGES, REJECT_AFTER_TIME
from wgpy.errors import DropReason
from wgpy.keypair import Keypair, Keypairs, padded_length


def kp(index: int, initiator: bool, created: float = 0.0) -> Keypair:
    return Keypair(bytes([index]) * 32, bytes([index + 100]) * 32, index, 1000 + index, initiator, created)


def test_initiator_keypair_becomes_current_at_once() -> None:
    pairs = Keypairs()
    a, b = kp(1, True), kp(2, True)
    assert pairs.install(a) == []
    assert pairs.current is a and pairs.previous is None
    assert pairs.install(b) == []
    assert (pairs.previous, pairs.current, pairs.next) == (a, b, None)
    c = kp(3, True)
    assert pairs.install(c) == [a]
    assert (pairs.previous, pairs.current) == (b, c)


def test_responder_keypair_waits_in_next_until_confirmed() -> None:
    pairs = Keypairs()
    old = kp(1, True)
    pairs.install(old)
    new = kp(2, False)
    pairs.install(new)
    assert (pairs.previous, pairs.current, pairs.next) == (None, old, new)
    assert pairs.received_with(old) == (False, [])
    confirmed, dropped = pairs.received_with(new)
    assert confirmed and dropped == []
    assert (pairs.previous, pairs.current, pairs.next) == (old, new, None)


def test_initiator_install_over_pending_next() -> None:
    pairs = Keypairs()
    cur, nxt = kp(1, True), kp(2, False)
    pairs.install(cur)
    pairs.install(nxt)
    mine = kp(3, True)
    assert pairs.install(mine) == [cur]
    assert (pairs.previous, pairs.current, pairs.next) == (nxt, mine, None)


def test_expiry_by_age_and_counter() -> None:
    k = kp(1, True, created=100.0)
    assert k.can_send(100.0 + REJECT_AFTER_TIME - 0.001)
    assert not k.can_send(100.0 + REJECT_AFTER_TIME)
    assert not k.can_receive(100.0 + REJECT_AFTER_TIME)
    k.send_counter = REJECT_AFTER_MESSAGES - 1
    assert k.can_send(100.0)
    k.send_counter = REJECT_AFTER_MESSAGES
    assert not k.can_send(100.0)


def test_seal_open_pair_and_replay() -> None:
    tx = Keypair(b"\x01" * 32, b"\x02" * 32, 7, 9, True, 0.0)
    rx = Keypair(b"\x02" * 32, b"\x01" * 32, 9, 7, False, 0.0)
    msg = tx.seal(b"\x45" + bytes(19), 1420)
    assert len(msg) == 16 + 32 + 16 and msg[4:8] == (9).to_bytes(4, "little")
    assert rx.open(msg) == b"\x45" + bytes(31)  # padded to 16
    assert rx.open(msg) is DropReason.REPLAYED_COUNTER
    assert rx.open(msg[:-1] + bytes([msg[-1] ^ 1])) is DropReason.DECRYPTION_FAILED
    assert tx.send_counter == 1


def test_padding_rule() -> None:
    assert padded_length(0, 1420) == 0
    assert padded_length(1, 1420) == 16
    assert padded_length(1419, 1420) == 1420
    assert padded_length(1420, 1420) == 1420
    assert padded_length(1421, 1420) == 1421 + 15  # oversize: the remainder is padded
    assert padded_length(17, 0) == 32


def test_zero_and_clear() -> None:
    pairs = Keypairs()
    a = kp(1, True)
    pairs.install(a)
    assert pairs.clear() == [a]
    assert pairs.all() == [] and not a.can_send(0.0)
