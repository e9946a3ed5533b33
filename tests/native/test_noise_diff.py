"""The native handshake steps (wgdp_noise.c) against their pure twin (wgpy.handshake_steps).

Same inputs -- keys, a fixed responder ephemeral, PSK or none, payloads of
any length -- give identical bytes: the decrypted static key and timestamp,
every chaining key and hash, the response, and the session keys split from
it.  Hostile initiations (random bytes, flipped bits, low-order ephemerals)
give the same typed ``HandshakeError`` reason from both, or the same result.
"""

from __future__ import annotations

import os
from typing import Any, Callable, TypeVar

import pytest
from hypothesis import given
from hypothesis import strategies as st

from wgpy import handshake_steps
from wgpy.errors import HandshakeError
from wgpy.handshake import Handshake, StaticIdentity, read_initiation
from wgpy.keys import PresharedKey, PrivateKey
from wgpy.tai64n import timestamp

T = TypeVar("T")
NATIVE = handshake_steps.native()
PURE = handshake_steps.PURE
# points of small order on Curve25519 (their DH with any scalar is all-zero)
LOW_ORDER = [bytes(32), (1).to_bytes(32, "little"),
             bytes.fromhex("e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800"),
             bytes.fromhex("5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157"),
             (2**255 - 19 - 1).to_bytes(32, "little"), (2**255 - 19).to_bytes(32, "little")]

INITIATOR = PrivateKey(bytes(range(1, 33)))
RESPONDER = PrivateKey(bytes(range(33, 65)))
ID_I, ID_R = StaticIdentity(INITIATOR), StaticIdentity(RESPONDER)


def _with(steps: handshake_steps.Steps | None, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    assert steps is not None
    saved = handshake_steps.STEPS
    handshake_steps.STEPS = steps
    try:
        return fn(*args, **kwargs)
    finally:
        handshake_steps.STEPS = saved


PROLOGUE = b"WireGuard v1 zx2c4 Jason@zx2c4.com"


def _outcome(steps: handshake_steps.Steps | None, message: bytes, prologue: bytes = PROLOGUE) -> tuple[object, ...]:
    try:
        c = _with(steps, read_initiation, message, ID_R, sender=7, prologue=prologue)
    except HandshakeError as exc:
        return ("error", exc.reason)
    return (c.remote_static.raw, c.ephemeral, c.timestamp, c.chaining_key, c.hash)


def _initiation(psk: PresharedKey | None, payload: bytes, ephemeral: bytes, prologue: bytes) -> bytes:
    h = Handshake(ID_I, RESPONDER.public_key(), psk, prologue=prologue)
    return h.write_initiation(ephemeral, payload)


def _respond(steps: handshake_steps.Steps | None, message: bytes, psk: PresharedKey | None, ephemeral: bytes,
             payload: bytes, prologue: bytes) -> tuple[bytes, bytes, bytes, bytes, bytes]:
    consumed = _with(steps, read_initiation, message, ID_R, sender=9, prologue=prologue)
    h = Handshake(ID_R, INITIATOR.public_key(), psk, prologue=prologue)
    h.accept_initiation(consumed, 1.0)
    response = _with(steps, h.write_response, ephemeral, payload)
    c, hh = h.chaining_key, h.hash
    keys = h.begin_session()
    return response, c, hh, keys.send_key, keys.receive_key


@pytest.mark.parametrize("with_psk", [False, True])
@pytest.mark.parametrize("payload_len", [1, 12, 100])
def test_identical_bytes_for_fixed_inputs(with_psk: bool, payload_len: int) -> None:
    psk = PresharedKey(bytes(range(100, 132))) if with_psk else None
    prologue = b"WireGuard v1 zx2c4 Jason@zx2c4.com"
    payload = bytes(range(1, payload_len + 1))
    msg = _initiation(psk, payload, bytes(range(200, 232)), prologue)
    assert _outcome(NATIVE, msg, prologue) == _outcome(PURE, msg, prologue)
    assert _outcome(PURE, msg, prologue)[2] == payload
    fixed_ephemeral = bytes(range(150, 182))
    native = _respond(NATIVE, msg, psk, fixed_ephemeral, payload, prologue)
    assert native == _respond(PURE, msg, psk, fixed_ephemeral, payload, prologue)
    # and the initiator completes against the native response with matching keys
    init = Handshake(ID_I, RESPONDER.public_key(), psk, prologue=prologue)
    init.write_initiation(bytes(range(200, 232)), payload)
    assert init.read_response(native[0]) == payload
    keys = init.begin_session()
    assert (keys.send_key, keys.receive_key) == (native[4], native[3])


def test_wireguard_initiation_through_both() -> None:
    h = Handshake(ID_I, RESPONDER.public_key())
    msg = h.create_initiation(5, os.urandom(32), timestamp(1.7e9)).encode()
    body = msg[8:8 + 32 + 48 + 28]
    assert _outcome(NATIVE, body) == _outcome(PURE, body)


@given(st.binary(min_size=0, max_size=200))
def test_random_initiations_same_outcome(message: bytes) -> None:
    assert _outcome(NATIVE, message) == _outcome(PURE, message)


VALID = _initiation(None, bytes(12), bytes(range(200, 232)), b"WireGuard v1 zx2c4 Jason@zx2c4.com")


@given(st.integers(min_value=0, max_value=len(VALID) * 8 - 1))
def test_flipped_bit_same_outcome(bit: int) -> None:
    msg = bytearray(VALID)
    msg[bit // 8] ^= 1 << (bit % 8)
    outcome = _outcome(NATIVE, bytes(msg))
    assert outcome == _outcome(PURE, bytes(msg))
    assert outcome[0] == "error"


@pytest.mark.parametrize("point", LOW_ORDER)
def test_low_order_ephemeral_same_drop(point: bytes) -> None:
    msg = point + VALID[32:]
    assert _outcome(NATIVE, msg) == _outcome(PURE, msg)
    assert _outcome(PURE, msg)[0] == "error"


@pytest.mark.parametrize("point", LOW_ORDER)
def test_low_order_ephemeral_in_response_same_drop(point: bytes) -> None:
    """A low-order remote ephemeral that decrypted (built by the test) fails the response the same way."""
    outcomes: list[tuple[object, ...]] = []
    for steps in (NATIVE, PURE):
        assert steps is not None
        try:
            out = steps.write_response(bytes(32), bytes(32), bytes(range(150, 182)), point,
                                       INITIATOR.public_key().raw, bytes(32), b"")
        except HandshakeError as exc:
            outcomes.append(("error", exc.reason))
        else:
            outcomes.append(out)
    assert outcomes[0] == outcomes[1]
    assert outcomes[0][0] == "error"


@given(c=st.binary(min_size=32, max_size=32), h=st.binary(min_size=32, max_size=32),
       ss=st.binary(min_size=32, max_size=32), enc=st.binary(min_size=0, max_size=80))
def test_read_payload_garbage_same_outcome(c: bytes, h: bytes, ss: bytes, enc: bytes) -> None:
    outcomes: list[tuple[object, ...]] = []
    for steps in (NATIVE, PURE):
        assert steps is not None
        try:
            outcomes.append(steps.read_payload(c, h, ss, enc))
        except HandshakeError as exc:
            outcomes.append(("error", exc.reason))
    assert outcomes[0] == outcomes[1]
