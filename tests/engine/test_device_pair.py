"""Two in-memory devices with a fake clock: the whole protocol engine end to end."""

from __future__ import annotations

import ipaddress

import pytest
from wgsupport import DevicePair, FakeClock, ipv4_packet

from wgpy.config import DeviceUpdate, PeerUpdate
from wgpy.constants import REKEY_AFTER_TIME, REJECT_AFTER_TIME, ZERO_KEY_MATERIAL_AFTER
from wgpy import icmp
from wgpy.device import SendDatagram, Unreachable
from wgpy.errors import DropReason
from wgpy.keys import PrivateKey


def mtype(data: bytes) -> int:
    return data[0]


def wire_types(p: DevicePair) -> list[int]:
    return [mtype(d) for _, d, _ in p.wire]


@pytest.mark.parametrize("psk", [True, False])
@pytest.mark.parametrize("initiator", ["a", "b"])
def test_handshake_from_either_side_and_data_both_ways(psk: bool, initiator: str) -> None:
    p = DevicePair(psk=psk)
    first = p.a if initiator == "a" else p.b
    second = p.other(first)
    p.send_ip(first, b"one")
    assert wire_types(p) == [1]
    p.deliver()
    assert [pkt[-3:] for pkt in second.tun] == [b"one"]
    p.send_ip(second, b"two", v6=True)
    p.deliver()
    assert [pkt[-3:] for pkt in first.tun] == [b"two"]
    for node in (p.a, p.b):
        peer = p.peer_of(node)
        assert peer.last_handshake_wall == p.clock.wall()
        assert peer.rx_bytes > 0 and peer.tx_bytes > 0
        assert not node.device.drops


def test_byte_counters_count_wire_sizes() -> None:
    p = DevicePair()
    p.send_ip(p.a, b"x" * 64)  # 84-byte IPv4 packet, like a ping
    p.deliver()
    a, b = p.peer_of(p.a), p.peer_of(p.b)
    # initiation 148 + transport (84 padded to 96, + 32) = 276 ; response 92
    assert (a.tx_bytes, a.rx_bytes) == (148 + 128, 92)
    assert (b.tx_bytes, b.rx_bytes) == (92, 148 + 128)


def test_key_confirmation_responder_waits_for_first_packet() -> None:
    p = DevicePair()
    p.send_ip(p.a, b"hi")
    dst, init, src = p.wire.pop(0)
    p.collect(p.b, p.b.device.datagram_received(init, src, p.clock.now))
    peer_b = p.peer_of(p.b)
    assert peer_b.keypairs.current is None and peer_b.keypairs.next is not None
    assert peer_b.last_handshake_wall is None
    # b has data for a, but may not send on the unconfirmed keypair
    response = p.wire.pop(0)
    p.send_ip(p.b, b"early")
    assert p.wire == []
    # a consumes the response and sends its staged packet at once
    p.collect(p.a, p.a.device.datagram_received(response[1], response[2], p.clock.now))
    assert wire_types(p) == [4]
    p.deliver()
    assert peer_b.keypairs.current is not None and peer_b.keypairs.next is None
    assert peer_b.last_handshake_wall is not None
    assert [pkt[-5:] for pkt in p.a.tun] == [b"early"]


def test_rekey_after_120s_loses_no_packet() -> None:
    p = DevicePair()
    p.send_ip(p.a, b"start")
    p.deliver()
    p.b.tun.clear()
    sent = 0
    handshakes = set()
    for second in range(400):
        p.send_ip(p.a, b"a%05d" % second)
        p.send_ip(p.b, b"b%05d" % second)
        sent += 1
        p.deliver()
        p.tick(1.0, step=0.1)
        handshakes.add(p.peer_of(p.a).last_handshake_wall)
    assert [pkt[-6:] for pkt in p.b.tun] == [b"a%05d" % i for i in range(sent)]
    assert [pkt[-6:] for pkt in p.a.tun] == [b"b%05d" % i for i in range(sent)]
    # initial handshake + rekeys at ~120 s and ~240 s and ~360 s
    assert len(handshakes) >= 4
    assert not p.a.device.drops and not p.b.device.drops


