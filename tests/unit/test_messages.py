"""wgpy.messages: exact layouts, round trips and strict rejection (wireguard.md §2)."""

from __future__ import annotations

import struct

import pytest

from wgpy.errors import MessageError
from wgpy.messages import (
    CookieReply,
    Initiation,
    MessageType,
    Response,
    Transport,
    decode_message,
    encode_transport_header,
    message_type,
    transport_header,
)


def _b(n: int, start: int = 1) -> bytes:
    return bytes((start + i) % 256 for i in range(n))


INIT = Initiation(0x01020304, _b(32, 10), _b(48, 50), _b(28, 100), _b(16, 130), _b(16, 150))
RESP = Response(0xAABBCCDD, 7, _b(32, 3), _b(16, 40), _b(16, 60), _b(16, 80))
COOKIE = CookieReply(0xFFFFFFFF, _b(24, 5), _b(32, 33))
TRANSPORT = Transport(9, 2**64 - 1, _b(16 + 100, 7))
ALL = [INIT, RESP, COOKIE, TRANSPORT]


def test_initiation_layout() -> None:
    raw = INIT.encode()
    assert len(raw) == 148
    assert raw[:4] == b"\x01\x00\x00\x00"
    assert raw[4:8] == struct.pack("<I", 0x01020304)
    assert raw[8:40] == INIT.ephemeral
    assert raw[40:88] == INIT.encrypted_static
    assert raw[88:116] == INIT.encrypted_timestamp
    assert raw[116:132] == INIT.mac1 and raw[132:148] == INIT.mac2


def test_response_layout() -> None:
    raw = RESP.encode()
    assert len(raw) == 92
    assert raw[:12] == struct.pack("<III", 2, 0xAABBCCDD, 7)
    assert raw[12:44] == RESP.ephemeral and raw[44:60] == RESP.encrypted_nothing
    assert raw[60:76] == RESP.mac1 and raw[76:92] == RESP.mac2


def test_cookie_and_transport_layout() -> None:
    raw = COOKIE.encode()
    assert len(raw) == 64 and raw[:8] == struct.pack("<II", 3, 0xFFFFFFFF)
    assert raw[8:32] == COOKIE.nonce and raw[32:] == COOKIE.encrypted_cookie
    raw = TRANSPORT.encode()
    assert len(raw) == 16 + 116
    assert raw[:16] == struct.pack("<IIQ", 4, 9, 2**64 - 1) == encode_transport_header(9, 2**64 - 1)
    assert transport_header(raw) == (9, 2**64 - 1)


def test_default_macs_are_zero() -> None:
    m = Initiation(1, bytes(32), bytes(48), bytes(28))
    assert m.mac1 == m.mac2 == bytes(16)
    r = Response(1, 2, bytes(32), bytes(16))
    assert r.encode()[60:] == bytes(32)


@pytest.mark.parametrize("msg", ALL, ids=lambda m: type(m).__name__)
def test_round_trip(msg: object) -> None:
    raw = msg.encode()  # type: ignore[attr-defined]
    assert type(msg).decode(raw) == msg  # type: ignore[attr-defined]
    assert decode_message(raw) == msg
    assert decode_message(bytearray(raw)) == msg
    assert decode_message(memoryview(raw)) == msg
    assert message_type(raw) is MessageType(raw[0])


def test_minimal_transport_is_keepalive_size() -> None:
    t = Transport(1, 0, bytes(16))
    assert len(t.encode()) == 32
    assert Transport.decode(t.encode()) == t


@pytest.mark.parametrize("msg", [INIT, RESP, COOKIE], ids=lambda m: type(m).__name__)
def test_fixed_size_messages_reject_every_other_length(msg: object) -> None:
    raw = msg.encode()  # type: ignore[attr-defined]
    for n in list(range(len(raw))) + [len(raw) + 1, len(raw) + 16, 2000]:
        data = (raw + bytes(2000))[:n]
        with pytest.raises(MessageError):
            type(msg).decode(data)  # type: ignore[attr-defined]
        with pytest.raises(MessageError):
            decode_message(data)


def test_transport_rejects_short() -> None:
    raw = TRANSPORT.encode()
    for n in range(32):
        with pytest.raises(MessageError):
            Transport.decode(raw[:n])
        with pytest.raises(MessageError):
            decode_message(raw[:n])


@pytest.mark.parametrize("msg", ALL, ids=lambda m: type(m).__name__)
def test_reserved_bytes_rejected(msg: object) -> None:
    raw = bytearray(msg.encode())  # type: ignore[attr-defined]
    for i in (1, 2, 3):
        bad = bytearray(raw)
        bad[i] = 1
        with pytest.raises(MessageError):
            decode_message(bytes(bad))
        with pytest.raises(MessageError):
            type(msg).decode(bytes(bad))  # type: ignore[attr-defined]
        with pytest.raises(MessageError):
            message_type(bytes(bad))


@pytest.mark.parametrize("word", [0, 5, 255, 0x100, 0xFFFFFFFF])
def test_unknown_type_rejected(word: int) -> None:
    data = struct.pack("<I", word) + bytes(144)
    with pytest.raises(MessageError):
        message_type(data)
    with pytest.raises(MessageError):
        decode_message(data)


def test_wrong_type_word_for_class() -> None:
    raw = bytearray(INIT.encode())
    raw[0] = 2
    with pytest.raises(MessageError):
        Initiation.decode(bytes(raw))
    with pytest.raises(MessageError):
        Response.decode(INIT.encode()[:92])
    with pytest.raises(MessageError):
        Transport.decode(INIT.encode())


def test_message_type_short_and_non_bytes() -> None:
    for data in (b"", b"\x01", b"\x01\x00\x00"):
        with pytest.raises(MessageError):
            message_type(data)
    with pytest.raises(MessageError):
        decode_message("not bytes")  # type: ignore[arg-type]


def test_constructor_validation() -> None:
    with pytest.raises(ValueError):
        Initiation(-1, bytes(32), bytes(48), bytes(28))
    with pytest.raises(ValueError):
        Initiation(2**32, bytes(32), bytes(48), bytes(28))
    with pytest.raises(ValueError):
        Initiation(1, bytes(31), bytes(48), bytes(28))
    with pytest.raises(ValueError):
        Initiation(1, bytes(32), bytes(48), bytes(28), mac1=bytes(15))
    with pytest.raises(ValueError):
        Response(1, 2**32, bytes(32), bytes(16))
    with pytest.raises(ValueError):
        Response(1, 2, bytes(32), bytes(17))
    with pytest.raises(ValueError):
        CookieReply(1, bytes(12), bytes(32))
    with pytest.raises(ValueError):
        CookieReply(1, bytes(24), bytes(16))
    with pytest.raises(ValueError):
        Transport(1, 2**64, bytes(16))
    with pytest.raises(ValueError):
        Transport(1, 0, bytes(15))
    with pytest.raises(ValueError):
        encode_transport_header(2**32, 0)


def test_bytearray_fields_are_normalised() -> None:
    m = Initiation(1, bytearray(32), bytearray(48), bytearray(28))
    assert isinstance(m.ephemeral, bytes)
    assert hash(m) == hash(Initiation(1, bytes(32), bytes(48), bytes(28)))


def test_frozen() -> None:
    with pytest.raises(AttributeError):
        INIT.sender = 5  # type: ignore[misc]
