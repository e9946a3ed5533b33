"""Property tests for wgpy.handshake: random keys, psks, indices and timestamps.

Invariants: both sides always agree on (C, H) and derive crossed transport
keys; flipping any bit of the Noise part of a handshake message makes it
fail with ``HandshakeError`` and leaves the receiving state unchanged.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from wgpy.crypto import Aead
from wgpy.errors import HandshakeError
from wgpy.handshake import Handshake, HandshakeState, StaticIdentity, consume_initiation
from wgpy.keys import PresharedKey, PrivateKey
from wgpy.messages import Initiation, Response
from wgpy.tai64n import timestamp_ns

key = st.binary(min_size=32, max_size=32)
u32 = st.integers(0, 2**32 - 1)
wall_ns = st.integers(1 << 24, 2**62)  # the all-zero label (first 16.8 ms of 1970) is never 'after'
psk_opt = st.one_of(st.none(), key)


def _ids(a: bytes, b: bytes) -> tuple[StaticIdentity, StaticIdentity]:
    return StaticIdentity(PrivateKey(a)), StaticIdentity(PrivateKey(b))


def _psk(raw: bytes | None) -> PresharedKey | None:
    return None if raw is None else PresharedKey(raw)


@settings(max_examples=40, deadline=None)
@given(key, key, key, key, psk_opt, u32, u32, wall_ns)
def test_handshake_round_trip(sa: bytes, sb: bytes, ea: bytes, eb: bytes, psk: bytes | None,
                              ia: int, ib: int, ns: int) -> None:
    a_id, b_id = _ids(sa, sb)
    a = Handshake(a_id, b_id.public, _psk(psk))
    b = Handshake(b_id, a_id.public, _psk(psk))
    init = Initiation.decode(a.create_initiation(ia, ea, timestamp_ns(ns)).encode())
    consumed = consume_initiation(init, b_id)
    assert consumed.remote_static == a_id.public and consumed.sender == ia
    assert consumed.timestamp == timestamp_ns(ns)
    assert (consumed.chaining_key, consumed.hash) == (a.chaining_key, a.hash)
    b.accept_initiation(consumed, 0.0)
    resp = Response.decode(b.create_response(ib, eb).encode())
    assert resp.receiver == ia
    a.consume_response(resp)
    assert (a.chaining_key, a.hash) == (b.chaining_key, b.hash)
    ka, kb = a.begin_session(), b.begin_session()
    assert (ka.local_index, ka.remote_index, kb.local_index, kb.remote_index) == (ia, ib, ib, ia)
    assert ka.send_key == kb.receive_key and ka.receive_key == kb.send_key
    assert Aead(kb.receive_key).open(0, Aead(ka.send_key).seal(0, b"x")) == b"x"
    assert a.state is b.state is HandshakeState.ZEROED


@settings(max_examples=40, deadline=None)
@given(key, key, key, psk_opt, st.integers(0, 107 * 8 - 1))
def test_initiation_bit_flip_fails(sa: bytes, sb: bytes, ea: bytes, psk: bytes | None, bit: int) -> None:
    a_id, b_id = _ids(sa, sb)
    a = Handshake(a_id, b_id.public, _psk(psk))
    raw = bytearray(a.create_initiation(1, ea, timestamp_ns(10**18)).encode())
    raw[8 + bit // 8] ^= 1 << (bit % 8)  # within ephemeral || enc_static || enc_timestamp
    try:
        consume_initiation(Initiation.decode(bytes(raw)), b_id)
    except HandshakeError:
        return
    raise AssertionError("tampered initiation was accepted")


@settings(max_examples=40, deadline=None)
@given(key, key, key, key, psk_opt, psk_opt, st.integers(0, 48 * 8 - 1), st.booleans())
def test_response_bit_flip_or_psk_mismatch_fails(sa: bytes, sb: bytes, ea: bytes, eb: bytes,
                                                  pa: bytes | None, pb: bytes | None,
                                                  bit: int, flip: bool) -> None:
    a_id, b_id = _ids(sa, sb)
    a = Handshake(a_id, b_id.public, _psk(pa))
    b = Handshake(b_id, a_id.public, _psk(pb))
    b.accept_initiation(consume_initiation(a.create_initiation(1, ea, timestamp_ns(10**18)), b_id), 0.0)
    raw = bytearray(b.create_response(2, eb).encode())
    if flip:
        raw[12 + bit // 8] ^= 1 << (bit % 8)  # within ephemeral || encrypted_nothing
    should_fail = flip or (pa or bytes(32)) != (pb or bytes(32))  # no psk == the zero psk
    before = (a.state, a.chaining_key, a.hash, a.remote_index)
    try:
        a.consume_response(Response.decode(bytes(raw)))
    except HandshakeError:
        assert should_fail
        assert (a.state, a.chaining_key, a.hash, a.remote_index) == before
        return
    assert not should_fail
    assert a.state is HandshakeState.RESPONSE_CONSUMED


OPS = ["initiate", "deliver_initiation", "respond", "deliver_response", "begin_a", "begin_b",
       "clear_a", "clear_b"]


HAPPY = ["initiate", "deliver_initiation", "respond", "deliver_response", "begin_b", "begin_a"]
# single random operations interleaved with whole or partial happy-path runs
op_sequences = st.lists(
    st.one_of(st.sampled_from(OPS).map(lambda op: [op]),
              st.integers(1, len(HAPPY)).map(lambda n: HAPPY[:n])),
    max_size=12,
).map(lambda chunks: [op for chunk in chunks for op in chunk])


@settings(max_examples=60, deadline=None)
@given(op_sequences, st.binary(min_size=32, max_size=32))
def test_state_machine_against_model(ops: list[str], seed: bytes) -> None:
    """Random operation sequences on a pair: states follow the model, only typed errors."""
    import hashlib

    from wgpy.errors import StateError

    counter = iter(range(1, 10_000))

    def rnd() -> bytes:
        return hashlib.blake2s(seed + next(counter).to_bytes(4, "little")).digest()

    a_id, b_id = _ids(rnd(), rnd())
    a = Handshake(a_id, b_id.public)
    b = Handshake(b_id, a_id.public)
    S = HandshakeState
    init: Initiation | None = None
    resp: Response | None = None
    resp_for: int | None = None  # initiation index the pending response answers
    b_last_wall = -1
    wall = 1_700_000_000
    now = 0.0
    next_index = 100
    keys_a: dict[int, bytes] = {}  # remote index -> receive key
    keys_b: dict[int, bytes] = {}  # local index -> send key
    for op in ops:
        now += 0.05
        if op == "initiate":
            wall += 1
            next_index += 1
            init = a.create_initiation(next_index, rnd(), timestamp_ns(wall * 10**9))
            assert a.state is S.INITIATION_CREATED and a.local_index == next_index
        elif op == "deliver_initiation" and init is not None:
            consumed = consume_initiation(init, b_id)
            before = (b.state, b.hash)
            ts_wall = int.from_bytes(consumed.timestamp[:8], "big") - 0x400000000000000A
            try:
                b.accept_initiation(consumed, now)
            except HandshakeError:
                assert ts_wall <= b_last_wall
                assert (b.state, b.hash) == before
            else:
                assert ts_wall > b_last_wall and b.state is S.INITIATION_CONSUMED
                b_last_wall = ts_wall
        elif op == "respond":
            was = b.state
            try:
                next_index += 1
                resp = b.create_response(next_index, rnd())
            except StateError:
                assert was is not S.INITIATION_CONSUMED and b.state is was
            else:
                assert was is S.INITIATION_CONSUMED and b.state is S.RESPONSE_CREATED
                resp_for = resp.receiver
        elif op == "deliver_response" and resp is not None:
            was, idx = a.state, a.local_index
            try:
                a.consume_response(resp)
            except HandshakeError:
                assert not (was is S.INITIATION_CREATED and resp_for == idx)
                assert a.state is was
            else:
                assert was is S.INITIATION_CREATED and resp_for == idx
                assert a.state is S.RESPONSE_CONSUMED
        elif op in ("begin_a", "begin_b"):
            h = a if op == "begin_a" else b
            was = h.state
            try:
                k = h.begin_session()
            except StateError:
                assert was not in (S.RESPONSE_CONSUMED, S.RESPONSE_CREATED) and h.state is was
            else:
                assert h.state is S.ZEROED and k.is_initiator == (h is a)
                if h is a:
                    keys_a[k.remote_index] = k.receive_key
                else:
                    keys_b[k.local_index] = k.send_key
        elif op in ("clear_a", "clear_b"):
            h = a if op == "clear_a" else b
            h.clear()
            assert h.state is S.ZEROED
    # every session both sides began from the same exchange has crossed keys
    for index, receive_key in keys_a.items():
        if index in keys_b:
            assert keys_b[index] == receive_key
