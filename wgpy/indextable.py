"""Local index allocation (wireguard.md §2 "Indices").

Owns the one table that maps our random 32-bit session indices to what they
name.  Each handshake we start or answer gets a fresh, locally unique index,
sent as ``sender_index``; once the handshake completes, the same index names
the keypair (``swap``, wireguard-go ``SwapIndexForKeypair``).  Incoming
responses, cookie replies and transport messages carry it back as
``receiver_index`` and are resolved with ``get``.

Randomness is injected: ``rng(n)`` returns ``n`` random bytes (the engine
passes ``os.urandom`` or a seeded test RNG).  Allocation retries on collision
and gives up with ``StateError`` after ``MAX_ATTEMPTS`` draws, which only a
broken RNG can cause (the table holds at most a few times ``MAX_PEERS``
entries out of 2**32).

Pure and sans-IO; not safe for concurrent use.
"""

from __future__ import annotations

from typing import Callable, Final, Generic, TypeVar

from .errors import StateError

__all__ = ["IndexTable", "MAX_ATTEMPTS"]

T = TypeVar("T")

MAX_ATTEMPTS: Final = 64


class IndexTable(Generic[T]):
    """Random u32 index -> value (a handshake, then its keypair)."""

    __slots__ = ("_table",)

    def __init__(self) -> None:
        self._table: dict[int, T] = {}

    def new_index(self, value: T, rng: Callable[[int], bytes]) -> int:
        """Allocate a fresh random index for ``value`` and return it."""
        table = self._table
        for _ in range(MAX_ATTEMPTS):
            raw = rng(4)
            if len(raw) != 4:
                raise ValueError(f"rng(4) returned {len(raw)} bytes")
            index = int.from_bytes(raw, "little")
            if index not in table:
                table[index] = value
                return index
        raise StateError(f"no free index after {MAX_ATTEMPTS} random draws")

    def get(self, index: int) -> T | None:
        """The value behind ``index``, or None."""
        return self._table.get(index)

    def remove(self, index: int) -> None:
        """Release ``index``; nothing happens if it is not allocated."""
        self._table.pop(index, None)

    def swap(self, index: int, value: T) -> None:
        """Make an allocated ``index`` name ``value`` (e.g. handshake -> keypair).

        Raises ``StateError`` if ``index`` is not allocated.
        """
        if index not in self._table:
            raise StateError(f"index {index:#010x} is not allocated")
        self._table[index] = value

    def items(self) -> list[tuple[int, T]]:
        """A snapshot of every (index, value) entry (for audits and tests)."""
        return list(self._table.items())

    def clear(self) -> None:
        """Release every index."""
        self._table.clear()

    def __contains__(self, index: object) -> bool:
        return index in self._table

    def __len__(self) -> int:
        return len(self._table)

    def __repr__(self) -> str:
        return f"IndexTable(len={len(self._table)})"
