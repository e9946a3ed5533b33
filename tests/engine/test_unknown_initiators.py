"""An initiation from a key that is no configured peer is dropped and its claimed key remembered
(``Device.unknown_initiators``: kubespan's first contact initiates at once towards a node that already tried)."""

from __future__ import annotations

from wgsupport import DevicePair

from wgpy.config import DeviceUpdate, PeerUpdate
from wgpy.unknown_initiators import UNKNOWN_INITIATORS_MAX
from wgpy.errors import DropReason
from wgpy.keys import PrivateKey

MESSAGE_INITIATION = 1


def test_an_initiation_from_an_unknown_key_is_dropped_and_its_key_remembered() -> None:
    p = DevicePair(keepalive_a=25)
    a_key = p.a.key.public_key()
    p.b.device.apply(DeviceUpdate(peers=[PeerUpdate(public_key=a_key, remove=True)]), p.clock.now)
    (dst, data, src), = p.wire  # a's first initiation
    p.wire.clear()
    assert data[0] == MESSAGE_INITIATION
    p.collect(dst, dst.device.datagram_received(data, src, p.clock.now))
    assert p.wire == [] and p.b.device.drops[DropReason.UNKNOWN_PEER] == 1
    assert p.b.device.unknown_initiators == {a_key: p.clock.wall()}
    assert p.a.device.unknown_initiators == {}


def test_the_memory_is_bounded_oldest_first() -> None:
    p = DevicePair()
    dev = p.b.device
    keys = [PrivateKey.generate(p.rng).public_key() for _ in range(UNKNOWN_INITIATORS_MAX + 2)]
    for key in keys:
        dev.unknown_initiators.note(key, p.clock.wall())
    dev.unknown_initiators.note(keys[2], p.clock.wall())  # seen again: now the newest
    assert len(dev.unknown_initiators) == UNKNOWN_INITIATORS_MAX
    assert keys[0] not in dev.unknown_initiators and keys[1] not in dev.unknown_initiators
    assert list(dev.unknown_initiators)[-1] == keys[2]
