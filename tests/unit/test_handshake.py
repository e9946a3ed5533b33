"""wgpy.handshake: two Handshakes run IKpsk2 against each other (wireguard.md §3)."""

from __future__ import annotations

import os
from dataclasses import dataclass

import pytest

from wgpy.crypto import Aead, hash_
from wgpy.constants import INITIATION_MIN_INTERVAL, LABEL_COOKIE, LABEL_MAC1
from wgpy.errors import DropReason, HandshakeError, StateError
from wgpy.handshake import (
    ConsumedInitiation,
    Handshake,
    HandshakeState,
    SessionKeys,
    StaticIdentity,
    consume_initiation,
)
from wgpy.keys import PresharedKey, PrivateKey, PublicKey
from wgpy.messages import Initiation, Response
from wgpy.tai64n import timestamp

LOW_ORDER_POINTS = [bytes(32), (1).to_bytes(32, "little")]


def _ident() -> StaticIdentity:
    return StaticIdentity(PrivateKey.generate(os.urandom))


@dataclass
class Pair:
    a_id: StaticIdentity
    b_id: StaticIdentity
    a: Handshake  # a's state about b (a initiates)
    b: Handshake  # b's state about a


def _pair(psk_a: PresharedKey | None = None, psk_b: PresharedKey | None = None) -> Pair:
    a_id, b_id = _ident(), _ident()
    return Pair(a_id, b_id, Handshake(a_id, b_id.public, psk_a), Handshake(b_id, a_id.public, psk_b))


def _initiate(p: Pair, wall: float = 1_700_000_000.0, index: int = 11) -> Initiation:
    return p.a.create_initiation(index, os.urandom(32), timestamp(wall))


def _full(p: Pair, now: float = 100.0, wall: float = 1_700_000_000.0) -> tuple[SessionKeys, SessionKeys]:
    init = _initiate(p, wall)
    consumed = consume_initiation(Initiation.decode(init.encode()), p.b_id)
    assert (consumed.chaining_key, consumed.hash) == (p.a.chaining_key, p.a.hash)
    p.b.accept_initiation(consumed, now)
    assert (p.b.chaining_key, p.b.hash) == (p.a.chaining_key, p.a.hash)
    resp = p.b.create_response(22, os.urandom(32))
    p.a.consume_response(Response.decode(resp.encode()))
    assert (p.b.chaining_key, p.b.hash) == (p.a.chaining_key, p.a.hash)
    return p.a.begin_session(), p.b.begin_session()


@pytest.mark.parametrize("with_psk", [False, True])
def test_full_handshake(with_psk: bool) -> None:
    psk = PresharedKey(os.urandom(32)) if with_psk else None
    p = _pair(psk, psk)
    assert p.a.state is HandshakeState.ZEROED
    init = _initiate(p)
    assert p.a.state is HandshakeState.INITIATION_CREATED and p.a.local_index == 11
    assert init.sender == 11 and init.mac1 == init.mac2 == bytes(16)
    consumed = consume_initiation(init, p.b_id)
    assert consumed.remote_static == p.a_id.public
    assert consumed.sender == 11
    assert consumed.timestamp == timestamp(1_700_000_000.0)
    assert consumed.hash == p.a.hash and consumed.chaining_key == p.a.chaining_key
    p.b.accept_initiation(consumed, now=5.0)
    assert p.b.state is HandshakeState.INITIATION_CONSUMED
    assert p.b.remote_index == 11
    assert p.b.last_timestamp == consumed.timestamp and p.b.last_initiation_consumed == 5.0
    resp = p.b.create_response(22, os.urandom(32))
    assert p.b.state is HandshakeState.RESPONSE_CREATED
    assert (resp.sender, resp.receiver) == (22, 11) and resp.mac1 == bytes(16)
    p.a.consume_response(resp)
    assert p.a.state is HandshakeState.RESPONSE_CONSUMED and p.a.remote_index == 22
    assert (p.a.chaining_key, p.a.hash) == (p.b.chaining_key, p.b.hash)
    ka, kb = p.a.begin_session(), p.b.begin_session()
    assert ka.is_initiator and not kb.is_initiator
    assert (ka.local_index, ka.remote_index) == (11, 22)
    assert (kb.local_index, kb.remote_index) == (22, 11)
    assert ka.send_key == kb.receive_key and ka.receive_key == kb.send_key
    assert ka.send_key != ka.receive_key
    for h in (p.a, p.b):
        assert h.state is HandshakeState.ZEROED
        assert h.chaining_key == bytes(32) and h.hash == bytes(32)
        assert h.local_ephemeral is None and h.remote_ephemeral is None
    ct = Aead(ka.send_key).seal(0, b"ping")
    assert Aead(kb.receive_key).open(0, ct) == b"ping"


