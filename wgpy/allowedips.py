"""Cryptokey routing: the allowed-IPs table (wireguard.md §8).

Owns the map from IP prefixes to peers, used twice per packet:

* TX: ``lookup(destination(packet))`` picks the peer a TUN packet goes to;
* RX: after decryption, ``lookup(source(plaintext))`` must return the very
  peer that sent it (the "crypto-RP filter"), else the packet is dropped.

Rules (kernel ``allowedips.c``, wireguard-go ``device/allowedips.go``):

* host bits are masked on insert: 10.0.0.1/24 is stored as 10.0.0.0/24;
* an identical prefix belongs to exactly one value: inserting it for another
  value *moves* it;
* overlapping prefixes of different lengths may belong to different values;
  lookup is longest-prefix match, IPv4 and IPv6 kept apart;
* ``remove`` deletes a prefix only if it exists and belongs to that value
  (UAPI ``allowed_ip=-p``); ``remove_by_value`` deletes all of a value's
  prefixes (``replace_allowed_ips``, peer removal).

Values are compared by identity (``is``), never ``==``: the engine stores
``Peer`` objects.  ``None`` cannot be a value (``lookup`` returns ``None`` for
"no route").

Data structure: instead of the kernel's path-compressed binary trie, each
family keeps one dict per populated prefix length, ``{address >> (bits -
length): value}``, and a list of those dicts ordered longest length first.
A lookup is one ``int.from_bytes`` plus one dict probe per populated length
(a trie walk in CPython costs one Python-level step per node, which is
slower for the handful of lengths a real configuration uses).  A reverse
index (value -> its prefixes) makes ``entries_for`` and ``remove_by_value``
proportional to that value's prefixes.  Networks are not stored; they are
rebuilt by ``entries_for``/``items``, so 10,000 peers stay cheap.

Pure and sans-IO; not safe for concurrent use.
"""

from __future__ import annotations

from ipaddress import (
    IPv4Address,
    IPv4Interface,
    IPv4Network,
    IPv6Address,
    IPv6Interface,
    IPv6Network,
    ip_address,
    ip_network,
)
from typing import Generic, TypeAlias, TypeVar

__all__ = ["AllowedIPs", "Network", "NetworkLike", "Packet", "destination", "source"]

T = TypeVar("T")

Network: TypeAlias = IPv4Network | IPv6Network
NetworkLike: TypeAlias = IPv4Network | IPv6Network | IPv4Interface | IPv6Interface | str

# What destination()/source() read: a packet from the TUN or a decrypted payload.
Packet: TypeAlias = bytes | bytearray | memoryview

# (version, prefix length, address >> (bits - prefix length))
_Entry: TypeAlias = tuple[int, int, int]


def destination(packet: Packet) -> bytes | None:
    """The raw destination address of an IPv4/IPv6 packet, None if not one.

    IPv4: version nibble 4, at least 20 bytes, address at offset 16.
    IPv6: version nibble 6, at least 40 bytes, address at offset 24.
    """
    if not packet:
        return None
    version = packet[0] >> 4
    if version == 4:
        return bytes(packet[16:20]) if len(packet) >= 20 else None
    if version == 6:
        return bytes(packet[24:40]) if len(packet) >= 40 else None
    return None


def source(packet: Packet) -> bytes | None:
    """The raw source address of an IPv4/IPv6 packet (v4 offset 12, v6 offset 8)."""
    if not packet:
        return None
    version = packet[0] >> 4
    if version == 4:
        return bytes(packet[12:16]) if len(packet) >= 20 else None
    if version == 6:
        return bytes(packet[8:24]) if len(packet) >= 40 else None
    return None


class _Family(Generic[T]):
    """The prefixes of one address family: a dict per populated length."""

    __slots__ = ("bits", "tables", "order")

    def __init__(self, bits: int) -> None:
        self.bits = bits
        self.tables: dict[int, dict[int, T]] = {}
        # (shift, table) pairs, longest prefix (smallest shift) first.
        self.order: list[tuple[int, dict[int, T]]] = []

    def table_for(self, length: int) -> dict[int, T]:
        table = self.tables.get(length)
        if table is None:
            table = self.tables[length] = {}
            self._reorder()
        return table

    def prune(self, length: int) -> None:
        if not self.tables.get(length, True):
            del self.tables[length]
            self._reorder()

    def _reorder(self) -> None:
        self.order = [(self.bits - n, self.tables[n]) for n in sorted(self.tables, reverse=True)]

    def __len__(self) -> int:
        return sum(len(t) for t in self.tables.values())