def test_no_send_and_no_receive_after_reject_after_time() -> None:
    p = DevicePair()
    p.send_ip(p.a, b"first")
    p.deliver()
    p.send_ip(p.a, b"late")
    _, stale, src = p.wire.pop(0)
    p.clock.advance(REJECT_AFTER_TIME + 1)
    # a may not seal on the old keypair any more: it starts a handshake instead
    p.send_ip(p.a, b"again")
    assert wire_types(p) == [1]
    p.wire.clear()
    # b refuses a packet sealed on the expired keypair
    p.b.device.datagram_received(stale, src, p.clock.now)
    assert p.b.device.drops[DropReason.KEYPAIR_EXPIRED] == 1


def test_keepalive_after_10s_of_one_way_data() -> None:
    p = DevicePair()
    p.send_ip(p.a, b"data")
    p.deliver()
    p.b.sent.clear()
    p.tick(9.5)
    assert p.b.sent == []
    p.tick(1.0)
    assert [len(s.data) for s in p.b.sent] == [32]  # one keepalive, empty transport message


def test_persistent_keepalive() -> None:
    p = DevicePair(keepalive_a=25)
    p.send_ip(p.a, b"up")
    p.deliver()
    times = []
    for _ in range(200):
        p.a.sent.clear()
        p.tick(0.5)
        times += [p.clock.now for s in p.a.sent if len(s.data) == 32]
    # b's keepalive at +10 s re-arms a's timer; after that a keepalive every 25 s
    assert len(times) == 3
    assert [round(b - a, 1) for a, b in zip(times, times[1:])] == [25.0, 25.0]


def test_persistent_keepalive_enabled_later_sends_one_at_once() -> None:
    p = DevicePair()
    upd = DeviceUpdate(peers=[PeerUpdate(public_key=p.b.key.public_key(), persistent_keepalive=10)])
    p.collect(p.a, p.a.device.apply(upd, p.clock.now))
    assert wire_types(p) == [1]  # no session yet: the keepalive triggers a handshake


def test_retries_every_5s_and_give_up_after_20_initiations() -> None:
    p = DevicePair()
    p.send_ip(p.a, b"lost")
    times = []
    for _ in range(300):
        for _, data, _ in p.wire:
            if mtype(data) == 1:
                times.append(p.clock.now)
        p.wire.clear()  # b never hears anything
        p.clock.advance(0.5)
        p.collect(p.a, p.a.device.handle_timeout(p.clock.now))
    assert len(times) == 20
    gaps = [b - a for a, b in zip(times, times[1:])]
    assert all(5.0 <= g <= 5.5 + 0.5 for g in gaps)
    peer = p.peer_of(p.a)
    assert not peer.staged
    assert peer.timers.zero_key_material is not None


def test_zero_key_material_after_540s() -> None:
    p = DevicePair()
    p.send_ip(p.a, b"x")
    p.deliver()
    peer = p.peer_of(p.a)
    kp = peer.keypairs.current
    assert kp is not None
    p.tick(ZERO_KEY_MATERIAL_AFTER - 5, step=5.0)
    assert peer.keypairs.current is kp
    p.tick(10, step=5.0)
    assert peer.keypairs.all() == []
    assert p.a.device.indices.get(kp.local_index) is None


def test_replayed_and_bitflipped_packets_dropped_and_counted() -> None:
    p = DevicePair()
    p.send_ip(p.a, b"x")
    p.deliver()
    p.send_ip(p.a, b"payload")
    dst, data, src = p.wire.pop(0)
    b = p.b.device
    p.collect(p.b, b.datagram_received(data, src, p.clock.now))
    p.collect(p.b, b.datagram_received(data, src, p.clock.now))
    flipped = bytearray(data)
    flipped[-20] ^= 1
    p.collect(p.b, b.datagram_received(bytes(flipped), src, p.clock.now))
    assert b.drops[DropReason.REPLAYED_COUNTER] == 1
    assert b.drops[DropReason.DECRYPTION_FAILED] == 1
    assert [pkt[-7:] for pkt in p.b.tun].count(b"payload") == 1


def test_garbage_datagrams_are_counted_not_raised() -> None:
    p = DevicePair()
    b = p.b.device
    for junk in (b"", b"\x01", b"\x04\x00\x00\x00" + bytes(10), b"\x01\x00\x00\x01" + bytes(144),
                 b"\x09\x00\x00\x00", b"\x01\x00\x00\x00" + bytes(10), b"\x01\x00\x00\x00" + bytes(144)):
        assert b.datagram_received(junk, ("192.0.2.9", 1), p.clock.now) == []
    assert sum(b.drops.values()) == 7
    assert b.drops[DropReason.INVALID_MAC1] == 1