def test_psk_changes_keys() -> None:
    p1 = _pair()
    ka, _ = _full(p1)
    psk = PresharedKey(os.urandom(32))
    p1.a.set_preshared_key(psk)
    p1.b.set_preshared_key(psk)
    ka2, kb2 = _full(p1, now=200.0, wall=1_700_000_001.0)
    assert ka2.send_key == kb2.receive_key
    assert ka2.send_key != ka.send_key


def test_wrong_psk_fails_and_state_unchanged() -> None:
    p = _pair(PresharedKey(os.urandom(32)), PresharedKey(os.urandom(32)))
    init = _initiate(p)
    p.b.accept_initiation(consume_initiation(init, p.b_id), 1.0)
    resp = p.b.create_response(22, os.urandom(32))
    before = (p.a.state, p.a.chaining_key, p.a.hash, p.a.remote_index, p.a.local_index)
    with pytest.raises(HandshakeError) as exc:
        p.a.consume_response(resp)
    assert exc.value.reason is DropReason.DECRYPTION_FAILED
    assert (p.a.state, p.a.chaining_key, p.a.hash, p.a.remote_index, p.a.local_index) == before
    # one side without psk, the other with: also fails
    p2 = _pair(None, PresharedKey(os.urandom(32)))
    p2.b.accept_initiation(consume_initiation(_initiate(p2), p2.b_id), 1.0)
    with pytest.raises(HandshakeError):
        p2.a.consume_response(p2.b.create_response(22, os.urandom(32)))


def test_initiation_to_wrong_responder_fails() -> None:
    p = _pair()
    init = _initiate(p)
    with pytest.raises(HandshakeError) as exc:
        consume_initiation(init, _ident())
    assert exc.value.reason is DropReason.DECRYPTION_FAILED


def test_tampered_initiation_fields_fail() -> None:
    p = _pair()
    init = _initiate(p)
    raw = init.encode()
    for offset in (8, 40, 87, 88, 115):  # ephemeral, encrypted_static, encrypted_timestamp
        bad = bytearray(raw)
        bad[offset] ^= 0x40
        with pytest.raises(HandshakeError) as exc:
            consume_initiation(Initiation.decode(bytes(bad)), p.b_id)
        assert exc.value.reason in (DropReason.DECRYPTION_FAILED, DropReason.ZERO_DH)
    # macs are not this module's business
    bad = bytearray(raw)
    bad[120] ^= 1
    assert consume_initiation(Initiation.decode(bytes(bad)), p.b_id).sender == 11


def test_replayed_timestamp_rejected() -> None:
    p = _pair()
    init = _initiate(p, wall=1_700_000_000.0)
    p.b.accept_initiation(consume_initiation(init, p.b_id), 1.0)
    state = (p.b.state, p.b.hash, p.b.last_timestamp, p.b.last_initiation_consumed)
    # the very same message again, much later
    with pytest.raises(HandshakeError) as exc:
        p.b.accept_initiation(consume_initiation(init, p.b_id), 10.0)
    assert exc.value.reason is DropReason.REPLAYED_TIMESTAMP
    # an older timestamp, and one within the same 2**24 ns quantum
    for wall in (1_699_999_999.0, 1_700_000_000.001):
        with pytest.raises(HandshakeError) as exc:
            p.b.accept_initiation(consume_initiation(_initiate(p, wall), p.b_id), 20.0)
        assert exc.value.reason is DropReason.REPLAYED_TIMESTAMP
    assert (p.b.state, p.b.hash, p.b.last_timestamp, p.b.last_initiation_consumed) == state
    # a newer one is accepted
    p.b.accept_initiation(consume_initiation(_initiate(p, 1_700_000_001.0), p.b_id), 30.0)
    assert p.b.last_timestamp == timestamp(1_700_000_001.0)