class AllowedIPs(Generic[T]):
    """Longest-prefix-match table from IPv4/IPv6 prefixes to values (see module doc)."""

    __slots__ = ("_v4", "_v6", "_owned")

    def __init__(self) -> None:
        self._v4: _Family[T] = _Family(32)
        self._v6: _Family[T] = _Family(128)
        # id(value) -> (value, its entries); the value is kept so the id stays valid.
        self._owned: dict[int, tuple[T, dict[_Entry, None]]] = {}

    # --- mutation -------------------------------------------------------

    def insert(self, network: NetworkLike, value: T) -> None:
        """Route ``network`` (host bits masked) to ``value``; moves it from any other owner."""
        if value is None:
            raise TypeError("None cannot be an AllowedIPs value")
        entry = _entry(network)
        version, length, key = entry
        table = self._family(version).table_for(length)
        old = table.get(key)
        if old is value:
            return
        if old is not None:
            self._disown(old, entry)
        table[key] = value
        owned = self._owned.get(id(value))
        if owned is None:
            self._owned[id(value)] = (value, {entry: None})
        else:
            owned[1][entry] = None

    def remove(self, network: NetworkLike, value: T) -> bool:
        """Delete ``network`` if exactly that prefix exists and belongs to ``value``."""
        entry = _entry(network)
        version, length, key = entry
        family = self._family(version)
        table = family.tables.get(length)
        if table is None or table.get(key) is not value:
            return False
        del table[key]
        family.prune(length)
        self._disown(value, entry)
        return True

    def remove_by_value(self, value: T) -> None:
        """Delete every prefix that belongs to ``value``."""
        owned = self._owned.get(id(value))
        if owned is None or owned[0] is not value:
            return
        del self._owned[id(value)]
        for version, length, key in owned[1]:
            family = self._family(version)
            table = family.tables[length]
            del table[key]
            family.prune(length)

    def clear(self) -> None:
        """Delete everything."""
        self._v4 = _Family(32)
        self._v6 = _Family(128)
        self._owned.clear()

    # --- queries --------------------------------------------------------

    def lookup(self, address: bytes) -> T | None:
        """Longest-prefix match of a raw 4- or 16-byte address; None if no route.

        Any other length also answers None.
        """
        size = len(address)
        if size == 4:
            order = self._v4.order
        elif size == 16:
            order = self._v6.order
        else:
            return None
        number = int.from_bytes(address, "big")
        for shift, table in order:
            value = table.get(number >> shift)
            if value is not None:
                return value
        return None

    def lookup_address(self, addr: str | IPv4Address | IPv6Address) -> T | None:
        """``lookup`` for a textual or ``ipaddress`` address."""
        if isinstance(addr, str):
            addr = ip_address(addr)
        return self.lookup(addr.packed)

    def entries_for(self, value: T) -> list[Network]:
        """The prefixes of ``value`` in the order they were given to it (as
        wireguard-go and the kernel list them in ``wg show``)."""
        owned = self._owned.get(id(value))
        if owned is None or owned[0] is not value:
            return []
        return [_network(e) for e in owned[1]]

    def items(self) -> list[tuple[Network, T]]:
        """Every (prefix, value): IPv4 first, then IPv6, each by address then length."""
        entries: list[tuple[_Entry, T]] = []
        for version, family in ((4, self._v4), (6, self._v6)):
            for length, table in family.tables.items():
                entries.extend(((version, length, k), v) for k, v in table.items())
        entries.sort(key=lambda item: _sort_key(item[0]))
        return [(_network(e), v) for e, v in entries]

    def __len__(self) -> int:
        return len(self._v4) + len(self._v6)

    def __repr__(self) -> str:
        return f"AllowedIPs(v4={len(self._v4)}, v6={len(self._v6)}, values={len(self._owned)})"

    # --- internals ------------------------------------------------------

    def _family(self, version: int) -> _Family[T]:
        return self._v4 if version == 4 else self._v6

    def _disown(self, value: T, entry: _Entry) -> None:
        owned = self._owned.get(id(value))
        if owned is None:
            return
        owned[1].pop(entry, None)
        if not owned[1]:
            del self._owned[id(value)]


def _entry(network: NetworkLike) -> _Entry:
    """Normalise a prefix to (version, length, masked address >> host bits)."""
    if isinstance(network, str):
        net: Network = ip_network(network, strict=False)
    elif isinstance(network, (IPv4Interface, IPv6Interface)):
        net = network.network
    elif isinstance(network, (IPv4Network, IPv6Network)):
        net = network
    else:
        raise TypeError(f"not an IP network: {network!r}")
    bits = net.max_prefixlen
    length = net.prefixlen
    return (net.version, length, int(net.network_address) >> (bits - length))


def _sort_key(entry: _Entry) -> tuple[int, int, int]:
    version, length, key = entry
    bits = 32 if version == 4 else 128
    return (version, key << (bits - length), length)


def _network(entry: _Entry) -> Network:
    version, length, key = entry
    if version == 4:
        return IPv4Network((key << (32 - length), length))
    return IPv6Network((key << (128 - length), length))