def test_inner_source_address_of_another_peer_dropped() -> None:
    p = DevicePair()
    c_key = PrivateKey.generate(p.rng)
    p.b.device.apply(DeviceUpdate(peers=[PeerUpdate(
        public_key=c_key.public_key(), allowed_ips=[ipaddress.ip_network("10.0.0.3/32")])]), p.clock.now)
    p.send_ip(p.a, b"ok")
    p.deliver()
    spoofed = ipv4_packet("10.0.0.3", p.b.addr4, b"spoof")
    # a routes by destination (b owns 10.0.0.2), the inner source belongs to c at b
    p.collect(p.a, p.a.device.tun_packet(spoofed, p.clock.now))
    p.deliver()
    assert p.b.device.drops[DropReason.DISALLOWED_SOURCE] == 1
    assert all(not pkt.endswith(b"spoof") for pkt in p.b.tun)


def test_unroutable_tun_packet_counted_and_answered_unreachable() -> None:
    p = DevicePair()
    pkt = ipv4_packet("10.0.0.1", "10.9.9.9")
    out = p.a.device.tun_packet(pkt, p.clock.now)
    # ICMP host unreachable (type 3, code 1) from the unreachable address back to the sender, quoting the packet
    assert out == [Unreachable(icmp.unreachable(pkt, bytes([10, 9, 9, 9])))]
    reply = out[0].packet
    assert (reply[12:16], reply[16:20], reply[20], reply[21], reply[28:]) == (
        bytes([10, 9, 9, 9]), bytes([10, 0, 0, 1]), 3, 1, pkt)
    assert p.a.device.tun_packet(b"\x00junk", p.clock.now) == []
    assert p.a.device.drops[DropReason.NO_ROUTE] == 1
    assert p.a.device.drops[DropReason.INVALID_INNER_PACKET] == 1


def test_roaming_updates_endpoint() -> None:
    p = DevicePair()
    p.send_ip(p.a, b"x")
    p.deliver()
    p.send_ip(p.a, b"moved")
    _, data, _ = p.wire.pop(0)
    new_src = ("198.51.100.7", 40000)
    p.b.device.datagram_received(data, new_src, p.clock.now)
    assert p.peer_of(p.b).endpoint == new_src
    # an unauthenticated packet from elsewhere changes nothing
    p.b.device.datagram_received(data[:-1] + bytes([data[-1] ^ 1]), ("203.0.113.1", 1), p.clock.now)
    assert p.peer_of(p.b).endpoint == new_src


def test_staged_queue_keeps_newest_128() -> None:
    p = DevicePair()
    for i in range(200):
        p.send_ip(p.a, b"%04d" % i)
    p.wire.clear()
    peer = p.peer_of(p.a)
    assert len(peer.staged) == 128
    assert peer.staged[0].endswith(b"0072") and peer.staged[-1].endswith(b"0199")
    assert p.a.device.drops[DropReason.STAGED_OVERFLOW] == 72


def _flood(p: DevicePair, init: bytes, count: int) -> list[SendDatagram]:
    """Deliver ``count`` copies of an initiation to b from attacker addresses, drain b's queue."""
    b = p.b.device
    out = b.datagrams_received([(init, ("198.51.100.%d" % (i % 250 + 1), 1000 + i)) for i in range(count)],
                               p.clock.now)
    for _ in range(count):
        if not b.handshake_queue_length:
            break
        out += b.handle_timeout(p.clock.now)
    return [a for a in out if isinstance(a, SendDatagram)]


