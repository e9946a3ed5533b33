"""wgpy.cookie: mac1/mac2, cookie replies, secret rotation (wireguard.md §4)."""

from __future__ import annotations

import os
import random
from typing import Callable

import pytest

from wgpy.constants import COOKIE_SECRET_MAX_AGE, COOKIE_VALID_FOR, LABEL_MAC1
from wgpy.crypto import hash_, mac
from wgpy.cookie import CookieChecker, CookieGenerator, source_bytes
from wgpy.errors import DropReason, HandshakeError, StateError
from wgpy.keys import PrivateKey, PublicKey
from wgpy.messages import CookieReply, Initiation, Response

SRC = ("192.0.2.7", 51820)


Rng = Callable[[int], bytes]


def _rng_fn(seed: int = 1) -> Rng:
    """A deterministic stand-in for os.urandom."""
    return random.Random(seed).randbytes


def _keys() -> tuple[PublicKey, CookieChecker, CookieGenerator]:
    pub = PrivateKey.generate(os.urandom).public_key()
    return pub, CookieChecker(pub), CookieGenerator(pub)


def _initiation(sender: int = 5) -> bytes:
    return Initiation(sender, os.urandom(32), os.urandom(48), os.urandom(28)).encode()


def _response() -> bytes:
    return Response(1, 2, os.urandom(32), os.urandom(16)).encode()


@pytest.mark.parametrize("make", [_initiation, _response])
def test_mac1_round_trip(make: Callable[[], bytes]) -> None:
    pub, checker, gen = _keys()
    msg = make()
    out = gen.add_macs(msg, now=0.0)
    assert len(out) == len(msg) and out[:-32] == msg[:-32]
    assert out[-32:-16] == mac(hash_(LABEL_MAC1, pub.raw), msg[:-32])
    assert out[-16:] == bytes(16)  # no cookie yet
    assert checker.check_mac1(out)
    assert not checker.check_mac1(msg)  # zero mac1
    bad = bytearray(out)
    bad[10] ^= 1
    assert not checker.check_mac1(bytes(bad))
    # mac1 for a different receiver does not verify
    assert not CookieChecker(PrivateKey.generate(os.urandom).public_key()).check_mac1(out)


def test_checker_without_key() -> None:
    _, _, gen = _keys()
    checker = CookieChecker(None)
    assert not checker.check_mac1(gen.add_macs(_initiation(), 0.0))
    with pytest.raises(StateError):
        checker.create_reply(_initiation(), 5, SRC, 0.0, _rng_fn())
    assert not checker.check_mac1(b"short")


def test_set_public_switches_key() -> None:
    pub, checker, gen = _keys()
    msg = gen.add_macs(_initiation(), 0.0)
    other = PrivateKey.generate(os.urandom).public_key()
    checker.set_public(other)
    assert not checker.check_mac1(msg)
    checker.set_public(pub)
    assert checker.check_mac1(msg)
    checker.set_public(None)
    assert not checker.check_mac1(msg)


def _cookie_round(checker: CookieChecker, gen: CookieGenerator, now: float, rng: Rng,
                  src: tuple[str, int] = SRC) -> bytes:
    """Send an initiation, get a cookie reply, consume it, send again: the retry."""
    msg = gen.add_macs(_initiation(), now)
    assert checker.check_mac1(msg)
    assert not checker.check_mac2(msg, src, now, rng)
    reply = checker.create_reply(msg, 5, src, now, rng)
    assert reply.receiver == 5
    gen.consume_reply(CookieReply.decode(reply.encode()), now)
    return gen.add_macs(_initiation(), now)


@pytest.mark.parametrize("make", [_initiation, _response])
def test_cookie_reply_then_mac2_accepted(make: Callable[[], bytes]) -> None:
    _, checker, gen = _keys()
    rng = _rng_fn()
    msg = gen.add_macs(make(), 1.0)
    reply = checker.create_reply(msg, 9, SRC, 1.0, rng)
    gen.consume_reply(reply, 2.0)
    assert gen.has_valid_cookie(2.0)
    retry = gen.add_macs(make(), 3.0)
    assert retry[-16:] != bytes(16)
    assert checker.check_mac1(retry)
    assert checker.check_mac2(retry, SRC, 3.0, rng)


def test_mac2_from_different_source_rejected() -> None:
    _, checker, gen = _keys()
    rng = _rng_fn()
    retry = _cookie_round(checker, gen, 0.0, rng)
    assert checker.check_mac2(retry, SRC, 1.0, rng)
    assert not checker.check_mac2(retry, ("192.0.2.8", 51820), 1.0, rng)
    assert not checker.check_mac2(retry, ("192.0.2.7", 51821), 1.0, rng)
    bad = bytearray(retry)
    bad[20] ^= 1
    assert not checker.check_mac2(bytes(bad), SRC, 1.0, rng)


def test_ipv6_sources_and_mapped_v4() -> None:
    assert source_bytes(("::ffff:192.0.2.7", 1)) == source_bytes(("192.0.2.7", 1))
    assert source_bytes(("2001:db8::1", 258)) == bytes.fromhex("20010db8000000000000000000000001") + b"\x01\x02"
    _, checker, gen = _keys()
    rng = _rng_fn()
    src6 = ("2001:db8::1", 51820)
    retry = _cookie_round(checker, gen, 0.0, rng, src6)
    assert checker.check_mac2(retry, src6, 0.5, rng)
    assert not checker.check_mac2(retry, ("2001:db8::2", 51820), 0.5, rng)


