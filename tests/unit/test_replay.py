"""ReplayWindow edge cases (wireguard.md §7)."""

from __future__ import annotations

from wgpy.constants import REJECT_AFTER_MESSAGES, REPLAY_RING_BITS, REPLAY_WINDOW
from wgpy.replay import ReplayWindow


def test_fresh_window_accepts_zero_once() -> None:
    window = ReplayWindow()
    assert window.check(0) is True
    assert window.check(0) is False
    assert window.last == 0


def test_in_order_stream_and_duplicates() -> None:
    window = ReplayWindow()
    assert all(window.check(c) for c in range(3 * REPLAY_RING_BITS))
    assert not any(window.check(c) for c in range(3 * REPLAY_RING_BITS - REPLAY_WINDOW, 3 * REPLAY_RING_BITS))
    assert window.last == 3 * REPLAY_RING_BITS - 1


def test_window_edge_exact() -> None:
    window = ReplayWindow()
    top = 50_000
    assert window.check(top)
    assert window.check(top - REPLAY_WINDOW) is True  # exactly at the edge
    assert window.check(top - REPLAY_WINDOW - 1) is False  # one beyond
    assert window.check(top - REPLAY_WINDOW) is False  # now seen


def test_out_of_order_inside_window() -> None:
    window = ReplayWindow()
    assert window.check(100)
    assert window.check(5)
    assert window.check(99)
    assert not window.check(5)
    assert window.check(6)
    assert window.check(101)
    assert not window.check(99)


def test_far_jump_clears_the_whole_ring() -> None:
    window = ReplayWindow()
    for c in range(REPLAY_RING_BITS):
        assert window.check(c)
    # Jump so far that every old cell is reused: counters that alias old bits
    # (same ring position) must be accepted as new.
    jump = 10 * REPLAY_RING_BITS
    assert window.check(jump)
    for c in range(jump - REPLAY_WINDOW, jump):
        assert window.check(c), c
    assert not window.check(jump - REPLAY_WINDOW - 1)


def test_partial_jump_clears_only_new_cells() -> None:
    window = ReplayWindow()
    for c in range(0, 1000):
        assert window.check(c)
    # Advance by less than the ring: old counters still in the window stay
    # rejected, the newly exposed ones (aliasing cleared cells) are fresh.
    assert window.check(1000 + 4000)
    assert not any(window.check(c) for c in range(0, 1000))
    assert all(window.check(c) for c in range(1000, 5000))
    # Advance again past the old counters: they drop out of the window.
    assert window.check(20_000)
    assert not window.check(999)
    assert window.check(20_000 - REPLAY_WINDOW)


def test_jump_by_exactly_ring_size_reuses_positions() -> None:
    window = ReplayWindow()
    assert window.check(64)
    assert window.check(64 + REPLAY_RING_BITS)  # same ring bit as 64
    assert window.check(64 + 2 * REPLAY_RING_BITS)
    assert window.check(64 + 2 * REPLAY_RING_BITS - REPLAY_WINDOW)


def test_reject_after_messages_limit() -> None:
    window = ReplayWindow()
    assert window.check(REJECT_AFTER_MESSAGES) is False
    assert window.check(REJECT_AFTER_MESSAGES + 1) is False
    assert window.check(2**64 - 1) is False
    assert window.check(REJECT_AFTER_MESSAGES - 1) is True
    assert window.check(REJECT_AFTER_MESSAGES - 1) is False
    assert window.check(REJECT_AFTER_MESSAGES - 1 - REPLAY_WINDOW) is True
    assert window.check(REJECT_AFTER_MESSAGES - 2 - REPLAY_WINDOW) is False
    assert window.check(0) is False


def test_negative_counter_rejected() -> None:
    assert ReplayWindow().check(-1) is False


def test_reset() -> None:
    window = ReplayWindow()
    assert window.check(10_000)
    assert not window.check(10)
    window.reset()
    assert window.last == 0
    assert window.check(10)
    assert window.check(10_000)
    assert "10000" in repr(window)


def test_clear_starts_right_after_last_cell() -> None:
    """A jump clears from the cell after last's: a stale bit one ring back must go."""
    window = ReplayWindow()
    assert window.check(5)  # ring cell 0
    assert window.check(REPLAY_RING_BITS - 2)  # the ring's last cell; cell 0 keeps 5
    assert window.check(REPLAY_RING_BITS + 100)  # jump over several cells, wrapping
    assert window.check(REPLAY_RING_BITS + 5)  # same ring bit as 5, but new
    assert not window.check(REPLAY_RING_BITS + 5)
    assert window.check(REPLAY_RING_BITS + 100 - REPLAY_WINDOW)  # = 164, never seen
    assert not window.check(5)  # out of the window now