def test_last_timestamp_survives_rekey_and_clear() -> None:
    p = _pair()
    _full(p, now=1.0, wall=1_700_000_000.0)
    ts = p.b.last_timestamp
    p.b.clear()
    assert p.b.last_timestamp == ts and p.b.last_initiation_consumed == 1.0
    with pytest.raises(HandshakeError):
        p.b.accept_initiation(consume_initiation(_initiate(p, 1_700_000_000.0), p.b_id), 5.0)


def test_initiation_flood_rule() -> None:
    p = _pair()
    p.b.accept_initiation(consume_initiation(_initiate(p, 1_700_000_000.0), p.b_id), 10.0)
    c2 = consume_initiation(_initiate(p, 1_700_000_001.0), p.b_id)
    with pytest.raises(HandshakeError) as exc:
        p.b.accept_initiation(c2, 10.0 + INITIATION_MIN_INTERVAL / 2)
    assert exc.value.reason is DropReason.INITIATION_FLOOD
    assert p.b.last_initiation_consumed == 10.0
    assert p.b.last_timestamp == timestamp(1_700_000_000.0)
    p.b.accept_initiation(c2, 10.0 + 2 * INITIATION_MIN_INTERVAL)
    assert p.b.last_timestamp == timestamp(1_700_000_001.0)


def test_accept_for_wrong_peer_is_misuse() -> None:
    p, q = _pair(), _pair()
    consumed = consume_initiation(_initiate(p), p.b_id)
    with pytest.raises(ValueError):
        q.b.accept_initiation(consumed, 1.0)


def test_response_with_bad_receiver_index_rejected() -> None:
    p = _pair()
    init = _initiate(p, index=11)
    p.b.accept_initiation(consume_initiation(init, p.b_id), 1.0)
    resp = p.b.create_response(22, os.urandom(32))
    bad = Response(resp.sender, 12, resp.ephemeral, resp.encrypted_nothing)
    before = (p.a.state, p.a.chaining_key, p.a.hash)
    with pytest.raises(HandshakeError) as exc:
        p.a.consume_response(bad)
    assert exc.value.reason is DropReason.UNEXPECTED_RESPONSE
    assert (p.a.state, p.a.chaining_key, p.a.hash) == before
    p.a.consume_response(resp)  # the genuine one still works afterwards
    assert p.a.state is HandshakeState.RESPONSE_CONSUMED


def test_response_in_wrong_state_rejected() -> None:
    p = _pair()
    p.b.accept_initiation(consume_initiation(_initiate(p), p.b_id), 1.0)
    resp = p.b.create_response(22, os.urandom(32))
    p.a.consume_response(resp)
    with pytest.raises(HandshakeError) as exc:  # second time: RESPONSE_CONSUMED
        p.a.consume_response(resp)
    assert exc.value.reason is DropReason.UNEXPECTED_RESPONSE
    fresh = Handshake(p.a_id, p.b_id.public)
    with pytest.raises(HandshakeError):
        fresh.consume_response(resp)
    assert fresh.state is HandshakeState.ZEROED


def test_tampered_response_fails_state_unchanged() -> None:
    p = _pair()
    p.b.accept_initiation(consume_initiation(_initiate(p), p.b_id), 1.0)
    resp = p.b.create_response(22, os.urandom(32))
    bad = Response(resp.sender, resp.receiver, resp.ephemeral,
                   bytes([resp.encrypted_nothing[0] ^ 1]) + resp.encrypted_nothing[1:])
    before = (p.a.state, p.a.chaining_key, p.a.hash)
    with pytest.raises(HandshakeError) as exc:
        p.a.consume_response(bad)
    assert exc.value.reason is DropReason.DECRYPTION_FAILED
    assert (p.a.state, p.a.chaining_key, p.a.hash) == before


def test_response_with_low_order_ephemeral_is_zero_dh() -> None:
    p = _pair()
    p.b.accept_initiation(consume_initiation(_initiate(p), p.b_id), 1.0)
    resp = p.b.create_response(22, os.urandom(32))
    bad = Response(resp.sender, resp.receiver, LOW_ORDER_POINTS[0], resp.encrypted_nothing)
    with pytest.raises(HandshakeError) as exc:
        p.a.consume_response(bad)
    assert exc.value.reason is DropReason.ZERO_DH
    assert p.a.state is HandshakeState.INITIATION_CREATED


def test_initiation_with_low_order_ephemeral_is_zero_dh() -> None:
    p = _pair()
    init = _initiate(p)
    bad = Initiation(init.sender, LOW_ORDER_POINTS[1], init.encrypted_static, init.encrypted_timestamp)
    with pytest.raises(HandshakeError) as exc:
        consume_initiation(bad, p.b_id)
    assert exc.value.reason is DropReason.ZERO_DH


