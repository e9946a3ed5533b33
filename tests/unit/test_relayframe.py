"""The relay frame codec (wgpy.relayframe): layout, tag, and every check in its order."""

from __future__ import annotations

import hashlib

import pytest

from wgpy import relayframe
from wgpy.constants import MESSAGE_RELAY, RELAY_HEADER_SIZE
from wgpy.errors import DropReason
from wgpy.keys import PublicKey

KEY = bytes(range(32))
A, P = PublicKey(b"\x0a" * 32), PublicKey(b"\x0b" * 32)
TRANSPORT = b"\x04\0\0\0" + bytes(range(40))


def test_layout_and_tag_match_the_design() -> None:
    frame = relayframe.encode(KEY, A, P, TRANSPORT)
    assert frame[:4] == bytes([MESSAGE_RELAY, 1, 0, 0])
    assert frame[4:36] == A.raw and frame[36:68] == P.raw
    want = hashlib.blake2s(frame[:68] + TRANSPORT, digest_size=16, key=KEY).digest()
    assert frame[68:84] == want
    assert frame[RELAY_HEADER_SIZE:] == TRANSPORT
    assert relayframe.decode(KEY, frame) == relayframe.RelayFrame(A, P, TRANSPORT)


@pytest.mark.parametrize("payload", [b"\x01\0\0\0" + bytes(144), b"\x02\0\0\0" + bytes(88),
                                     b"\x03\0\0\0" + bytes(60)])
def test_handshake_payloads_pass_the_codec(payload: bytes) -> None:
    frame = relayframe.decode(KEY, relayframe.encode(KEY, A, P, payload))
    assert isinstance(frame, relayframe.RelayFrame) and frame.payload == payload


def _retag(frame: bytes) -> bytes:
    return frame[:68] + relayframe.tag(KEY, frame[:68], frame[84:]) + frame[84:]


@pytest.mark.parametrize("mangle, reason", [
    (lambda f: f[:87], DropReason.RELAY_BAD_FRAME),  # no room for a payload header
    (lambda f: bytes([5, 2]) + f[2:], DropReason.RELAY_BAD_FRAME),  # version
    (lambda f: f[:2] + b"\1" + f[3:], DropReason.RELAY_BAD_FRAME),  # reserved
    (lambda f: f[:70] + bytes([f[70] ^ 1]) + f[71:], DropReason.RELAY_BAD_MAC),  # tag
    (lambda f: f[:10] + bytes([f[10] ^ 1]) + f[11:], DropReason.RELAY_BAD_MAC),  # sender, tag not redone
    (lambda f: f + b"x", DropReason.RELAY_BAD_MAC),  # payload grown
    (lambda f: _retag(f[:84] + b"\x09\0\0\0" + f[88:]), DropReason.RELAY_BAD_FRAME),  # payload type
    (lambda f: _retag(f[:84] + b"\x04\0\1\0" + f[88:]), DropReason.RELAY_BAD_FRAME),  # payload reserved
    (lambda f: _retag(f[:100]), DropReason.RELAY_BAD_FRAME),  # transport shorter than header + tag
    (lambda f: _retag(f[:36] + f[4:36] + f[68:]), DropReason.RELAY_BAD_FRAME),  # sender == receiver
])
def test_bad_frames_give_their_reason(mangle, reason: DropReason) -> None:  # type: ignore[no-untyped-def]
    assert relayframe.decode(KEY, mangle(relayframe.encode(KEY, A, P, TRANSPORT))) is reason


def test_another_key_does_not_verify() -> None:
    frame = relayframe.encode(KEY, A, P, TRANSPORT)
    assert relayframe.decode(bytes(32), frame) is DropReason.RELAY_BAD_MAC


def test_encode_wants_a_32_byte_key() -> None:
    with pytest.raises(ValueError):
        relayframe.encode(b"short", A, P, TRANSPORT)
