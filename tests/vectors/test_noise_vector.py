"""The cacophony Noise_IKpsk2_25519_ChaChaPoly_BLAKE2s vector through wgpy.handshake.

WireGuard's handshake is plain Noise_IKpsk2 with prologue = IDENTIFIER
(wireguard.md §3), so the generic vector (prologue "John Galt", arbitrary
payloads) runs through the same code as WireGuard's fixed-size messages, via
the plain-Noise entry points.  Messages 0 and 1 are the handshake; the rest
are transport messages alternating initiator -> responder, responder ->
initiator, sealed with the split keys and per-direction counters from 0.
Every test runs with the pure responder steps and with the native ones
(``wgpy.handshake_steps``) when the native module is loaded.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from wgpy import handshake_steps
from wgpy.constants import IDENTIFIER
from wgpy.crypto import Aead
from wgpy.handshake import Handshake, HandshakeState, StaticIdentity, read_initiation
from wgpy.keys import PresharedKey, PrivateKey, PublicKey

VECTOR_FILE = Path(__file__).parents[2] / "vectors" / "noise_ikpsk2.json"


@pytest.fixture(autouse=True, params=[s for s in (handshake_steps.PURE, handshake_steps.native()) if s is not None],
                ids=lambda s: s.name)
def steps(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> handshake_steps.Steps:
    monkeypatch.setattr(handshake_steps, "STEPS", request.param)
    return request.param  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def vector() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(VECTOR_FILE.read_text())
    assert data["protocol_name"] == "Noise_IKpsk2_25519_ChaChaPoly_BLAKE2s"
    return data


def _h(v: dict[str, Any], key: str) -> bytes:
    return bytes.fromhex(v[key])


def test_vector_end_to_end(vector: dict[str, Any]) -> None:
    v = vector
    msgs = [(bytes.fromhex(m["payload"]), bytes.fromhex(m["ciphertext"])) for m in v["messages"]]
    assert len(msgs) >= 2
    init_id = StaticIdentity(PrivateKey(_h(v, "init_static")))
    resp_id = StaticIdentity(PrivateKey(_h(v, "resp_static")))
    assert resp_id.public == PublicKey(_h(v, "init_remote_static"))
    init_psk = PresharedKey(bytes.fromhex(v["init_psks"][0]))
    resp_psk = PresharedKey(bytes.fromhex(v["resp_psks"][0]))

    initiator = Handshake(init_id, resp_id.public, init_psk, prologue=_h(v, "init_prologue"))
    responder = Handshake(resp_id, init_id.public, resp_psk, prologue=_h(v, "resp_prologue"))

    # message 1: initiator -> responder
    payload, expected = msgs[0]
    assert initiator.write_initiation(_h(v, "init_ephemeral"), payload) == expected
    consumed = read_initiation(expected, resp_id, prologue=_h(v, "resp_prologue"))
    assert consumed.timestamp == payload
    assert consumed.remote_static == init_id.public
    assert (consumed.chaining_key, consumed.hash) == (initiator.chaining_key, initiator.hash)
    responder.accept_initiation(consumed, now=0.0)

    # message 2: responder -> initiator
    payload, expected = msgs[1]
    assert responder.write_response(_h(v, "resp_ephemeral"), payload) == expected
    assert initiator.read_response(expected) == payload
    assert initiator.hash == responder.hash == _h(v, "handshake_hash")
    assert initiator.chaining_key == responder.chaining_key

    init_keys = initiator.begin_session()
    resp_keys = responder.begin_session()
    assert initiator.state is responder.state is HandshakeState.ZEROED
    assert init_keys.is_initiator and not resp_keys.is_initiator
    assert init_keys.send_key == resp_keys.receive_key
    assert init_keys.receive_key == resp_keys.send_key

    # transport: even messages initiator -> responder, odd the other way
    counters = {True: 0, False: 0}
    for i, (payload, expected) in enumerate(msgs[2:]):
        from_initiator = i % 2 == 0
        sender, receiver = (init_keys, resp_keys) if from_initiator else (resp_keys, init_keys)
        n = counters[from_initiator]
        assert Aead(sender.send_key).seal(n, payload) == expected
        assert Aead(receiver.receive_key).open(n, expected) == payload
        counters[from_initiator] += 1


def test_vector_tampered_message_fails(vector: dict[str, Any]) -> None:
    from wgpy.errors import DropReason, HandshakeError

    v = vector
    resp_id = StaticIdentity(PrivateKey(_h(v, "resp_static")))
    msg1 = bytearray(bytes.fromhex(v["messages"][0]["ciphertext"]))
    msg1[-1] ^= 1
    with pytest.raises(HandshakeError) as exc:
        read_initiation(bytes(msg1), resp_id, prologue=_h(v, "resp_prologue"))
    assert exc.value.reason is DropReason.DECRYPTION_FAILED
    # the wrong prologue changes H, so the static key no longer decrypts
    with pytest.raises(HandshakeError):
        read_initiation(bytes.fromhex(v["messages"][0]["ciphertext"]), resp_id)


def _noise_connection(initiator: bool, local: PrivateKey, remote: PublicKey | None,
                      psk: bytes, ephemeral: bytes | None = None) -> Any:
    """An independent Noise_IKpsk2 implementation (the noiseprotocol package)."""
    from noise.connection import Keypair, NoiseConnection

    conn = NoiseConnection.from_name(b"Noise_IKpsk2_25519_ChaChaPoly_BLAKE2s")
    conn.set_psks(psk=psk)
    conn.set_prologue(IDENTIFIER)
    conn.set_keypair_from_private_bytes(Keypair.STATIC, local.raw)
    if remote is not None:
        conn.set_keypair_from_public_bytes(Keypair.REMOTE_STATIC, remote.raw)
    if ephemeral is not None:
        conn.set_keypair_from_private_bytes(Keypair.EPHEMERAL, ephemeral)
    conn.set_as_initiator() if initiator else conn.set_as_responder()
    conn.start_handshake()
    return conn


@pytest.mark.parametrize("psk", [bytes(32), bytes(range(32))], ids=["no-psk", "psk"])
def test_wireguard_messages_against_noiseprotocol_initiator(psk: bytes) -> None:
    """noiseprotocol initiates with WireGuard's prologue and a TAI64N payload; we respond."""
    import os

    from wgpy.handshake import consume_initiation
    from wgpy.messages import Initiation
    from wgpy.tai64n import timestamp

    a_priv, b_priv = PrivateKey.generate(os.urandom), PrivateKey.generate(os.urandom)
    b_id = StaticIdentity(b_priv)
    ref = _noise_connection(True, a_priv, b_id.public, psk)
    ts = timestamp(1_700_000_000.0)
    noise_msg1 = ref.write_message(ts)
    assert len(noise_msg1) == 32 + 48 + 28
    init = Initiation(7, noise_msg1[:32], noise_msg1[32:80], noise_msg1[80:])
    consumed = consume_initiation(Initiation.decode(init.encode()), b_id)
    assert consumed.remote_static == a_priv.public_key() and consumed.timestamp == ts
    ours = Handshake(b_id, a_priv.public_key(), PresharedKey(psk) if any(psk) else None)
    ours.accept_initiation(consumed, 1.0)
    resp = ours.create_response(9, os.urandom(32))
    assert resp.receiver == 7
    assert ref.read_message(resp.ephemeral + resp.encrypted_nothing) == b""
    assert ref.handshake_finished
    assert ref.get_handshake_hash() == ours.hash
    keys = ours.begin_session()
    # transport: the reference initiator sends with T1, we (responder) send with T2
    assert Aead(keys.receive_key).open(0, ref.encrypt(b"ping")) == b"ping"
    assert ref.decrypt(Aead(keys.send_key).seal(0, b"pong")) == b"pong"