def test_secret_rotation_invalidates_old_cookies() -> None:
    _, checker, gen = _keys()
    rng = _rng_fn()
    retry = _cookie_round(checker, gen, 0.0, rng)
    assert checker.check_mac2(retry, SRC, COOKIE_SECRET_MAX_AGE, rng)  # not yet older than 120 s
    assert not checker.check_mac2(retry, SRC, COOKIE_SECRET_MAX_AGE + 0.5, rng)
    # a fresh cookie under the new secret works again
    retry2 = _cookie_round(checker, gen, COOKIE_SECRET_MAX_AGE + 1.0, rng)
    assert checker.check_mac2(retry2, SRC, COOKIE_SECRET_MAX_AGE + 2.0, rng)


def test_reply_with_wrong_ad_rejected() -> None:
    _, checker, gen = _keys()
    rng = _rng_fn()
    sent = gen.add_macs(_initiation(), 0.0)
    other = CookieGenerator(PrivateKey.generate(os.urandom).public_key()).add_macs(_initiation(), 0.0)
    reply = checker.create_reply(other, 5, SRC, 0.0, rng)  # answers a mac1 we never sent
    with pytest.raises(HandshakeError) as exc:
        gen.consume_reply(reply, 0.0)
    assert exc.value.reason is DropReason.INVALID_COOKIE
    assert not gen.has_valid_cookie(0.0)
    # the failure did not use up the mac1: the genuine reply still works
    gen.consume_reply(checker.create_reply(sent, 5, SRC, 0.0, rng), 0.0)
    assert gen.has_valid_cookie(0.0)


def test_reply_tampered_or_from_other_key_rejected() -> None:
    _, checker, gen = _keys()
    rng = _rng_fn()
    sent = gen.add_macs(_initiation(), 0.0)
    reply = checker.create_reply(sent, 5, SRC, 0.0, rng)
    tampered = CookieReply(reply.receiver, reply.nonce, bytes([reply.encrypted_cookie[0] ^ 1]) + reply.encrypted_cookie[1:])
    with pytest.raises(HandshakeError):
        gen.consume_reply(tampered, 0.0)
    impostor = CookieChecker(PrivateKey.generate(os.urandom).public_key())
    with pytest.raises(HandshakeError):
        gen.consume_reply(impostor.create_reply(sent, 5, SRC, 0.0, rng), 0.0)


def test_second_reply_without_new_mac1_rejected() -> None:
    _, checker, gen = _keys()
    rng = _rng_fn()
    sent = gen.add_macs(_initiation(), 0.0)
    reply = checker.create_reply(sent, 5, SRC, 0.0, rng)
    gen.consume_reply(reply, 0.0)
    with pytest.raises(HandshakeError) as exc:
        gen.consume_reply(reply, 0.1)
    assert exc.value.reason is DropReason.INVALID_COOKIE
    with pytest.raises(HandshakeError):
        gen.consume_reply(checker.create_reply(sent, 5, SRC, 0.1, rng), 0.1)


def test_reply_before_any_mac1_rejected() -> None:
    _, checker, gen = _keys()
    reply = checker.create_reply(_initiation(), 5, SRC, 0.0, _rng_fn())
    with pytest.raises(HandshakeError) as exc:
        gen.consume_reply(reply, 0.0)
    assert exc.value.reason is DropReason.INVALID_COOKIE


def test_old_cookie_not_used_for_mac2() -> None:
    _, checker, gen = _keys()
    rng = _rng_fn()
    _cookie_round(checker, gen, 0.0, rng)
    assert gen.has_valid_cookie(COOKIE_VALID_FOR - 0.5)
    assert gen.add_macs(_initiation(), COOKIE_VALID_FOR - 0.5)[-16:] != bytes(16)
    assert COOKIE_VALID_FOR == 115.0
    assert not gen.has_valid_cookie(COOKIE_VALID_FOR)
    assert gen.add_macs(_initiation(), COOKIE_VALID_FOR)[-16:] == bytes(16)
    assert gen.add_macs(_initiation(), 120.0)[-16:] == bytes(16)


def test_cookie_reply_uses_rng_nonce() -> None:
    _, checker, gen = _keys()
    sent = gen.add_macs(_initiation(), 0.0)
    r1 = checker.create_reply(sent, 5, SRC, 0.0, _rng_fn(7))
    r2 = checker.create_reply(sent, 5, SRC, 0.0, _rng_fn(8))
    assert r1.nonce != r2.nonce and len(r1.nonce) == 24


def test_short_messages() -> None:
    _, checker, gen = _keys()
    with pytest.raises(ValueError):
        gen.add_macs(b"\x01" * 20, 0.0)
    assert not checker.check_mac1(b"")
    assert not checker.check_mac2(b"", SRC, 0.0, _rng_fn())


def test_reprs_redacted() -> None:
    _, checker, gen = _keys()
    rng = _rng_fn()
    _cookie_round(checker, gen, 0.0, rng)
    assert "redacted" in repr(checker) and "redacted" in repr(gen)
    assert gen._cookie is not None and gen._cookie.hex() not in repr(gen)  # noqa: SLF001
