"""IndexTable: random local indices (wireguard.md §2 "Indices")."""

from __future__ import annotations

import random
from typing import Callable, Iterator

import pytest

from wgpy.errors import StateError
from wgpy.indextable import MAX_ATTEMPTS, IndexTable


def seeded_rng(seed: int) -> Callable[[int], bytes]:
    rnd = random.Random(seed)
    return lambda n: rnd.randbytes(n)


def scripted_rng(values: list[int]) -> tuple[Callable[[int], bytes], list[int]]:
    """An rng returning the given u32 values (little-endian), recording requested sizes."""
    stream: Iterator[int] = iter(values)
    sizes: list[int] = []

    def rng(n: int) -> bytes:
        sizes.append(n)
        return next(stream).to_bytes(4, "little")

    return rng, sizes


def test_new_index_get_remove() -> None:
    table: IndexTable[str] = IndexTable()
    rng = seeded_rng(1)
    first = table.new_index("handshake-a", rng)
    second = table.new_index("handshake-b", rng)
    assert first != second
    assert 0 <= first < 2**32 and 0 <= second < 2**32
    assert table.get(first) == "handshake-a"
    assert table.get(second) == "handshake-b"
    assert len(table) == 2 and first in table
    table.remove(first)
    assert table.get(first) is None
    assert first not in table
    table.remove(first)  # absent: no error
    table.remove(12345)
    assert len(table) == 1


def test_index_is_little_endian_u32_from_rng4() -> None:
    table: IndexTable[str] = IndexTable()
    rng, sizes = scripted_rng([0x04030201])
    assert table.new_index("x", rng) == 0x04030201
    assert sizes == [4]
    table2: IndexTable[str] = IndexTable()
    assert table2.new_index("y", lambda n: b"\x01\x02\x03\x04") == 0x04030201


def test_collision_retries() -> None:
    table: IndexTable[str] = IndexTable()
    rng, sizes = scripted_rng([7, 7, 7, 9])
    assert table.new_index("a", rng) == 7
    assert table.new_index("b", rng) == 9
    assert sizes == [4, 4, 4, 4]
    assert table.get(7) == "a" and table.get(9) == "b"


def test_bounded_attempts_raise_state_error() -> None:
    table: IndexTable[str] = IndexTable()
    table.new_index("a", lambda n: b"\0\0\0\0")
    calls = []

    def stuck(n: int) -> bytes:
        calls.append(n)
        return b"\0\0\0\0"

    with pytest.raises(StateError):
        table.new_index("b", stuck)
    assert len(calls) == MAX_ATTEMPTS
    assert len(table) == 1 and table.get(0) == "a"


def test_bad_rng_length() -> None:
    table: IndexTable[str] = IndexTable()
    with pytest.raises(ValueError):
        table.new_index("a", lambda n: b"\0\0\0")
    assert len(table) == 0


def test_swap_keeps_index() -> None:
    table: IndexTable[object] = IndexTable()
    handshake, keypair = object(), object()
    index = table.new_index(handshake, seeded_rng(2))
    table.swap(index, keypair)
    assert table.get(index) is keypair
    assert len(table) == 1
    with pytest.raises(StateError):
        table.swap(index ^ 1, keypair)
    assert len(table) == 1


def test_many_indices_unique_and_clear() -> None:
    table: IndexTable[int] = IndexTable()
    rng = seeded_rng(3)
    indices = [table.new_index(i, rng) for i in range(5000)]
    assert len(set(indices)) == 5000 == len(table)
    assert all(table.get(idx) == i for i, idx in enumerate(indices))
    table.clear()
    assert len(table) == 0 and table.get(indices[0]) is None
    assert "len=0" in repr(table)