def test_under_load_cookie_round_trip_then_mac2_accepted() -> None:
    p = DevicePair()
    p.send_ip(p.a, b"x")
    _, init, a_src = p.wire.pop(0)
    b = p.b.device
    replies = b.datagrams_received([(init, ("198.51.100.%d" % (i + 1), 5000)) for i in range(200)]
                                   + [(init, a_src)], p.clock.now)
    for _ in range(100):
        if not b.handshake_queue_length:
            break
        replies += b.handle_timeout(p.clock.now)
    to_a = [r for r in replies if isinstance(r, SendDatagram) and r.endpoint == a_src]
    assert len(to_a) == 1 and mtype(to_a[0].data) == 3
    assert b.drops[DropReason.COOKIE_SENT] >= 128
    peer_a = p.peer_of(p.a)
    endpoint, deadline = peer_a.endpoint, peer_a.timers.retransmit_handshake
    # the cookie reply comes "from" elsewhere: no endpoint change, no timer change, no resend
    assert p.a.device.datagram_received(to_a[0].data, ("203.0.113.5", 9), p.clock.now) == []
    assert peer_a.endpoint == endpoint and peer_a.timers.retransmit_handshake == deadline
    assert peer_a.cookie_generator.has_valid_cookie(p.clock.now)
    # the retransmission carries mac2; b is still under load and now accepts it
    p.clock.advance(5.4)
    p.collect(p.a, p.a.device.handle_timeout(p.clock.now))
    assert wire_types(p) == [1]
    _, init2, _ = p.wire.pop(0)
    assert init2[-16:] != bytes(16)
    out = b.datagrams_received([(init, ("198.51.100.%d" % (i + 1), 6000)) for i in range(150)]
                               + [(init2, a_src)], p.clock.now)
    for _ in range(100):
        if not b.handshake_queue_length:
            break
        out += b.handle_timeout(p.clock.now)
    responses = [r for r in out if isinstance(r, SendDatagram) and mtype(r.data) == 2]
    assert len(responses) == 1 and responses[0].endpoint == a_src
    p.collect(p.a, p.a.device.datagram_received(responses[0].data, p.b.endpoint, p.clock.now))
    p.deliver()
    assert [pkt[-1:] for pkt in p.b.tun] == [b"x"]


def test_transport_keeps_flowing_during_handshake_flood() -> None:
    p = DevicePair()
    p.send_ip(p.a, b"x")
    _, init, src = p.wire[0]
    p.deliver()
    p.send_ip(p.a, b"during-flood")
    _, data, src = p.wire.pop(0)
    flood = [(init, ("198.51.100.1", 7000 + i)) for i in range(2000)]
    out = p.b.device.datagrams_received(flood + [(data, src)], p.clock.now)
    assert any(getattr(o, "packet", b"").endswith(b"during-flood") for o in out)
    assert p.b.device.drops[DropReason.HANDSHAKE_QUEUE_FULL] > 0


def test_changing_private_key_forces_new_handshake() -> None:
    p = DevicePair()
    p.send_ip(p.a, b"x")
    p.deliver()
    new_key = PrivateKey.generate(p.rng)
    p.a.device.apply(DeviceUpdate(private_key=new_key), p.clock.now)
    p.send_ip(p.a, b"y")
    assert wire_types(p) == [1]


def test_clock_is_injected() -> None:
    clock = FakeClock(start=5.0)
    p = DevicePair(clock=clock)
    p.send_ip(p.a, b"x")
    p.deliver()
    assert p.peer_of(p.a).last_handshake_wall == clock.wall()
    assert REKEY_AFTER_TIME == 120.0


def test_rekey_after_messages_on_either_side() -> None:
    from wgpy.constants import REKEY_AFTER_MESSAGES

    p = DevicePair()
    p.send_ip(p.a, b"x")
    p.deliver()
    p.send_ip(p.b, b"y")
    p.deliver()
    for node in (p.b, p.a):  # the responder too: the message-count rule applies to both sides
        kp = p.peer_of(node).keypairs.current
        assert kp is not None
        kp.send_counter = REKEY_AFTER_MESSAGES + 1
        p.clock.advance(6)  # past the 5 s handshake rate limit
        p.send_ip(node, b"z")
        assert wire_types(p) == [4, 1]
        p.deliver()


def test_receive_side_rekey_after_165s_only_by_initiator() -> None:
    from wgpy.constants import RECEIVE_REKEY_AFTER

    p = DevicePair()
    p.send_ip(p.a, b"x")
    p.deliver()
    p.clock.advance(RECEIVE_REKEY_AFTER - 1)
    p.a.sent.clear()
    p.send_ip(p.b, b"early")  # b (responder) sends, a receives: too early for a rekey
    p.deliver()
    assert [mtype(s.data) for s in p.a.sent] == []
    p.clock.advance(2)
    p.a.sent.clear()
    p.send_ip(p.b, b"late")
    dst, data, src = p.wire.pop(0)
    p.collect(p.a, p.a.device.datagram_received(data, src, p.clock.now))
    assert wire_types(p) == [1]  # a initiated once: "last-minute" handshake
    p.wire.clear()
    p.send_ip(p.b, b"later")
    dst, data, src = p.wire.pop(0)
    p.collect(p.a, p.a.device.datagram_received(data, src, p.clock.now))
    assert p.wire == []  # only once
