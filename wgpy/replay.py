"""The receive-side replay window: RFC 6479 sliding bitmap (wireguard.md §7).

Owns one thing: deciding, per keypair, whether a transport counter is new.
It follows the kernel's ``counter_validate`` (``receive.c``) and
wireguard-go's ``replay.ReplayFilter``:

1. reject ``counter >= REJECT_AFTER_MESSAGES``;
2. if ``counter > last``: zero the ring cells after ``last``'s cell up to and
   including ``counter``'s cell (at most the whole ring), then
   ``last = counter``;
3. elif ``last - counter > REPLAY_WINDOW`` (8128): reject;
4. test-and-set the counter's bit; reject if it was already set.

The ring holds 8192 bits.  The kernel stores it as 128 ``u64`` words; we
store it as a ``bytearray`` of 1024 cells of 8 bits, which is as fast in
CPython as a list of 128 ints and about five times smaller.  The cell size
is not observable: because the window (8128) is smaller than the ring by at
least one cell, the accepted set is exactly

    counter < REJECT_AFTER_MESSAGES, counter never accepted before, and
    (nothing accepted yet, or counter > max_accepted, or
     max_accepted - counter <= REPLAY_WINDOW)

which is what the kernel's ``selftest/counter.c`` table checks
(``vectors/replay_counter.json``).  The kernel stores ``counter + 1``
internally; that too is invisible from outside.

**The caller's duty:** run ``check`` only *after* the transport message's AEAD
tag verified.  Calling it on unauthenticated counters lets an attacker move
the window forward and make every genuine packet look replayed.

Pure and sans-IO: no clock, no RNG, no I/O.  Not safe for concurrent use
(one window per keypair, driven by that peer's sequential receive path).
"""

from __future__ import annotations

from typing import Final

from .constants import REJECT_AFTER_MESSAGES, REPLAY_RING_BITS, REPLAY_WINDOW

__all__ = ["ReplayWindow"]

_CELL_BITS: Final = 8  # bits per ring cell (one bytearray byte)
_CELL_SHIFT: Final = 3  # log2(_CELL_BITS)
_CELL_BIT_MASK: Final = _CELL_BITS - 1
_RING_CELLS: Final = REPLAY_RING_BITS // _CELL_BITS  # 1024
_RING_MASK: Final = _RING_CELLS - 1
_ZEROS: Final = bytes(_RING_CELLS)

assert _RING_CELLS & _RING_MASK == 0, "ring size must be a power of two"
assert REPLAY_WINDOW <= REPLAY_RING_BITS - _CELL_BITS, "window must leave a spare cell"


class ReplayWindow:
    """One keypair's receive-counter window (kernel ``noise_replay_counter``).

    ``check(counter)`` returns True and records the counter when it is new and
    inside the window; False otherwise (the caller counts a
    ``DropReason.REPLAYED_COUNTER``).  ``last`` is the highest counter seen
    (0 before any).
    """

    __slots__ = ("_last", "_ring")

    def __init__(self) -> None:
        self._last = 0
        self._ring = bytearray(_RING_CELLS)

    @property
    def last(self) -> int:
        """The highest counter accepted so far (0 when none was)."""
        return self._last

    def reset(self) -> None:
        """Forget everything: the state of a freshly created keypair."""
        self._last = 0
        self._ring[:] = _ZEROS

    def check(self, counter: int) -> bool:
        """Accept and record ``counter`` if new and in the window (see module doc)."""
        if counter >= REJECT_AFTER_MESSAGES or counter < 0:
            return False
        ring = self._ring
        last = self._last
        if counter > last:
            cell = counter >> _CELL_SHIFT
            steps = cell - (last >> _CELL_SHIFT)
            if steps == 1:
                ring[cell & _RING_MASK] = 0
            elif steps >= _RING_CELLS:
                ring[:] = _ZEROS
            elif steps:
                _clear_cells(ring, (last >> _CELL_SHIFT) + 1, cell)
            self._last = counter
        elif last - counter > REPLAY_WINDOW:
            return False
        index = (counter >> _CELL_SHIFT) & _RING_MASK
        bit = 1 << (counter & _CELL_BIT_MASK)
        old = ring[index]
        if old & bit:
            return False
        ring[index] = old | bit
        return True

    def __repr__(self) -> str:
        return f"ReplayWindow(last={self._last})"


def _clear_cells(ring: bytearray, first: int, last: int) -> None:
    """Zero the ring cells of absolute cell numbers ``first..last`` (< ring size)."""
    start = first & _RING_MASK
    stop = (last & _RING_MASK) + 1
    if start < stop:
        ring[start:stop] = _ZEROS[: stop - start]
    else:  # wraps around the end of the ring
        ring[start:] = _ZEROS[: _RING_CELLS - start]
        ring[:stop] = _ZEROS[:stop]
