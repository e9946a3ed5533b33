"""Property tests for wgpy.messages: decoding never crashes, encoding round-trips.

The invariant (h11's, style.md §1): any input either decodes or raises
``MessageError`` -- never any other exception.
"""

from __future__ import annotations

import struct

from hypothesis import given, settings
from hypothesis import strategies as st

from wgpy.errors import MessageError
from wgpy.messages import (
    CookieReply,
    Initiation,
    Message,
    MessageType,
    Response,
    Transport,
    decode_message,
    encode_transport_header,
    message_type,
    transport_header,
)

u32 = st.integers(0, 2**32 - 1)
u64 = st.integers(0, 2**64 - 1)


def _fixed(n: int) -> st.SearchStrategy[bytes]:
    return st.binary(min_size=n, max_size=n)


def _decode_or_message_error(data: bytes) -> Message | None:
    try:
        msg = decode_message(data)
    except MessageError:
        return None
    # whatever decodes re-encodes to exactly the input
    assert msg.encode() == data
    return msg


@settings(max_examples=300)
@given(st.binary(max_size=300))
def test_arbitrary_bytes(data: bytes) -> None:
    _decode_or_message_error(data)


@settings(max_examples=300)
@given(st.sampled_from([1, 2, 3, 4]), st.binary(max_size=3), st.binary(max_size=200))
def test_type_shaped_bytes(mtype: int, reserved: bytes, body: bytes) -> None:
    """Right type byte, random reserved bytes, random length and contents."""
    head = bytes([mtype]) + (reserved + bytes(3))[:3]
    msg = _decode_or_message_error(head + body)
    if msg is not None:
        assert head[1:] == bytes(3)
        assert int(message_type(head + body)) == mtype
    if head[1:] != bytes(3):
        assert msg is None


@settings(max_examples=200)
@given(st.sampled_from(list(MessageType)), st.integers(0, 400))
def test_every_length_of_each_type(mtype: MessageType, length: int) -> None:
    data = (struct.pack("<I", mtype) + bytes(400))[:length]
    sizes = {MessageType.INITIATION: 148, MessageType.RESPONSE: 92, MessageType.COOKIE_REPLY: 64}
    msg = _decode_or_message_error(data)
    if mtype is MessageType.TRANSPORT:
        assert (msg is not None) == (length >= 32)
    else:
        assert (msg is not None) == (length == sizes[mtype])


@given(u32, _fixed(32), _fixed(48), _fixed(28), _fixed(16), _fixed(16))
def test_initiation_round_trip(s: int, e: bytes, es: bytes, et: bytes, m1: bytes, m2: bytes) -> None:
    m = Initiation(s, e, es, et, m1, m2)
    assert Initiation.decode(m.encode()) == m == decode_message(m.encode())


@given(u32, u32, _fixed(32), _fixed(16), _fixed(16), _fixed(16))
def test_response_round_trip(s: int, r: int, e: bytes, en: bytes, m1: bytes, m2: bytes) -> None:
    m = Response(s, r, e, en, m1, m2)
    assert Response.decode(m.encode()) == m == decode_message(m.encode())


@given(u32, _fixed(24), _fixed(32))
def test_cookie_reply_round_trip(r: int, nonce: bytes, enc: bytes) -> None:
    m = CookieReply(r, nonce, enc)
    assert CookieReply.decode(m.encode()) == m == decode_message(m.encode())


@given(u32, u64, st.binary(min_size=16, max_size=200))
def test_transport_round_trip(r: int, c: int, enc: bytes) -> None:
    m = Transport(r, c, enc)
    raw = m.encode()
    assert Transport.decode(raw) == m == decode_message(raw)
    assert transport_header(raw) == (r, c)
    assert raw[:16] == encode_transport_header(r, c)
