"""ReplayWindow against a naive model (hypothesis).

The naive rule, which the 8192-bit ring must reproduce exactly:

    accept(c)  iff  0 <= c < REJECT_AFTER_MESSAGES
               and  c was never accepted before
               and  (nothing accepted yet  or  c > max_accepted
                     or  max_accepted - c <= REPLAY_WINDOW (8128))

Why it is exact: the window [max - 8128, max] spans at most 8129 counters,
i.e. at most 1017 byte cells (128 u64 words in the kernel), fewer than the
ring's 1024 cells, so every counter inside it has its own ring cell; cells
are cleared only when ``max`` moves past them, i.e. only for counters that
were never accepted (they are above the old max) or that left the window.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from wgpy.constants import REJECT_AFTER_MESSAGES, REPLAY_RING_BITS, REPLAY_WINDOW
from wgpy.replay import ReplayWindow


class NaiveWindow:
    def __init__(self) -> None:
        self.seen: set[int] = set()
        self.max: int | None = None

    def check(self, counter: int) -> bool:
        if not 0 <= counter < REJECT_AFTER_MESSAGES or counter in self.seen:
            return False
        if self.max is not None and counter <= self.max and self.max - counter > REPLAY_WINDOW:
            return False
        self.seen.add(counter)
        self.max = counter if self.max is None else max(self.max, counter)
        return True


# Each step says where the next counter(s) lie relative to the current maximum:
# "edge" lands on max - REPLAY_WINDOW + n, "alias" on a seen counter plus one
# or two ring sizes (the same ring bit), "run" is a stretch of consecutive
# counters (wraps the ring cell by cell).
STEP = st.one_of(
    st.tuples(st.just("forward"), st.integers(1, 70)),
    st.tuples(st.just("forward"), st.integers(1, 3 * REPLAY_RING_BITS)),
    st.tuples(st.just("forward"), st.integers(REPLAY_RING_BITS - 70, REPLAY_RING_BITS + 70)),
    st.tuples(st.just("back"), st.integers(0, 100)),
    st.tuples(st.just("back"), st.integers(REPLAY_WINDOW - 70, REPLAY_WINDOW + 70)),
    st.tuples(st.just("back"), st.integers(0, 2 * REPLAY_RING_BITS)),
    st.tuples(st.just("edge"), st.integers(-2, 2)),
    st.tuples(st.just("repeat"), st.integers(0, 1000)),
    st.tuples(st.just("alias"), st.integers(0, 10_000)),
    st.tuples(st.just("run"), st.integers(1, 2 * REPLAY_RING_BITS)),
    st.tuples(st.just("absolute"), st.integers(0, 3 * REPLAY_RING_BITS)),
    st.tuples(st.just("limit"), st.integers(-3 - REPLAY_WINDOW, 3)),
)


def counters(steps: list[tuple[str, int]]) -> list[int]:
    """Turn relative steps into absolute counters."""
    out: list[int] = []
    top = 0
    for kind, amount in steps:
        if kind == "run":
            values = list(range(top + 1, top + 1 + amount))
        elif kind == "forward":
            values = [top + amount]
        elif kind == "back":
            values = [top - amount]
        elif kind == "edge":
            values = [top - REPLAY_WINDOW + amount]
        elif kind == "repeat":
            values = [out[amount % len(out)] if out else 0]
        elif kind == "alias":
            base = out[amount % len(out)] if out else 0
            values = [base + (1 + amount % 2) * REPLAY_RING_BITS]
        elif kind == "absolute":
            values = [amount]
        else:  # around REJECT_AFTER_MESSAGES
            values = [REJECT_AFTER_MESSAGES + amount]
        for value in values:
            value = max(value, 0)
            out.append(value)
            if value < REJECT_AFTER_MESSAGES:
                top = max(top, value)
    return out


@settings(max_examples=300, deadline=None)
@given(st.lists(STEP, max_size=80))
def test_window_matches_naive_model(steps: list[tuple[str, int]]) -> None:
    window, model = ReplayWindow(), NaiveWindow()
    for counter in counters(steps):
        assert window.check(counter) is model.check(counter), counter
    assert window.last == (model.max or 0)


@settings(max_examples=50, deadline=None)
@given(st.integers(0, 2**40), st.lists(st.integers(-REPLAY_RING_BITS, REPLAY_RING_BITS), max_size=300))
def test_dense_neighbourhood_matches_model(base: int, offsets: list[int]) -> None:
    """Many counters around one point: exercises every ring cell and the edge."""
    window, model = ReplayWindow(), NaiveWindow()
    for offset in offsets:
        counter = max(base + offset, 0)
        assert window.check(counter) is model.check(counter), counter


@settings(max_examples=30, deadline=None)
@given(st.lists(STEP, max_size=60), st.lists(STEP, max_size=60))
def test_reset_forgets_everything(before: list[tuple[str, int]], after: list[tuple[str, int]]) -> None:
    window = ReplayWindow()
    for counter in counters(before):
        window.check(counter)
    window.reset()
    model = NaiveWindow()
    for counter in counters(after):
        assert window.check(counter) is model.check(counter)
