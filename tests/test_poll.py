"""Completion polling: the C wait (poll, then block, then adjust the window) against a scripted clock.

``_core._poll_simulate`` runs the real C code (csrc/pollwin.h, iol_poll_wait + iol_poll_adjust) with a
clock that only moves when read (``tick_ns`` per read: one poll iteration) or when the wait blocks (to the
completion's arrival plus ``wake_ns``). So every window and every block time below is exact.

The adaptive rules are QEMU's (util/aio-posix.c, aio_poll): with w the window and M = poll_max_ns,
  block <= w -> unchanged;  block > M -> w / shrink (0 when shrink is 0);
  w < M and block < M -> w * grow (2 when grow is 0), 4000 ns from 0, at most M;  otherwise unchanged.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from iolab import _core

OFF, ON, ADAPTIVE = 0, 1, 2
MAX = 32768
TICK = 100
WAKE = 5000


def qemu_adjust(w: int, block: int, max_ns: int, grow: int, shrink: int) -> int:
    """An independent transcription of QEMU's rules (the reference the C code is checked against)."""
    if block <= w:
        return w
    if block > max_ns:
        return w // shrink if shrink else 0
    if w < max_ns and block < max_ns:
        w = w * (grow or 2) if w else 4000
        return min(w, max_ns)
    return w


def simulate(mode: int, arrivals: list[int], max_ns: int = MAX, grow: int = 0, shrink: int = 0):  # type: ignore[no-untyped-def]
    return _core._poll_simulate(mode, max_ns, grow, shrink, arrivals, tick_ns=TICK, wake_ns=WAKE)


def test_adaptive_follows_qemu_step_by_step() -> None:
    # arrival of each wait's completion (ns after the wait starts) and what must happen
    arrivals = [1000, 1000, 3000, 10_000, 10_000, 20_000, 20_000, 20_000, 100_000, 1000, 40_000]
    steps, stats = simulate(ADAPTIVE, arrivals)
    windows = [(before, after) for before, _, after, _ in steps]
    assert windows == [
        (0, 4000),  # no window yet: blocked 1000 + 5000 wake = 6000 < M -> first growth to 4000
        (4000, 4000),  # arrived inside the window: sweet spot, unchanged
        (4000, 4000),  # 3000 < 4000: a hit again
        (4000, 8000),  # polled 4000 in vain, blocked until 10000 + wake: grow x2
        (8000, 16000),  # again
        (16000, 32000),  # 20000 + 5000 > 16000: grow to 32000
        (32000, 32000),  # 20000 < 32000: a hit
        (32000, 32000),
        (32000, 0),  # 100 us > M: shrink (shrink 0 means back to 0)
        (0, 4000),  # short again: start over at 4000
        (4000, 0),  # 40 us + wake > M: back to 0
    ]
    hits = [hit for *_, hit in steps]
    assert hits == [0, 1, 1, 0, 0, 0, 1, 1, 0, 0, 0]
    # block_ns: a hit ends at the first poll iteration that sees the completion; a miss after the wakeup
    assert steps[0][1] == 1000 + WAKE
    assert steps[1][1] == 1000  # 10 clock reads of 100 ns: the completion is seen exactly on arrival
    assert steps[8][1] == 100_000 + WAKE
    assert stats["waits"] == len(arrivals) == stats["hits"] + stats["misses"]
    assert stats["hits"] == 4 and stats["window_ns"] == 0 and stats["mode"] == "adaptive"
    assert stats["window_sum_ns"] == sum(before for before, _ in windows)
    assert stats["grows"] == 5 and stats["shrinks"] == 2


def test_grow_clamps_at_max_and_custom_grow_shrink() -> None:
    steps, _ = simulate(ADAPTIVE, [20_000] * 6, max_ns=50_000, grow=3, shrink=4)
    assert [after for *_, after, _ in steps] == [4000, 12000, 36000, 36000, 36000, 36000]
    steps, _ = simulate(ADAPTIVE, [200_000], max_ns=50_000, grow=3, shrink=4)
    assert steps[0][2] == 0  # a long wait with no window: 0 / 4 stays 0
    # a long wait with a window divides it by shrink
    steps, _ = simulate(ADAPTIVE, [10_000, 10_000, 10_000, 200_000], max_ns=50_000, grow=3, shrink=4)
    assert [after for *_, after, _ in steps] == [4000, 12000, 12000, 3000]


def test_exactly_max_is_neither_growth_nor_shrink() -> None:
    # window 16000 < M; block == M exactly: not > M (no shrink), not < M (no growth)
    arrivals = [10_000, 10_000, 10_000, MAX - WAKE]
    steps, _ = simulate(ADAPTIVE, arrivals)
    assert steps[3][0] == 16000 and steps[3][1] == MAX and steps[3][2] == 16000


def test_on_is_a_fixed_window_and_off_never_polls() -> None:
    arrivals = [1000, 50_000, 10_000, 40_000]
    steps, stats = simulate(ON, arrivals)
    assert all(before == after == MAX for before, _, after, _ in steps)
    assert [hit for *_, hit in steps] == [1, 0, 1, 0]
    assert stats["poll_ns"] >= 2 * MAX  # two full windows polled in vain
    steps, stats = simulate(OFF, arrivals)
    assert all(before == after == 0 for before, _, after, _ in steps)
    assert stats["hits"] == 0 and stats["misses"] == stats["waits"] == 4 and stats["poll_ns"] == 0


@settings(max_examples=200, deadline=None)
@given(
    arrivals=st.lists(st.integers(min_value=0, max_value=200_000), min_size=1, max_size=60),
    max_ns=st.sampled_from([8192, 32768, 100_000]),
    grow=st.integers(min_value=0, max_value=4),
    shrink=st.integers(min_value=0, max_value=4),
)
def test_adaptive_matches_the_reference(arrivals: list[int], max_ns: int, grow: int, shrink: int) -> None:
    steps, stats = simulate(ADAPTIVE, arrivals, max_ns=max_ns, grow=grow, shrink=shrink)
    w = 0
    for (before, block, after, hit), arrival in zip(steps, arrivals, strict=True):
        assert before == w
        # the poll loop reads the clock every TICK and stops once the window has passed
        assert hit == (w > 0 and arrival <= -(-w // TICK) * TICK)
        assert block >= arrival
        w = qemu_adjust(w, block, max_ns, grow, shrink)
        assert after == w
        assert 0 <= w <= max_ns
    assert stats["hits"] + stats["misses"] == stats["waits"] == len(arrivals)
