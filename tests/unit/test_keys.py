"""Key value types: lengths, codecs, clamping, equality, redaction."""

from __future__ import annotations

import base64

import pytest
from hypothesis import given
from hypothesis import strategies as st

from wgpy.errors import ConfigError
from wgpy.keys import PresharedKey, PrivateKey, PublicKey, clamp

RAW = bytes(range(32))


@pytest.mark.parametrize("cls", [PrivateKey, PublicKey, PresharedKey])
def test_exact_length(cls: type) -> None:
    for bad in (b"", bytes(31), bytes(33)):
        with pytest.raises(ValueError):
            cls(bad)
    with pytest.raises(TypeError):
        cls("x" * 32)


@pytest.mark.parametrize("cls", [PrivateKey, PublicKey, PresharedKey])
def test_base64_and_hex_round_trip(cls: type) -> None:
    key = cls(RAW)
    assert cls.from_base64(key.to_base64()) == key
    assert cls.from_hex(key.to_hex()) == key
    assert key.to_hex() == RAW.hex()  # lowercase, as UAPI wants
    assert cls.from_hex(RAW.hex().upper()) == key


@pytest.mark.parametrize("text", ["", "not base64!", base64.b64encode(bytes(31)).decode(), "A" * 44 + "=="])
def test_bad_base64_is_config_error(text: str) -> None:
    with pytest.raises(ConfigError):
        PublicKey.from_base64(text)


@pytest.mark.parametrize("text", ["", "0" * 63, "0" * 65, "g" * 64])
def test_bad_hex_is_config_error(text: str) -> None:
    with pytest.raises(ConfigError):
        PublicKey.from_hex(text)


def test_clamping() -> None:
    clamped = clamp(b"\xff" * 32)
    assert clamped[0] == 0xF8 and clamped[31] == 0x7F
    assert clamp(bytes(32))[31] == 0x40
    key = PrivateKey.generate(lambda n: b"\xff" * n)
    assert key.raw == clamped
    # X25519 clamps on use: an unclamped key has the same public key as its clamped form
    assert PrivateKey(b"\xff" * 32).public_key() == PrivateKey(clamped).public_key()


def test_equality_is_by_type_and_value() -> None:
    assert PublicKey(RAW) == PublicKey(bytes(RAW))
    assert PublicKey(RAW) != PublicKey(bytes(32))
    assert PublicKey(RAW) != PresharedKey(RAW)
    assert len({PublicKey(RAW), PublicKey(RAW)}) == 1
    assert PresharedKey(bytes(32)).is_zero() and not PresharedKey(RAW).is_zero()


def test_secrets_are_redacted() -> None:
    for key in (PrivateKey(RAW), PresharedKey(RAW)):
        for text in (repr(key), str(key), f"{key}"):
            assert "redacted" in text
            assert key.to_base64() not in text and key.to_hex() not in text
    public = PublicKey(RAW)
    assert public.to_base64() in repr(public)


@given(st.binary(min_size=32, max_size=32))
def test_public_key_derivation_is_stable(raw: bytes) -> None:
    key = PrivateKey(raw)
    assert key.public_key() == PrivateKey(clamp(raw)).public_key()
    assert len(key.public_key().raw) == 32
