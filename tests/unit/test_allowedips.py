"""AllowedIPs (cryptokey routing, wireguard.md §8) and destination()/source()."""

from __future__ import annotations

import random
from ipaddress import IPv4Address, IPv4Interface, IPv4Network, IPv6Address, IPv6Network, ip_address, ip_network

import pytest

from wgpy.allowedips import AllowedIPs, Network, destination, source


class Peer:
    """A stand-in value: hashable, and == between distinct peers (identity must win)."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Peer)

    def __hash__(self) -> int:
        return 0

    def __repr__(self) -> str:
        return f"Peer({self.name})"


def addr(text: str) -> bytes:
    return ip_address(text).packed


def test_host_bits_masked_and_input_forms() -> None:
    table: AllowedIPs[Peer] = AllowedIPs()
    a = Peer("a")
    table.insert("10.0.0.1/24", a)
    table.insert(IPv4Interface("10.1.2.3/16"), a)
    table.insert(ip_network("fd00::1:2/112", strict=False), a)
    assert table.entries_for(a) == [
        IPv4Network("10.0.0.0/24"),
        IPv4Network("10.1.0.0/16"),
        IPv6Network("fd00::1:0/112"),
    ]
    assert table.lookup(addr("10.0.0.200")) is a
    assert table.lookup(addr("10.1.255.255")) is a
    assert table.lookup(addr("10.2.0.0")) is None
    # Removing with host bits set removes the masked prefix.
    assert table.remove("10.0.0.77/24", a)
    assert table.lookup(addr("10.0.0.200")) is None
    with pytest.raises(TypeError):
        table.insert(12345, a)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        table.insert("not-a-prefix", a)
    with pytest.raises(TypeError):
        table.insert("10.9.0.0/16", None)  # type: ignore[arg-type]


def test_identical_prefix_moves_to_new_value() -> None:
    table: AllowedIPs[Peer] = AllowedIPs()
    a, b = Peer("a"), Peer("b")
    table.insert("192.168.1.0/24", a)
    table.insert("192.168.2.0/24", a)
    table.insert("192.168.1.9/24", b)
    assert table.lookup(addr("192.168.1.1")) is b
    assert table.entries_for(a) == [IPv4Network("192.168.2.0/24")]
    assert table.entries_for(b) == [IPv4Network("192.168.1.0/24")]
    assert len(table) == 2
    # The old owner cannot remove it any more (== but not `is`).
    assert table.remove("192.168.1.0/24", a) is False
    assert table.lookup(addr("192.168.1.1")) is b
    # Re-inserting for the same owner is a no-op.
    table.insert("192.168.1.0/24", b)
    assert len(table) == 2


def test_longest_prefix_match_across_values() -> None:
    table: AllowedIPs[Peer] = AllowedIPs()
    a, b, c, d = Peer("a"), Peer("b"), Peer("c"), Peer("d")
    table.insert("10.0.0.0/8", a)
    table.insert("10.1.0.0/16", b)
    table.insert("10.1.1.0/24", c)
    table.insert("10.1.1.1/32", d)
    assert table.lookup(addr("10.1.1.1")) is d
    assert table.lookup(addr("10.1.1.2")) is c
    assert table.lookup(addr("10.1.2.2")) is b
    assert table.lookup(addr("10.2.2.2")) is a
    assert table.lookup(addr("11.0.0.0")) is None
    # Removing the more specific route exposes the next one (crypto-RP filter case).
    assert table.remove("10.1.1.1/32", d)
    assert table.lookup(addr("10.1.1.1")) is c
    table.remove_by_value(c)
    assert table.lookup(addr("10.1.1.1")) is b


def test_exact_removal_only_when_owned() -> None:
    table: AllowedIPs[Peer] = AllowedIPs()
    a, b = Peer("a"), Peer("b")
    table.insert("10.0.0.0/16", a)
    assert table.remove("10.0.0.0/16", b) is False
    assert table.remove("10.0.0.0/24", a) is False  # not the exact prefix
    assert table.remove("10.0.0.0/8", a) is False
    assert table.remove("fd00::/16", a) is False
    assert table.lookup(addr("10.0.3.4")) is a
    assert table.remove("10.0.0.0/16", a) is True
    assert table.remove("10.0.0.0/16", a) is False
    assert len(table) == 0
    assert table.entries_for(a) == []


def test_remove_by_value() -> None:
    table: AllowedIPs[Peer] = AllowedIPs()
    a, b = Peer("a"), Peer("b")
    for i in range(20):
        table.insert(f"10.0.{i}.0/24", a)
        table.insert(f"fd00::{i:x}:0/112", a)
    table.insert("10.0.0.0/16", b)
    table.insert("fd00::/64", b)
    table.remove_by_value(a)
    assert table.entries_for(a) == []
    assert len(table) == 2
    assert table.lookup(addr("10.0.5.1")) is b
    assert table.lookup(addr("fd00::5:1")) is b
    table.remove_by_value(a)  # idempotent
    table.remove_by_value(Peer("never"))
    assert len(table) == 2


def test_families_are_separate() -> None:
    table: AllowedIPs[Peer] = AllowedIPs()
    a, b = Peer("a"), Peer("b")
    table.insert("0.0.0.0/0", a)
    assert table.lookup(addr("::")) is None
    assert table.lookup(addr("::ffff:10.0.0.1")) is None
    table.insert("::/0", b)
    assert table.lookup(addr("1.2.3.4")) is a
    assert table.lookup(addr("2001:db8::1")) is b
    # An IPv6 prefix whose leading bits equal a v4 prefix's does not leak.
    table.insert("10.0.0.0/8", b)
    table.insert("a00::/8", a)
    assert table.lookup(addr("10.9.9.9")) is b
    assert table.lookup(addr("a12::1")) is a
    assert table.lookup(b"\x00" * 5) is None
    assert table.lookup(b"") is None


def test_default_routes_and_lookup_address() -> None:
    table: AllowedIPs[Peer] = AllowedIPs()
    a, b = Peer("a"), Peer("b")
    table.insert(IPv4Network("0.0.0.0/0"), a)
    table.insert(IPv6Network("::/0"), a)
    table.insert("10.0.0.0/8", b)
    assert table.lookup_address("255.255.255.255") is a
    assert table.lookup_address(IPv4Address("10.255.0.1")) is b
    assert table.lookup_address(IPv6Address("ffff::1")) is a
    assert table.lookup_address("::") is a
    assert table.entries_for(a) == [IPv4Network("0.0.0.0/0"), IPv6Network("::/0")]
    assert table.remove("0.0.0.0/0", a)
    assert table.lookup_address("1.1.1.1") is None


def test_entries_order_items_len_clear() -> None:
    table: AllowedIPs[Peer] = AllowedIPs()
    a, b = Peer("a"), Peer("b")
    for prefix in ["fd00::/8", "10.0.0.0/24", "10.0.0.0/8", "1.2.3.4/32", "::/0", "fc00::/7"]:
        table.insert(prefix, a)
    table.insert("9.0.0.0/8", b)
    expected: list[Network] = [  # insertion order, as wireguard-go and the kernel list them
        IPv6Network("fd00::/8"),
        IPv4Network("10.0.0.0/24"),
        IPv4Network("10.0.0.0/8"),
        IPv4Network("1.2.3.4/32"),
        IPv6Network("::/0"),
        IPv6Network("fc00::/7"),
    ]
    assert table.entries_for(a) == expected
    items = table.items()
    assert [n for n, _ in items] == sorted(
        expected + [IPv4Network("9.0.0.0/8")],
        key=lambda n: (n.version, int(n.network_address), n.prefixlen),
    )
    assert all(v is (b if n == IPv4Network("9.0.0.0/8") else a) for n, v in items)
    assert len(table) == 7
    table.clear()
    assert len(table) == 0
    assert table.lookup_address("10.0.0.1") is None
    assert table.entries_for(a) == []


IPV4_PACKET = bytes.fromhex("45000054abcd40004001") + b"\x00\x00" + bytes([192, 168, 1, 2, 10, 0, 0, 9])
IPV6_PACKET = (
    bytes.fromhex("60000000") + bytes.fromhex("00083a40") + ip_address("fd00::2").packed + ip_address("fd00::9").packed
)


def test_destination_and_source() -> None:
    assert len(IPV4_PACKET) == 20 and len(IPV6_PACKET) == 40
    assert destination(IPV4_PACKET) == bytes([10, 0, 0, 9])
    assert source(IPV4_PACKET) == bytes([192, 168, 1, 2])
    assert destination(IPV6_PACKET) == ip_address("fd00::9").packed
    assert source(IPV6_PACKET) == ip_address("fd00::2").packed
    # bytes-like inputs give bytes
    assert destination(memoryview(IPV4_PACKET + b"payload")) == bytes([10, 0, 0, 9])
    assert source(bytearray(IPV6_PACKET)) == ip_address("fd00::2").packed


@pytest.mark.parametrize(
    "packet",
    [
        b"",
        IPV4_PACKET[:19],
        IPV6_PACKET[:39],
        IPV6_PACKET[:20],  # long enough for v4, but it says v6
        b"\x50" + IPV4_PACKET[1:],  # version 5
        b"\x00" * 60,
        b"\x04" * 60,  # version nibble 0
        b"\xff" * 60,
    ],
)
def test_destination_source_reject_short_or_non_ip(packet: bytes) -> None:
    assert destination(packet) is None
    assert source(packet) is None


def naive_lookup(model: list[tuple[int, int, int, Peer]], address: bytes) -> Peer | None:
    """Longest-prefix match by scanning every (first, last, length, value): the reference."""
    target = int.from_bytes(address, "big")
    best = [(length, value) for first, last, length, value in model if first <= target <= last]
    return max(best, key=lambda item: item[0])[1] if best else None


def flatten(model: dict[Network, Peer], version: int) -> list[tuple[int, int, int, Peer]]:
    return [
        (int(n.network_address), int(n.broadcast_address), n.prefixlen, v)
        for n, v in model.items()
        if n.version == version
    ]


def test_random_against_naive_model() -> None:
    """After wireguard-go allowedips_rand_test.go: 100 peers with random prefixes,
    4 peers removed, 10,000 lookups compared with a linear scan.  (wireguard-go
    uses 250 prefixes per peer; 40 keeps the Python linear scan to about a second.)"""
    rnd = random.Random(20240601)
    peers = [Peer(str(i)) for i in range(100)]
    table: AllowedIPs[Peer] = AllowedIPs()
    model: dict[Network, Peer] = {}
    for peer in peers:
        for _ in range(40):
            if rnd.random() < 0.5:
                net: Network = IPv4Network((rnd.getrandbits(32), rnd.randint(0, 32)), strict=False)
            else:
                net = IPv6Network((rnd.getrandbits(128), rnd.randint(0, 128)), strict=False)
            table.insert(net, peer)
            if model.get(net) is not peer:
                model.pop(net, None)  # an identical prefix moves to the end of its new owner's list
                model[net] = peer
    for peer in rnd.sample(peers, 4):
        table.remove_by_value(peer)
        model = {n: v for n, v in model.items() if v is not peer}
    assert len(table) == len(model)
    for peer in peers:
        assert table.entries_for(peer) == [n for n, v in model.items() if v is peer]
    v4, v6 = flatten(model, 4), flatten(model, 6)
    networks = list(model)
    hits = 0
    for i in range(10_000):
        if i % 4 == 0:  # an address inside some stored prefix, random host bits
            net = rnd.choice(networks)
            host = rnd.getrandbits(net.max_prefixlen - net.prefixlen) if net.prefixlen < net.max_prefixlen else 0
            address = (int(net.network_address) | host).to_bytes(net.max_prefixlen // 8, "big")
        elif i % 2:
            address = rnd.getrandbits(32).to_bytes(4, "big")
        else:
            address = rnd.getrandbits(128).to_bytes(16, "big")
        expected = naive_lookup(v4 if len(address) == 4 else v6, address)
        assert table.lookup(address) is expected, ip_address(address)
        hits += expected is not None
    assert hits >= 2_500  # every fourth address lies inside a stored prefix
