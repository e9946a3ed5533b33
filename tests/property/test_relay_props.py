"""Hypothesis over relaying (wgpy.relay, wgpy.relayframe): remote input never raises, is counted, and keeps the
configuration; the codec round-trips; the per-pair bucket never passes more than burst + rate x time; roaming
follows the last authenticated path, relayed or direct."""

from __future__ import annotations

from hypothesis import given, settings, strategies as st
from wgsupport import Mesh

from wgpy import relayframe
from wgpy.errors import DropReason
from wgpy.keys import PublicKey
from wgpy.relay import RELAY_DROPS, PairLimiter

KEY = bytes(range(32))
keys = st.binary(min_size=32, max_size=32)


@given(st.binary(max_size=300), keys)
def test_decode_never_raises(data: bytes, key: bytes) -> None:
    out = relayframe.decode(key, data)
    assert isinstance(out, (relayframe.RelayFrame, DropReason))


@given(keys, keys, keys, st.sampled_from([1, 2, 3, 4]), st.binary(min_size=28, max_size=200))
def test_roundtrip(key: bytes, sender: bytes, receiver: bytes, mtype: int, body: bytes) -> None:
    payload = bytes([mtype, 0, 0, 0]) + body
    frame = relayframe.decode(key, relayframe.encode(key, PublicKey(sender), PublicKey(receiver), payload))
    if sender == receiver:
        assert frame is DropReason.RELAY_BAD_FRAME
    else:
        assert frame == relayframe.RelayFrame(PublicKey(sender), PublicKey(receiver), payload)


@given(st.integers(1, 10_000), st.integers(1, 10_000),
       st.lists(st.tuples(st.floats(0, 2, allow_nan=False), st.integers(1, 3000)), max_size=60))
def test_bucket_never_passes_more_than_burst_plus_rate_times_elapsed(rate: int, burst: int,
                                                                      steps: list[tuple[float, int]]) -> None:
    lim, now, passed = PairLimiter(rate, burst), 0.0, 0
    for dt, size in steps:
        now += dt
        if lim.allow(b"pair", size, now):
            passed += size
        assert passed <= burst + rate * now + 1e-6


def _mesh() -> Mesh:
    m = Mesh("arp")
    for name in "arp":
        m[name].device.relay.configure(KEY, serve=name == "r")
    for x, y in (("a", "r"), ("r", "a"), ("p", "r"), ("r", "p")):
        m.connect(x, y)
    m.connect("a", "p", endpoint=m["r"].endpoint, relayed=True)
    m.connect("p", "a")
    m.block("a", "p")
    m.deliver()
    return m


frames = st.builds(
    lambda k, s, r, t, body, raw: raw if raw is not None else relayframe.encode(k, PublicKey(s), PublicKey(r),
                                                                                 bytes([t, 0, 0, 0]) + body),
    st.sampled_from([KEY, bytes(32)]), keys, keys, st.integers(0, 9), st.binary(max_size=160),
    st.one_of(st.none(), st.binary(max_size=200).map(lambda b: b"\x05" + b)))


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.sampled_from("arp"), frames), max_size=25))
def test_any_frames_are_counted_drops_or_handled_and_configuration_stays(items: list[tuple[str, bytes]]) -> None:
    m = _mesh()
    before = {n: sorted((p.public_key.raw, p.endpoint, tuple(p.allowed_ips())) for p in m[n].device.peers())
              for n in "arp"}
    for name, frame in items:
        node = m[name]
        m.collect(node, node.device.datagram_received(frame, ("198.51.100.1", 7), m.clock.now))
    m.deliver()
    for n in "arp":
        dev = m[n].device
        assert sorted((p.public_key.raw, p.endpoint, tuple(p.allowed_ips())) for p in dev.peers()) == before[n]
    total = sum(m[n].device.drops[r] for n in "arp" for r in RELAY_DROPS)
    handled = sum(m[n].device.relay.delivered_frames + m[n].device.relay.forwarded_frames for n in "arp")
    short = sum(1 for _, frame in items if len(frame) < 4)  # malformed before any type, on both planes
    assert total + handled == len(items) - short  # every frame is one relay drop, or delivered, or forwarded
    assert sum(m[n].device.drops[DropReason.MALFORMED] for n in "arp") >= short
    m.send_ip("a", "p", b"still")
    m.deliver()
    assert [pkt[20:] for pkt in m["p"].tun][-1:] == [b"still"]


@settings(max_examples=40, deadline=None)
@given(st.lists(st.booleans(), min_size=1, max_size=8))
def test_roaming_follows_the_last_authenticated_path(paths: list[bool]) -> None:
    """Each step: P sends one packet to A over the relay (True) or directly (False, the block lifted for it);
    afterwards A has P where the last one came from."""
    m = _mesh()
    m.send_ip("a", "p", b"hello")
    m.deliver()
    for relayed in paths:
        p_peer = m.peer("p", "a")
        if relayed:
            p_peer.endpoint, p_peer.relayed = m["r"].endpoint, True
        else:
            p_peer.endpoint, p_peer.relayed = m["a"].endpoint, False
            m.unblock("a", "p")
        m.send_ip("p", "a", b"step")
        m.deliver()
        m.block("a", "p")
        a_peer = m.peer("a", "p")
        assert a_peer.relayed == relayed
        assert a_peer.endpoint == (m["r"].endpoint if relayed else m["p"].endpoint)