@pytest.mark.parametrize("psk", [bytes(32), bytes(range(32))], ids=["no-psk", "psk"])
def test_wireguard_messages_against_noiseprotocol_responder(psk: bytes) -> None:
    """We initiate with a WireGuard Initiation; noiseprotocol responds."""
    import os

    from wgpy.messages import Response
    from wgpy.tai64n import timestamp

    a_id = StaticIdentity(PrivateKey.generate(os.urandom))
    b_priv = PrivateKey.generate(os.urandom)
    ours = Handshake(a_id, b_priv.public_key(), PresharedKey(psk))
    init = ours.create_initiation(3, os.urandom(32), timestamp(1_700_000_000.0))
    ref = _noise_connection(False, b_priv, None, psk)
    assert ref.read_message(init.ephemeral + init.encrypted_static + init.encrypted_timestamp) == \
        timestamp(1_700_000_000.0)
    noise_msg2 = ref.write_message(b"")
    assert len(noise_msg2) == 48
    ours.consume_response(Response(5, 3, noise_msg2[:32], noise_msg2[32:]))
    assert ref.get_handshake_hash() == ours.hash
    keys = ours.begin_session()
    assert keys.is_initiator and keys.remote_index == 5
    assert ref.decrypt(Aead(keys.send_key).seal(0, b"ping")) == b"ping"
    assert Aead(keys.receive_key).open(0, ref.encrypt(b"pong")) == b"pong"
