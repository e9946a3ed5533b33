"""AllowedIPs against a naive linear model (hypothesis).

The model is a list of (network, value); insert drops any entry with the same
network first (an identical prefix moves), remove drops the entry only if its
value *is* the given one, and lookup scans for the longest containing prefix.
Prefixes live inside 10.0.0.0/16 and fd00::/112 (plus their shorter
supernets, down to /0) so identical and overlapping prefixes are common.
"""

from __future__ import annotations

from ipaddress import IPv4Network, IPv6Network, ip_address
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from wgpy.allowedips import AllowedIPs, Network


class Value:
    """Distinct values that all compare equal: the table must use identity."""

    def __init__(self, name: int) -> None:
        self.name = name

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Value)

    def __hash__(self) -> int:
        return 1

    def __repr__(self) -> str:
        return f"Value({self.name})"


VALUES = [Value(i) for i in range(4)]
V4_BASE = int(ip_address("10.0.0.0"))
V6_BASE = int(ip_address("fd00::"))


class NaiveAllowedIPs:
    def __init__(self) -> None:
        self.entries: list[tuple[Network, Value]] = []

    def insert(self, network: Network, value: Value) -> None:
        if any(n == network and v is value for n, v in self.entries):
            return  # already this value's: keeps its place
        self.entries = [(n, v) for n, v in self.entries if n != network]
        self.entries.append((network, value))

    def remove(self, network: Network, value: Value) -> bool:
        for i, (n, v) in enumerate(self.entries):
            if n == network and v is value:
                del self.entries[i]
                return True
        return False

    def remove_by_value(self, value: Value) -> None:
        self.entries = [(n, v) for n, v in self.entries if v is not value]

    def lookup(self, address: bytes) -> Value | None:
        target = ip_address(address)
        best: tuple[int, Value] | None = None
        for network, value in self.entries:
            if network.version == target.version and target in network:
                if best is None or network.prefixlen > best[0]:
                    best = (network.prefixlen, value)
        return None if best is None else best[1]

    def entries_for(self, value: Value) -> list[Network]:
        return [n for n, v in self.entries if v is value]  # insertion order, as wg show lists them


def v4_prefix(low: int, length: int) -> IPv4Network:
    """A prefix of 10.0.0.0/16 (host bits set on purpose; masked with strict=False)."""
    return IPv4Network((V4_BASE | low, length), strict=False)


def v6_prefix(low: int, length: int) -> IPv6Network:
    return IPv6Network((V6_BASE | low, length), strict=False)


LOW = st.integers(0, 0xFFFF)
NETWORK = st.one_of(
    st.builds(v4_prefix, LOW, st.integers(20, 32)),
    st.builds(v4_prefix, LOW, st.integers(0, 32)),
    st.builds(v6_prefix, LOW, st.integers(116, 128)),
    st.builds(v6_prefix, LOW, st.integers(0, 128)),
)
ADDRESS = st.one_of(
    st.builds(lambda low: (V4_BASE | low).to_bytes(4, "big"), LOW),
    st.builds(lambda low: (V6_BASE | low).to_bytes(16, "big"), LOW),
    st.binary(min_size=4, max_size=4),
    st.binary(min_size=16, max_size=16),
)
VALUE = st.sampled_from(VALUES)

Op = tuple[Any, ...]  # ("insert"|"remove", network, value) | ("remove_by_value", value) | ("lookup", address)
OP = st.one_of(
    st.tuples(st.just("insert"), NETWORK, VALUE),
    st.tuples(st.just("insert"), NETWORK, VALUE),
    st.tuples(st.just("remove"), NETWORK, VALUE),
    st.tuples(st.just("remove_by_value"), VALUE),
    st.tuples(st.just("lookup"), ADDRESS),
    st.tuples(st.just("lookup"), ADDRESS),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(OP, max_size=60), st.lists(ADDRESS, max_size=30))
def test_matches_naive_model(ops: list[Op], probes: list[bytes]) -> None:
    table: AllowedIPs[Value] = AllowedIPs()
    model = NaiveAllowedIPs()
    for op in ops:
        if op[0] == "insert":
            table.insert(op[1], op[2])
            model.insert(op[1], op[2])
        elif op[0] == "remove":
            assert table.remove(op[1], op[2]) is model.remove(op[1], op[2])
        elif op[0] == "remove_by_value":
            table.remove_by_value(op[1])
            model.remove_by_value(op[1])
        else:
            assert table.lookup(op[1]) is model.lookup(op[1])
        assert len(table) == len(model.entries)
    for value in VALUES:
        assert table.entries_for(value) == model.entries_for(value)
    # Probe every stored prefix's first address, its neighbours, and the extra probes.
    addresses = list(probes)
    for network, _ in model.entries:
        first = int(network.network_address)
        size = network.max_prefixlen // 8
        for candidate in (first - 1, first, int(network.broadcast_address), int(network.broadcast_address) + 1):
            if 0 <= candidate < 2**network.max_prefixlen:
                addresses.append(candidate.to_bytes(size, "big"))
    for address in addresses:
        assert table.lookup(address) is model.lookup(address), ip_address(address)
    assert sorted((str(n), id(v)) for n, v in table.items()) == sorted((str(n), id(v)) for n, v in model.entries)