@pytest.mark.parametrize("point", LOW_ORDER_POINTS)
def test_low_order_peer_key_cannot_initiate(point: bytes) -> None:
    h = Handshake(_ident(), PublicKey(point))
    assert h.precomputed_static_static is None
    with pytest.raises(HandshakeError) as exc:
        h.create_initiation(1, os.urandom(32), timestamp(1.0))
    assert exc.value.reason is DropReason.ZERO_DH
    assert h.state is HandshakeState.ZEROED


def test_no_private_key_cannot_initiate_until_set() -> None:
    b_id = _ident()
    h = Handshake(None, b_id.public)
    with pytest.raises(HandshakeError) as exc:
        h.create_initiation(1, os.urandom(32), timestamp(1.0))
    assert exc.value.reason is DropReason.ZERO_DH
    a_id = _ident()
    h.set_local(a_id)
    assert h.precomputed_static_static is not None
    init = h.create_initiation(1, os.urandom(32), timestamp(1.0))
    assert consume_initiation(init, b_id).remote_static == a_id.public


def test_set_local_clears_state_and_recomputes() -> None:
    p = _pair()
    _initiate(p)
    old = p.a.precomputed_static_static
    new_id = _ident()
    p.a.set_local(new_id)
    assert p.a.state is HandshakeState.ZEROED and p.a.local_index == 0
    assert p.a.precomputed_static_static != old
    consumed = consume_initiation(p.a.create_initiation(3, os.urandom(32), timestamp(2.0)), p.b_id)
    assert consumed.remote_static == new_id.public


def test_wrong_state_calls_are_state_errors() -> None:
    p = _pair()
    with pytest.raises(StateError):
        p.b.create_response(1, os.urandom(32))
    with pytest.raises(StateError):
        p.a.begin_session()
    _initiate(p)
    with pytest.raises(StateError):
        p.a.begin_session()
    with pytest.raises(StateError):
        p.a.create_response(1, os.urandom(32))
    p.b.accept_initiation(consume_initiation(_initiate(p, 1_700_000_005.0), p.b_id), 1.0)
    with pytest.raises(StateError):
        p.b.begin_session()


def test_new_initiation_replaces_old() -> None:
    p = _pair()
    first = _initiate(p, index=1)
    second = p.a.create_initiation(2, os.urandom(32), timestamp(1_700_000_001.0))
    p.b.accept_initiation(consume_initiation(first, p.b_id), 1.0)
    stale = p.b.create_response(9, os.urandom(32))
    with pytest.raises(HandshakeError):  # answers index 1, we now wait on 2
        p.a.consume_response(stale)
    p.b.accept_initiation(consume_initiation(second, p.b_id), 2.0)
    p.a.consume_response(p.b.create_response(10, os.urandom(32)))
    assert p.a.begin_session().send_key == p.b.begin_session().receive_key


def test_argument_validation() -> None:
    p = _pair()
    with pytest.raises(ValueError):
        p.a.create_initiation(2**32, os.urandom(32), timestamp(1.0))
    with pytest.raises(ValueError):
        p.a.create_initiation(1, os.urandom(31), timestamp(1.0))
    with pytest.raises(ValueError):
        p.a.create_initiation(1, os.urandom(32), b"short")
    assert p.a.state is HandshakeState.ZEROED


def test_static_identity_and_reprs() -> None:
    priv = PrivateKey.generate(os.urandom)
    ident = StaticIdentity(priv)
    assert ident.public == priv.public_key()
    assert ident.mac1_key == hash_(LABEL_MAC1, ident.public.raw)
    assert ident.cookie_key == hash_(LABEL_COOKIE, ident.public.raw)
    assert priv.raw.hex() not in repr(ident) and ident.public.to_base64() in repr(ident)
    p = _pair()
    ka, kb = _full(p)
    for obj in (ka, kb, p.a, p.b):
        text = repr(obj)
        for secret in (ka.send_key, ka.receive_key):
            assert secret.hex() not in text and repr(secret) not in text
    consumed = ConsumedInitiation(ident.public, 1, bytes(32), bytes(12), b"\x01" * 32, b"\x02" * 32)
    assert repr(b"\x01" * 32) not in repr(consumed)
